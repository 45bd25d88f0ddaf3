import { compileQualityRule, DrayError, type Logger, type QualityCheck, silentLogger } from "@dray/common";
import type postgres from "postgres";
import type {
  Condition,
  Connector,
  DigestKeysRequest,
  DigestKeysResult,
  EntityName,
  FieldQualityRule,
  FieldTransform,
  FinishEntityRequest,
  FinishEntityResult,
  ReadBatchRequest,
  ReadBatchResult,
  SchemaDescription,
  TestConnectionResult,
  WriteBatchRequest,
  WriteBatchResult,
} from "../../connector.js";
import { memoizeTransform } from "../../transform/memoize.js";
import { isSealed, openCursor, sealCursor } from "../../transform/sealed-cursor.js";
import type { TransformKey } from "../../transform/transform-key.js";
import { processCopyPage, type ValueTransform } from "../../transform/transform-rows.js";

/** Memoized field transformers kept at most (each holds a bounded cache); beyond, they start afresh. */
const MAX_MEMOS = 64;

import { templateFactory } from "../../transform/wrappers.js";
import { CatalogCache } from "./catalog-cache.js";
import { createPool } from "./connection-options.js";
import { ContinuousMarks } from "./continuous-bound.js";
import { countManyRows, countRows, type ManyCount } from "./count-rows.js";
import { deleteAllRows, deleteRowsByKey } from "./delete-rows.js";
import { describeSchema } from "./describe-schema.js";
import { digestKeys, validateDigestRequest } from "./digest-keys.js";
import { isConnectionFailure, toDrayError } from "./error-mapping.js";
import { finishEntity } from "./finish-entity.js";
import { displayName, validateEntityName, validateFieldList } from "./identifiers.js";
import { validateReadRequest } from "./keyset-read.js";
import { createLedger } from "./ledger.js";
import { PoolKeeper } from "./pool-keeper.js";
import { type ReadMethod, readBatch } from "./read-batch.js";
import { abortable, type Backend, Session, type SessionPools, textParams } from "./session.js";
import { SnapshotHolder } from "./snapshot-holder.js";
import type { StagingMode } from "./stage-rows.js";
import { type PreparedRows, prepareRows, validateWriteRequest, writeStagedBatch } from "./write-batch.js";

/** Builds the value function of a transformer for a column of `columnType`, keyed by `key`. */
export type TransformCompiler = (
  transformer: string,
  options: Record<string, unknown>,
  key: Uint8Array,
  columnType: string,
) => ValueTransform;

/** Options of {@link createPostgresConnector}. */
export interface PostgresConnectorOptions {
  /** `postgres://user:password@host:port/database?sslmode=…` */
  url: string;
  /** Pool size. @default 8 */
  maxConnections?: number;
  /** How write batches reach the staging table (`insert` also turns off the plain-COPY path). @default "copy" */
  staging?: StagingMode;
  /** How read pages are read: COPY TO STDOUT, or SELECT for servers without it. @default "copy" */
  readMethod?: ReadMethod;
  /** Whether {@link PostgresConnector.exportSnapshot} holds snapshots for runs (off: it refuses). @default true */
  runSnapshots?: boolean;
  /** The agent's transform key (see agent/src/transform/transform-key.ts); reads with transforms need it. */
  transformKey?: TransformKey;
  /** Builds a transformer's value function (agent/src/transform); reads with transforms need it. */
  compileTransform?: TransformCompiler;
  logger?: Logger;
}

/** How long a cancel request may take before the session gives up waiting for it. */
const CANCEL_WAIT_MS = 10_000;

const CANCEL_SQL =
  "select pg_catalog.pg_cancel_backend(pid) from pg_catalog.pg_stat_activity where pid = $1::int4 and backend_start = $2::timestamptz";

class PostgresConnector implements Connector {
  readonly platform = "postgres" as const;
  private readonly keeper: PoolKeeper;
  private control: postgres.Sql | undefined;
  private ledgerReady: Promise<void> | undefined;
  private closed = false;
  private readonly pools: SessionPools;
  /** Compiled transformers, by transformer, options and column type. */
  private readonly compiled = new Map<string, ValueTransform>();
  /** Memoized transformers, by (entity, field, transformer, options, column type). */
  private readonly memos = new Map<string, ValueTransform>();
  /** Compiled data-quality checks, by (rule, options, column type). */
  private readonly checks = new Map<string, QualityCheck>();
  /** Snapshots held open for consistent reads of tables without a row key. */
  private readonly snapshots: SnapshotHolder;
  /** Catalog look-ups of reads, writes and finishes, shared by their batches (describe reads the catalog as it is). */
  private readonly catalog = new CatalogCache();
  /** High-water marks of continuous reads on non-date/time cursors (continuous-bound.ts). */
  private readonly marks = new ContinuousMarks();

  constructor(private readonly options: PostgresConnectorOptions & { logger: Logger }) {
    this.keeper = new PoolKeeper(
      (hooks) =>
        createPool({ url: options.url, max: options.maxConnections ?? 8, logger: options.logger, ...hooks }),
      options.logger,
    );
    const keeper = this.keeper;
    this.snapshots = new SnapshotHolder({ url: options.url, logger: options.logger });
    this.pools = {
      keeper,
      get sql() {
        return keeper.currentPool();
      },
      logger: options.logger,
      cancelBackend: (backend) => this.cancelBackend(backend),
    };
  }

  testConnection(signal: AbortSignal): Promise<TestConnectionResult> {
    return this.run("test connection", signal, async (session) => {
      const started = performance.now();
      const [row] = await session.query<{ version: string; database: string }>(
        "select current_setting('server_version') as version, current_database() as database",
      );
      return {
        databaseLatencyMs: Math.round((performance.now() - started) * 1000) / 1000,
        serverVersion: row?.version ?? "",
        databaseName: row?.database ?? "",
      };
    });
  }

  describeSchema(
    schemas: string[],
    signal: AbortSignal,
    options: { estimates?: boolean } = {},
  ): Promise<SchemaDescription> {
    return this.run("describe schema", signal, (session) => describeSchema(session, schemas, options));
  }

  count(entity: EntityName, where: Condition[], signal: AbortSignal): Promise<number> {
    return this.run(
      `count ${describe(entity)}`,
      signal,
      (session) => countRows(session, entity, where ?? []),
      () => validateEntityName(entity),
    );
  }

  countMany(
    entities: readonly EntityName[],
    signal: AbortSignal,
    options: { estimateOverBytes?: number } = {},
  ): Promise<ManyCount[]> {
    return this.guard(
      `count ${entities?.length} entities`,
      signal,
      () => countManyRows({ run: (fn) => Session.run(this.pools, signal, fn) }, entities, options),
      () => {
        if (!Array.isArray(entities)) throw new DrayError("invalid_argument", "entities must be a list");
        for (const entity of entities) validateEntityName(entity);
      },
    );
  }

  readBatch(request: ReadBatchRequest, signal: AbortSignal): Promise<ReadBatchResult> {
    const transforms = request?.transforms ?? [];
    const rules = request?.qualityRules ?? [];
    return this.run(
      `read ${describe(request?.entity)}`,
      signal,
      (session) =>
        transforms.length === 0 && rules.length === 0
          ? readBatch(
              session,
              request,
              this.options.readMethod ?? "copy",
              this.snapshots,
              this.catalog,
              this.marks,
            )
          : this.readProcessed(session, request, transforms, rules),
      () => validateReadRequest(request),
    );
  }

  /**
   * A page read, then checked against its data-quality rules and transformed
   * before it leaves the agent: rows that fail a rule are left out and
   * reported by their (transformed) key. Cursors over a transformed key field
   * travel sealed; the transformers are compiled once per (transformer,
   * options, column type) and keyed by the agent's key.
   */
  private async readProcessed(
    session: Session,
    request: ReadBatchRequest,
    transforms: readonly FieldTransform[],
    rules: readonly FieldQualityRule[],
  ): Promise<ReadBatchResult> {
    const { transformKey, compileTransform } = this.options;
    if (transforms.length > 0 && (!transformKey || !compileTransform))
      throw new DrayError(
        "failed_precondition",
        "this agent cannot transform: it was started without a transform key (set DRAY_AGENT_TRANSFORM_KEY or give it a state directory)",
      );
    const sealed = transforms.some((t) => request.keyFields.includes(t.field));
    const open = (values: string[] | null | undefined) =>
      values && transformKey && isSealed(values) ? openCursor(transformKey.key, values) : values;
    const plain = { ...request, transforms: [] as FieldTransform[] };
    const after = open(request.after);
    const until = open(request.until);
    if (after !== undefined) plain.after = after;
    if (until !== undefined) plain.until = until;
    const info = await this.catalog.entity(session, request.entity);
    const page = await readBatch(
      session,
      plain,
      this.options.readMethod ?? "copy",
      this.snapshots,
      this.catalog,
      this.marks,
    );
    const types = new Map(info.fields.map((f) => [f.name, f.type]));
    const plans = transforms.map((t) => {
      const index = page.rows.fields.indexOf(t.field);
      if (index < 0)
        throw new DrayError(
          "invalid_argument",
          `transformed field ${JSON.stringify(t.field)} is not among the fields read`,
        );
      if (t.transformer === "template") {
        const fill = templateFactory({ ...t.options }, [...page.rows.fields]);
        return { index, field: t.field, transformer: t.transformer, apply: () => null, applyRow: fill };
      }
      const type = types.get(t.field) ?? "text";
      const cacheKey = JSON.stringify([t.transformer, t.options, type]);
      // One memo per field of an entity: repeated values (foreign keys, statuses) cost a lookup, and a
      // field of distinct values switches its memo off (memoize.ts).
      const memoKey = JSON.stringify([request.entity.schema, request.entity.name, t.field, cacheKey]);
      let apply = this.memos.get(memoKey);
      if (!apply) {
        let compiled = this.compiled.get(cacheKey);
        if (!compiled) {
          compiled = compileTransform!(t.transformer, t.options, transformKey!.key, type);
          this.compiled.set(cacheKey, compiled);
        }
        apply = memoizeTransform(compiled);
        if (this.memos.size >= MAX_MEMOS) this.memos.clear();
        this.memos.set(memoKey, apply);
      }
      return { index, field: t.field, transformer: t.transformer, apply };
    });
    const rulePlans = rules.map((r) => {
      const index = page.rows.fields.indexOf(r.field);
      if (index < 0)
        throw new DrayError(
          "invalid_argument",
          `data-quality rule ${r.rule} is on field ${JSON.stringify(r.field)}, which is not among the fields read`,
        );
      const type = types.get(r.field) ?? "text";
      const cacheKey = JSON.stringify(["rule", r.rule, r.options, type]);
      let check = this.checks.get(cacheKey);
      if (!check) {
        check = compileQualityRule(r.rule, r.options, type);
        this.checks.set(cacheKey, check);
      }
      return { index, field: r.field, rule: r.rule, options: r.options, check };
    });
    const processed = processCopyPage(page.rows.data, {
      transforms: plans,
      rules: rulePlans,
      fieldNames: page.rows.fields,
      keyIndexes: request.keyFields.map((k) => page.rows.fields.indexOf(k)).filter((i) => i >= 0),
    });
    return {
      ...page,
      rows: { ...page.rows, data: processed.data, rowCount: processed.rowCount },
      last: sealed && page.last && transformKey ? sealCursor(transformKey.key, page.last) : page.last,
      ...(transformKey && transforms.length > 0 ? { transformKeyId: transformKey.id } : {}),
      ...(processed.rejected.length > 0 ? { rejected: processed.rejected } : {}),
      ...(processed.stats.length > 0
        ? {
            transformStats: processed.stats.map(({ field, values, unchanged }) => ({
              field,
              values,
              unchanged,
            })),
          }
        : {}),
    };
  }

  writeBatch(request: WriteBatchRequest, signal: AbortSignal): Promise<WriteBatchResult> {
    let prepared: PreparedRows;
    return this.run(
      `write ${describe(request?.entity)}`,
      signal,
      (session) =>
        writeStagedBatch(session, request, prepared, this.options.staging ?? "copy", true, this.catalog),
      () => {
        validateWriteRequest(request);
        prepared = prepareRows(request.rows.data, request.rows.fields.length, request.rows.rowCount);
      },
      // Before taking a connection: the ledger is created on its own connection, and waiting
      // for it while holding one would deadlock a pool whose connections are all writing.
      () => abortable(this.ensureLedger(), signal, () => {}),
    );
  }

  cleanEntity(
    entity: EntityName,
    signal: AbortSignal,
    options: { suspendReferences?: boolean } = {},
  ): Promise<number> {
    return this.run(
      `clean ${describe(entity)}`,
      signal,
      (session) => deleteAllRows(session, entity, options),
      () => validateEntityName(entity),
    );
  }

  finishEntity(request: FinishEntityRequest, signal: AbortSignal): Promise<FinishEntityResult> {
    return this.run(
      `finish ${describe(request?.entity)}`,
      signal,
      (session) => finishEntity(session, request, this.catalog),
      () => {
        validateEntityName(request.entity);
        validateFieldList("keyFields", request.keyFields ?? []);
      },
    );
  }

  deleteRecords(
    entity: EntityName,
    keyFields: string[],
    keys: string[][],
    signal: AbortSignal,
  ): Promise<number> {
    return this.run(
      `delete from ${describe(entity)}`,
      signal,
      (session) => deleteRowsByKey(session, entity, keyFields ?? [], keys),
      () => {
        validateEntityName(entity);
        validateFieldList("keyFields", keyFields ?? []);
      },
    );
  }

  digestKeys(request: DigestKeysRequest, signal: AbortSignal): Promise<DigestKeysResult> {
    return this.run(
      `digest the keys of ${describe(request?.entity)}`,
      signal,
      (session) => digestKeys(session, request),
      () => validateDigestRequest(request),
    );
  }

  async exportSnapshot(signal: AbortSignal): Promise<string> {
    if (this.closed) throw new DrayError("failed_precondition", "the Postgres connector is closed");
    if (this.options.runSnapshots === false)
      throw new DrayError(
        "failed_precondition",
        "this agent holds no snapshot for runs (DRAY_AGENT_RUN_SNAPSHOTS=off)",
        { retryable: false },
      );
    try {
      return (await this.snapshots.export(null, signal)).snapshotId;
    } catch (error) {
      throw toDrayError(error, { aborted: signal.aborted, operation: "export a snapshot" });
    }
  }

  async releaseSnapshot(snapshotId: string): Promise<void> {
    await this.snapshots.release(String(snapshotId), "the run let it go");
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([this.keeper.close(), this.control?.end({ timeout: 1 }), this.snapshots.close()]);
  }

  /**
   * Runs `fn` on a reserved session; every failure leaves as a DrayError.
   * `check` validates the request first, before a connection is taken.
   */
  private run<T>(
    operation: string,
    signal: AbortSignal,
    fn: (session: Session) => Promise<T>,
    check?: () => void,
    prepare?: () => Promise<void>,
  ): Promise<T> {
    return this.guard(
      operation,
      signal,
      async () => {
        await prepare?.();
        return Session.run(this.pools, signal, fn);
      },
      check,
    );
  }

  /**
   * Runs `fn` (which takes the sessions it needs) once the connector is open,
   * the signal given and `check` passed; every failure leaves as a DrayError.
   */
  private async guard<T>(
    operation: string,
    signal: AbortSignal,
    fn: () => Promise<T>,
    check?: () => void,
  ): Promise<T> {
    if (this.closed) throw new DrayError("failed_precondition", "the Postgres connector is closed");
    if (!(signal instanceof AbortSignal))
      throw new DrayError("invalid_argument", "an AbortSignal is required");
    try {
      check?.();
      return await fn();
    } catch (error) {
      throw toDrayError(error, { aborted: signal.aborted, operation });
    }
  }

  /** Creates the ledger once per connector; a failed attempt is retried by the next write. */
  private ensureLedger(): Promise<void> {
    this.ledgerReady ??= Session.run(this.pools, new AbortController().signal, createLedger).catch(
      (error) => {
        this.ledgerReady = undefined;
        throw error;
      },
    );
    return this.ledgerReady;
  }

  /** Cancels the statement running on `backend` from a separate one-connection pool. */
  private async cancelBackend(backend: Backend): Promise<void> {
    this.control ??= createPool({
      url: this.options.url,
      max: 1,
      logger: this.options.logger,
      connectTimeoutSeconds: 5,
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, CANCEL_WAIT_MS);
    });
    const control = this.control;
    try {
      await Promise.race([
        control.unsafe(CANCEL_SQL, textParams(control, [backend.pid, backend.started]), { prepare: false }),
        timeout,
      ]);
    } catch (error) {
      // A control pool that lost its connection is replaced rather than reused (see pool-keeper.ts).
      if (isConnectionFailure(error) && this.control === control) {
        this.control = undefined;
        control.end({ timeout: 1 }).catch(() => {});
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }
}

function describe(entity: EntityName | undefined): string {
  return entity && typeof entity === "object" ? displayName(entity) : "entity";
}

/**
 * A {@link Connector} for PostgreSQL (postgres.js pool). Reads are keyset pages
 * in COPY text, read with COPY TO STDOUT (or SELECT, see `readMethod`); writes
 * are one transaction with the `dray.batch_ledger` entry: a plain COPY into the
 * table when the batch's key range is empty, otherwise (or when that fails) a
 * COPY-loaded staging table and one INSERT … SELECT.
 *
 * @example
 * const connector = createPostgresConnector({ url: "postgres://dray@db:5432/app" });
 * const n = await connector.count({ schema: "public", name: "users" }, [], AbortSignal.timeout(5000));
 */
export function createPostgresConnector(options: PostgresConnectorOptions): Connector {
  if (!options || typeof options.url !== "string" || options.url.length === 0)
    throw new DrayError("invalid_argument", "a Postgres connection URL is required");
  if (
    options.maxConnections !== undefined &&
    (!Number.isSafeInteger(options.maxConnections) || options.maxConnections < 1)
  )
    throw new DrayError("invalid_argument", "maxConnections must be a positive integer");
  if (options.readMethod !== undefined && options.readMethod !== "copy" && options.readMethod !== "select")
    throw new DrayError("invalid_argument", 'readMethod must be "copy" or "select"');
  return new PostgresConnector({ ...options, logger: options.logger ?? silentLogger });
}
