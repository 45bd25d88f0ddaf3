/**
 * The platform-neutral contract between the agent's task runner and a database
 * connector. The Postgres connector implements it today; a MySQL connector must
 * pass the same contract suite (agent/test/connector-contract.ts) unchanged.
 *
 * Every method takes an AbortSignal: when it aborts, the connector cancels the
 * running statement, rolls back any open transaction and rejects with a
 * `cancelled` DrayError. Every failure is a DrayError whose `retryable` flag
 * says whether the same call may succeed again (see the connector's error mapping).
 */

/** A table: `schema.name`. */
export interface EntityName {
  schema: string;
  name: string;
}

export type ConditionOperator = "eq" | "neq" | "lt" | "lte" | "gt" | "gte" | "is_null" | "is_not_null" | "in";

/** One filter term; terms are AND-ed. Values are bound as parameters, never spliced into SQL. */
export interface Condition {
  field: string;
  operator: ConditionOperator;
  values: string[];
}

/**
 * Rows in PostgreSQL COPY text format: one row per `\n`-terminated line,
 * tab-separated fields in `fields` order, `\N` for NULL, backslash escapes.
 * Timestamps are ISO in UTC. The control plane forwards `data` untouched.
 */
export interface RowBatch {
  encoding: "copy_text";
  fields: string[];
  rowCount: number;
  data: Uint8Array;
}

export interface FieldDescription {
  name: string;
  /** Type as the catalog formats it, e.g. `bigint`, `character varying(80)`. */
  type: string;
  nullable: boolean;
  hasDefault: boolean;
  generated: boolean;
}

/** A foreign key from an entity to another. */
export interface ReferenceDescription {
  name: string;
  fields: string[];
  referencedEntity: EntityName;
  referencedFields: string[];
  /**
   * The database enforces it for every row: declared on the table itself,
   * validated (not NOT VALID), its triggers not disabled.
   */
  validated: boolean;
}

export interface EntityDescription extends EntityName {
  fields: FieldDescription[];
  /** Empty when the table has no primary key (it can then not be read by keyset). */
  primaryKey: string[];
  references: ReferenceDescription[];
  /** Row estimate; -1 when unknown. */
  estimatedRows: number;
  /**
   * Where `estimatedRows` comes from: planner statistics (the default), an exact
   * count or a sampled estimate (for tables never analysed).
   */
  estimateSource?: "statistics" | "exact" | "sampled";
  /**
   * The fields that identify a row: the primary key, else the unique key whose
   * fields are all NOT NULL (fewest fields, then index name); empty when the
   * table has neither (it can then be inserted and cleaned, not merged).
   */
  rowKey?: string[];
  /**
   * `partitioned` (written through it; its partitions are not entities) or
   * `inheritance_parent` (read, counted and cleaned with ONLY); `table` otherwise.
   */
  kind?: EntityKind;
  /** The fields of each valid, non-partial unique index on plain columns (primary key included). */
  uniqueKeys?: string[][];
}

/** What kind of table an entity is. */
export type EntityKind = "table" | "partitioned" | "inheritance_parent";

export interface SchemaDescription {
  /** Sorted by schema, then name. */
  entities: EntityDescription[];
  /** Stable hash of the description; changes when the schema does. */
  fingerprint: string;
}

export interface TestConnectionResult {
  databaseLatencyMs: number;
  serverVersion: string;
  databaseName: string;
}

export interface ReadBatchRequest {
  entity: EntityName;
  /** Fields to read, in order; empty or absent means every non-generated field. */
  fields?: string[];
  /**
   * Keyset key, normally the row key. Empty for a table without a row key: it
   * is then read by physical position within one exported snapshot, and the
   * cursor is `[snapshotId, ctid, totalBlocks]`.
   */
  keyFields: string[];
  /** Read rows strictly after this key position (text form of each key field); null = from the start. */
  after?: string[] | null;
  /** Read no row after this key position (inclusive); null = no bound. Used to re-read one batch's exact range. */
  until?: string[] | null;
  maxRows: number;
  /** Byte budget for `rows.data`; the read stops early to stay within it (at least one row is returned). */
  maxBytes: number;
  where?: Condition[];
  /** Fields returned as NULL whatever their value (references deferred to a back-fill pass); must be among `fields`. */
  nullFields?: string[];
  /**
   * Transformations applied before the rows leave the agent (action
   * "transform"). A transformed key field makes `last` (and the `after` and
   * `until` that come back) one sealed value.
   */
  transforms?: FieldTransform[];
  /**
   * Data-quality rules checked on every row read, on raw values and before the
   * transforms: a row that fails one is left out of `rows` and reported in
   * `rejected`. `last` still covers it, so the next read goes on after it.
   */
  qualityRules?: FieldQualityRule[];
  /**
   * Continuous pipelines: keeps the read below a high-water mark so that a row
   * committed late is never passed over. `keyFields` are then the cursor field
   * followed by the row key, and the cursor field must be `keyFields[0]`. Rows
   * whose cursor is NULL are never read this way. Ignored when `until` is given
   * (a range already read under a bound is read again whole).
   */
  continuous?: ContinuousBound;
  /**
   * Read in this exported snapshot ({@link Connector.exportSnapshot}), so that
   * every entity of a run is read as of one moment. Ignored by continuous reads
   * and by tables without a row key.
   *
   * @throws DrayError `failed_precondition` (reason `snapshot_gone`) when it is no longer held.
   */
  snapshotId?: string;
}

/** The high-water mark of a continuous read (see {@link ReadBatchRequest.continuous}). */
export interface ContinuousBound {
  /** The cursor field: `keyFields[0]`. */
  cursorField: string;
  /**
   * Date/time cursors: read only values older than now() minus this lag (and
   * older than the start of the oldest transaction still writing). A
   * non-negative integer of at most one day (86,400,000). Unused by other cursors.
   */
  safetyLagMs: number;
}

/** One data-quality rule on one field (common/src/quality-rules.ts names the rules). */
export interface FieldQualityRule {
  field: string;
  rule: string;
  options: Record<string, unknown>;
}

/** A row read but left out because it failed a data-quality rule. */
export interface QualityRejectedRow {
  /** The row's key values, transformed where the key is; null for NULL. */
  key: (string | null)[];
  field: string;
  rule: string;
  /** Names the rule and its options; never the value. */
  message: string;
}

/** One field's transformation (common/src/transformers.ts names the transformers). */
export interface FieldTransform {
  field: string;
  transformer: string;
  options: Record<string, unknown>;
}

export interface ReadBatchResult {
  rows: RowBatch;
  /** Key position of the last row returned; null when no row was returned. */
  last: string[] | null;
  /** True when no row exists after `last` at the time of the read. */
  done: boolean;
  /** With transforms: the id of the transform key used (never the key). */
  transformKeyId?: string;
  /** Rows left out because they failed a data-quality rule; absent when none. */
  rejected?: QualityRejectedRow[];
  /** With transforms: per value transformer, how many non-NULL values it took and left unchanged. */
  transformStats?: { field: string; values: number; unchanged: number }[];
}

/**
 * `insert` adds rows (a key conflict is a rejected record); `merge` upserts on
 * the key; `update` changes rows already present (by key) and inserts nothing
 * (used to back-fill deferred references).
 */
export type WriteStrategy = "insert" | "merge" | "update";
export type RejectPolicy = "isolate" | "fail";

export interface WriteBatchRequest {
  /** Idempotency key recorded in the target ledger in the same transaction as the rows. */
  batchId: string;
  entity: EntityName;
  strategy: WriteStrategy;
  keyFields: string[];
  rows: RowBatch;
  rejectPolicy: RejectPolicy;
  /**
   * Commit only after this batch (same target) has committed: wait for its
   * transaction to end, then fail with a retryable `aborted` error if it did
   * not commit. Keeps committed batches in order with several writes in flight.
   */
  previousBatchId?: string;
  /**
   * False or absent: triggers and rules of the target are off during the write
   * (session_replication_role = replica) and the agent checks the foreign keys
   * of the written fields itself. True: they fire.
   */
  fireTriggers?: boolean;
  /** Foreign keys (constraint names) this write does not check: validated later by {@link Connector.finishEntity}. */
  uncheckedReferences?: string[];
  /**
   * Continuous pipelines: the position after this batch (cursor, then row key,
   * as text), recorded in the batch's ledger row in the same transaction as the rows.
   */
  position?: string[];
  /**
   * The entity's last batch: once the predecessor has committed, and before
   * this batch commits, move the sequences its fields use as
   * {@link FinishEntityRequest.moveSequences} does. Not done by a replay.
   */
  moveSequences?: boolean;
}

/** What to do once an entity is loaded. */
export interface FinishEntityRequest {
  entity: EntityName;
  /** Move the sequences of the entity's fields (owned, identity, or in a default) up to each field's maximum. */
  moveSequences: boolean;
  /** Foreign keys (constraint names) to validate, reporting each violating row by `keyFields`. */
  checkReferences: string[];
  keyFields: string[];
}

/** One sequence looked at by {@link Connector.finishEntity}. */
export interface SequenceMove {
  /** Qualified name, quoted where needed. */
  sequence: string;
  field: string;
  /** Values as text (int8). */
  before: string;
  after: string;
  moved: boolean;
}

/** A row whose foreign key has no referenced row. */
export interface ReferenceViolation {
  reference: string;
  key: string[];
  message: string;
}

export interface FinishEntityResult {
  sequences: SequenceMove[];
  /** At most 1,000 listed. */
  violations: ReferenceViolation[];
  violationCount: number;
}

export interface RejectedRecord {
  /** Key field values of the rejected row, in key order. */
  key: string[];
  /** Field the database blamed, when it said. */
  field?: string;
  message: string;
  sqlState?: string;
}

export interface WriteBatchResult {
  /**
   * True when the ledger already held the batch id: nothing was written now,
   * and the counts are the ones the ledger recorded at the first commit.
   */
  alreadyCommitted: boolean;
  created: number;
  updated: number;
  rejected: number;
  rejectedRecords: RejectedRecord[];
  /** Set when `moveSequences` was asked and done in this batch's transaction: every sequence looked at. */
  sequences?: SequenceMove[];
}

/**
 * Digests the keys of an entity range by range (continuous reconcile). The
 * ranges follow the key order: `(after, b1], (b1, b2], …, (bn, until]`, the
 * boundaries picked by the connector (`splitEvery`) or given (`boundaries`).
 */
export interface DigestKeysRequest {
  entity: EntityName;
  /** NOT NULL fields covering a unique index; empty = the row key. */
  keyFields: string[];
  /** Rows strictly after this key position; null = from the start. */
  after?: string[] | null;
  /** Rows up to this key position (inclusive); null = to the end. */
  until?: string[] | null;
  /**
   * When > 0 (at most 1,000,000): the connector picks the boundaries, the key
   * of every `splitEvery`-th row, at most 1,000 of them.
   */
  splitEvery?: number;
  /** Boundaries chosen by the caller (ascending, at most 1,000); not with `splitEvery`. */
  boundaries?: string[][];
}

/**
 * The count and digest of one range. The digest is the same on every
 * connector for the same set of keys: each row's key values in text form, each
 * preceded by its UTF-8 length in bytes and `:`; the first 60 bits (15 hex
 * digits) of that string's MD5 are the row's hash; the digest is the sum of
 * the hashes mod 2^64 as 16 lowercase hex digits.
 */
export interface RangeDigest {
  count: number;
  digest: string;
}

export interface DigestKeysResult {
  /** The boundaries used (given or picked), as key positions in text form. */
  boundaries: string[][];
  /** One per range, in key order: `boundaries.length + 1`. */
  ranges: RangeDigest[];
}

/** A database connector. See the module comment for the cancellation and error rules. */
export interface Connector {
  readonly platform: "postgres" | "mysql";
  /** Live round trip to the database. */
  testConnection(signal: AbortSignal): Promise<TestConnectionResult>;
  /**
   * Describes entities through the catalogs; `schemas` empty = every user schema (never the ledger schema `dray`).
   * With `estimates: false` only the planner statistics are used (no count or sample of
   * never-analysed tables): for a schema fingerprint, which ignores estimates anyway.
   */
  describeSchema(
    schemas: string[],
    signal: AbortSignal,
    options?: { estimates?: boolean },
  ): Promise<SchemaDescription>;
  count(entity: EntityName, where: Condition[], signal: AbortSignal): Promise<number>;
  /**
   * Counts every row of each entity (CountTask.more), in the order given, in as
   * few statements as the connector can; rejects `not_found` when one is not a table.
   * With `estimateOverBytes`, a larger table with planner statistics gets their
   * estimate instead, and the most rows it can hold (CountTask.estimate_over_bytes).
   */
  countMany(
    entities: readonly EntityName[],
    signal: AbortSignal,
    options?: { estimateOverBytes?: number },
  ): Promise<{ count: number; estimated: boolean; upperBound: number }[]>;
  readBatch(request: ReadBatchRequest, signal: AbortSignal): Promise<ReadBatchResult>;
  /**
   * Writes the batch as one transaction together with its ledger entry.
   * A replayed batch id answers `alreadyCommitted` and writes nothing.
   * With `isolate`, a batch failing on data is split: good rows commit and each
   * bad row is reported. With `fail`, a data error rolls everything back and
   * rejects with a non-retryable DrayError (`invalid_argument` or `failed_precondition`).
   */
  writeBatch(request: WriteBatchRequest, signal: AbortSignal): Promise<WriteBatchResult>;
  /**
   * Deletes every row of the entity (its own rows: ONLY for a plain table) in one
   * transaction; returns the count. `suspendReferences`: with triggers and
   * foreign keys off, for the tables of a NOT NULL cycle.
   */
  cleanEntity(
    entity: EntityName,
    signal: AbortSignal,
    options?: { suspendReferences?: boolean },
  ): Promise<number>;
  /** Moves sequences and validates references once an entity is loaded. */
  finishEntity(request: FinishEntityRequest, signal: AbortSignal): Promise<FinishEntityResult>;
  /** Deletes the rows with these keys; returns the count. */
  deleteRecords(
    entity: EntityName,
    keyFields: string[],
    keys: string[][],
    signal: AbortSignal,
  ): Promise<number>;
  /** Counts and digests the keys of an entity range by range (see {@link DigestKeysRequest}). */
  digestKeys(request: DigestKeysRequest, signal: AbortSignal): Promise<DigestKeysResult>;
  /**
   * Exports a snapshot of the database and holds it until {@link releaseSnapshot},
   * 15 minutes without a read in it, or {@link close}; returns its id.
   */
  exportSnapshot(signal: AbortSignal): Promise<string>;
  /** Lets a snapshot exported here go; an unknown id is ignored. */
  releaseSnapshot(snapshotId: string): Promise<void>;
  /** Closes pools; further calls reject. */
  close(): Promise<void>;
}
