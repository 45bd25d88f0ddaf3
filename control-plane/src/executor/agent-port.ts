/**
 * The executor's only way to reach agents: a typed port with its own request
 * and result types, independent of the wire protocol. `gateway-agent-port.ts`
 * implements it over the agent gateway (agents held by this replica, or relayed
 * to the replica that holds them); `test/fake-agent.ts` implements it in
 * process for the executor's unit tests.
 */

import type { SchemaSnapshot } from "../environments/schema-snapshot.js";

/** A table or view of an environment. */
export interface EntityAddress {
  schema: string;
  name: string;
}

/**
 * Rows read by one agent, handed to another unchanged: the executor only
 * counts them, so batches are forwarded without being decoded or re-encoded.
 * Each port implementation has its own concrete type.
 */
export interface RowPayload {
  readonly rowCount: number;
  /** Encoded size, for the batch's bookkeeping. */
  readonly byteLength: number;
}

/** One field's transformation, applied by the source agent before a row leaves it. */
export interface TransformSpec {
  field: string;
  transformer: string;
  options: Record<string, unknown>;
}

/** One data-quality rule, checked by the source agent on raw values. */
export interface QualityRuleSpec {
  field: string;
  rule: string;
  options: Record<string, unknown>;
}

/** A keyset page of one entity. */
export interface ReadRequest {
  entity: EntityAddress;
  fields: readonly string[];
  keyFields: readonly string[];
  /** Read rows strictly after this key; null from the start. */
  after: readonly string[] | null;
  /** Read no row after this key (inclusive); null for no bound. */
  until: readonly string[] | null;
  maxRows: number;
  maxBytes: number;
  transforms: readonly TransformSpec[];
  qualityRules: readonly QualityRuleSpec[];
  /**
   * Continuous pipelines: the key fields are the cursor field then the row
   * key, and the agent reads only below its high-water mark (ReadBatchTask.continuous).
   */
  continuous?: { cursorField: string; safetyLagMs: number };
  /** Read in this exported source snapshot (the run's, {@link AgentPort.exportSnapshot}). */
  snapshotId?: string;
}

/** A row the agent did not pass on: by its key (transformed where the key is), never its values. */
export interface RejectedRow {
  key: readonly string[];
  /** The field blamed, or empty. */
  field: string;
  message: string;
  /** SQLSTATE of a database error; empty for a data-quality rule. */
  sqlState: string;
}

export interface ReadResult {
  rows: RowPayload;
  /** Key of the last row read (including rows left out by a rule); null when none was read. */
  last: readonly string[] | null;
  /** True when the read reached the end of the entity (or of `until`). */
  done: boolean;
  /** Rows left out for failing a data-quality rule. */
  qualityRejected: readonly RejectedRow[];
  /** With transforms: the id of the source agent's transform key (never the key); empty otherwise. */
  transformKeyId: string;
}

export type WriteMode = "insert" | "merge" | "update";

/** One batch written as one target transaction under its ledger id. */
export interface WriteRequest {
  batchId: string;
  entity: EntityAddress;
  mode: WriteMode;
  keyFields: readonly string[];
  rows: RowPayload;
  /**
   * A fence writes none of the rows (they only give its shape): it answers
   * with the first commit's counts if the id committed, or seals the id so
   * it never will.
   */
  fence: boolean;
  /** Reject failing rows one by one (`isolate`) or fail the whole batch (`fail`). */
  onRowError: "isolate" | "fail";
  /** Commit only after this batch has committed; empty for none. */
  previousBatchId: string;
  fireTriggers: boolean;
  uncheckedReferences: readonly string[];
  /** Continuous pipelines: the position after this batch, recorded in the target's ledger with the rows. */
  position?: readonly string[] | null;
  /**
   * The entity's last batch: the agent moves the sequences its fields use, as
   * {@link FinishRequest.moveSequences}, once every earlier batch has committed.
   */
  moveSequences?: boolean;
}

export interface WriteResult {
  /** The ledger already held the id: nothing was written now; the counts are the first commit's. */
  alreadyCommitted: boolean;
  created: number;
  updated: number;
  rejected: number;
  rejectedRows: readonly RejectedRow[];
  /**
   * Set when the write moved the entity's sequences (`moveSequences`): each one
   * looked at. Absent from a replay and from an agent that predates it.
   */
  sequences?: readonly SequenceChecked[];
}

/** Deletes the rows of one entity with the given key values (DeleteRecordsTask). */
export interface DeleteKeysRequest {
  entity: EntityAddress;
  keyFields: readonly string[];
  keys: readonly (readonly string[])[];
}

/**
 * Digests the keys of one entity range by range where the rows are
 * (DigestKeysTask, continuous reconcile). The ranges follow the key order:
 * `(after, b1], (b1, b2], …, (bn, until]`, the boundaries picked by the agent
 * (`splitEvery`) or given (`boundaries`), never both.
 */
export interface DigestKeysRequest {
  entity: EntityAddress;
  keyFields: readonly string[];
  /** Rows strictly after this key; null from the start. */
  after: readonly string[] | null;
  /** Rows up to this key (inclusive); null to the end. */
  until: readonly string[] | null;
  /**
   * When > 0 (at most 1,000,000): the agent picks the key of every
   * `splitEvery`-th row as a boundary, at most 1,000 of them; 0 otherwise.
   */
  splitEvery: number;
  /** Boundaries given instead, ascending, at most 1,000. */
  boundaries: readonly (readonly string[])[];
}

/**
 * The count and digest of one key range. Equal on two sides when they hold
 * the same keys; equal by chance for different keys with a probability of at
 * most 2^-60 (the digest is defined in proto/dray/agent/v1/agent.proto, RangeDigest).
 */
export interface KeyRangeDigest {
  count: number;
  digest: string;
}

export interface DigestKeysResult {
  /** The boundaries used (given or picked). */
  boundaries: readonly (readonly string[])[];
  /** One per range, in key order: `boundaries.length + 1`. */
  ranges: readonly KeyRangeDigest[];
}

/** Deletes every row of one target entity. */
export interface CleanRequest {
  entity: EntityAddress;
  /** Delete with references suspended (entities of a cycle). */
  suspendReferences: boolean;
}

/** What an agent does once an entity is loaded. */
export interface FinishRequest {
  entity: EntityAddress;
  /** Move the sequences the entity's fields use up to the fields' maximum (never down). */
  moveSequences: boolean;
  /** Validate these postponed references (constraint names). */
  checkReferences: readonly string[];
  /** Fields that name a violating row. */
  keyFields: readonly string[];
}

/** One sequence a finish looked at. */
export interface SequenceChecked {
  sequence: string;
  field: string;
  before: string;
  after: string;
  moved: boolean;
}

/** One row whose postponed reference has no referenced row. */
export interface ReferenceViolation {
  reference: string;
  key: readonly string[];
  message: string;
}

export interface FinishResult {
  sequences: readonly SequenceChecked[];
  /** The first violations (at most 1,000); `violationCount` counts them all. */
  violations: readonly ReferenceViolation[];
  violationCount: number;
}

/** Per call: the run's cancel signal and a deadline. */
export interface CallOptions {
  signal?: AbortSignal;
  timeoutMs: number;
  /** Largest result accepted, in bytes (reads); the port's default otherwise. */
  maxResultBytes?: number;
}

/** Since when an environment's agent has been away, and which agent left. */
export interface AgentAbsence {
  /** ms since the Unix epoch. */
  since: number;
  agentId: string | undefined;
}

/**
 * The executor's view of the agents. A call is cancelled through its
 * `signal` (the agent is told to stop the task). Every call that finds the agent away
 * rejects with a `DrayError` that {@link import("../gateway/agent-sessions.js").isAgentAway}
 * recognises, its `details.environmentId` set.
 */
/** One entity's rows as counted at preflight (CountResult). */
export interface EntityCount {
  /** Exact, or the planner's estimate when `estimated`. */
  count: number;
  estimated: boolean;
  /** With `estimated`: the most rows the table's pages can hold. */
  upperBound: number;
}

export interface AgentPort {
  readBatch(environmentId: string, request: ReadRequest, options: CallOptions): Promise<ReadResult>;
  writeBatch(environmentId: string, request: WriteRequest, options: CallOptions): Promise<WriteResult>;
  /** The environment's entities, fields, keys and references. */
  describe(
    environmentId: string,
    options: CallOptions & { statisticsOnly?: boolean },
  ): Promise<SchemaSnapshot>;
  count(environmentId: string, entity: EntityAddress, options: CallOptions): Promise<number>;
  /**
   * Every row of each entity, in the order given, in one task (CountTask.more);
   * with `estimateOverBytes`, larger tables with planner statistics are
   * estimated instead (CountTask.estimate_over_bytes). Resolves `undefined`
   * when the agent predates counting several at once.
   */
  countMany(
    environmentId: string,
    entities: readonly EntityAddress[],
    options: CallOptions & { estimateOverBytes?: number },
  ): Promise<EntityCount[] | undefined>;
  clean(environmentId: string, request: CleanRequest, options: CallOptions): Promise<{ deleted: number }>;
  /** Rows the control plane made itself (a loaded file), as COPY text lines of `fields`. */
  copyTextRows(fields: readonly string[], data: Uint8Array, rowCount: number): RowPayload;
  /** The values of read rows, each row's in the read's field order (reconcile reads keys only). */
  rowValues(rows: RowPayload): string[][];
  /** Deletes the rows with these keys (continuous reconcile). */
  deleteKeys(
    environmentId: string,
    request: DeleteKeysRequest,
    options: CallOptions,
  ): Promise<{ deleted: number }>;
  finish(environmentId: string, request: FinishRequest, options: CallOptions): Promise<FinishResult>;
  /** Counts and digests the keys of one entity range by range (continuous reconcile). */
  digestKeys(
    environmentId: string,
    request: DigestKeysRequest,
    options: CallOptions,
  ): Promise<DigestKeysResult>;
  /**
   * Exports a snapshot of the environment's database and has the agent hold it
   * (ExportSnapshotTask); reads given its id see the database as of that moment.
   */
  exportSnapshot(environmentId: string, options: CallOptions): Promise<string>;
  /** Lets a snapshot go (ReleaseSnapshotTask); an unknown id is ignored. */
  releaseSnapshot(environmentId: string, snapshotId: string, options: CallOptions): Promise<void>;
  /** True when the environment's agent is connected (to this replica or, routed, to another). */
  isConnected(environmentId: string): boolean;
  /** When the agent's session opened, if it is connected to this replica. */
  connectedSince(environmentId: string): number | undefined;
  /** When the agent left, if it is away. */
  absence(environmentId: string): AgentAbsence | undefined;
  /** Resolves once the agent is connected; rejects after `limitMs` of absence or on `signal`. */
  waitForAgent(environmentId: string, limitMs: number, signal: AbortSignal): Promise<void>;
}
