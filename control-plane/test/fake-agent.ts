/**
 * An in-process agent for the executor's unit tests: it implements the
 * executor's agent port over in-memory tables, with a target ledger that
 * behaves like the real one (an id commits once; a fence answers with the
 * first commit's counts or seals the id), and hooks to inject faults. Key
 * digests (reconcile) follow the agents' definition (RangeDigest in
 * proto/dray/agent/v1/agent.proto).
 */
import { createHash } from "node:crypto";
import { DrayError } from "@dray/common";
import type {
  AgentAbsence,
  AgentPort,
  CallOptions,
  DigestKeysRequest,
  DigestKeysResult,
  EntityCount,
  FinishRequest,
  KeyRangeDigest,
  ReadRequest,
  ReadResult,
  RejectedRow,
  RowPayload,
  WriteRequest,
  WriteResult,
} from "../src/executor/agent-port.js";
import { AGENT_AWAY } from "../src/gateway/agent-sessions.js";

/** A row: its key values and its other values, as text. */
export interface FakeRow {
  key: string[];
  values: Record<string, string | null>;
}

/** Rows handed from the fake source to the fake target. */
export class FakeRows implements RowPayload {
  constructor(readonly rows: readonly FakeRow[]) {}
  get rowCount(): number {
    return this.rows.length;
  }
  get byteLength(): number {
    return this.rows.length * 16;
  }
}

/** What a fault hook may do to a call: throw, wait, or let it through. */
export type FaultHook<R> = (request: R, call: number) => void | Promise<void>;

interface LedgerEntry {
  state: "committed" | "sealed";
  result?: WriteResult;
}

const compareKeys = (a: readonly string[], b: readonly string[]) => {
  for (let i = 0; i < a.length; i++) {
    const x = Number(a[i]);
    const y = Number(b[i]);
    const c = Number.isNaN(x) || Number.isNaN(y) ? a[i]!.localeCompare(b[i]!) : x - y;
    if (c !== 0) return c;
  }
  return 0;
};

/** The agents' 60-bit hash of one key: MD5 of each value as `<UTF-8 bytes>:<value>`, first 15 hex digits. */
function keyHash(key: readonly string[]): bigint {
  const text = key.map((v) => `${Buffer.byteLength(v, "utf8")}:${v}`).join("");
  return BigInt(`0x${createHash("md5").update(text, "utf8").digest("hex").slice(0, 15)}`);
}

/** Count and digest (sum of the key hashes mod 2^64, 16 hex digits) of keys. */
function digestOf(keys: readonly (readonly string[])[]): KeyRangeDigest {
  let sum = 0n;
  for (const key of keys) sum += keyHash(key);
  return { count: keys.length, digest: (sum % (1n << 64n)).toString(16).padStart(16, "0") };
}

/** A retryable error as the gateway reports a dropped task. */
export function transientError(message = "connection reset"): DrayError {
  return new DrayError("unavailable", message, { retryable: true });
}

/** The gateway's error for an environment whose agent is away (what `isAgentAway` recognises). */
export function awayError(environmentId: string): DrayError {
  return new DrayError("unavailable", "the agent is away", {
    retryable: false,
    details: { reason: AGENT_AWAY, environmentId },
  });
}

/**
 * Source and target in one object; which environment id a call names does
 * not matter except for presence (see {@link disconnect}).
 */
export class FakeAgent implements AgentPort {
  /** Source rows by entity (`schema.name`). */
  readonly source = new Map<string, FakeRow[]>();
  /** Target rows by entity, by key. */
  readonly target = new Map<string, Map<string, FakeRow>>();
  readonly ledger = new Map<string, LedgerEntry>();
  /** Keys the target rejects one by one (a constraint). */
  readonly rejectKeys = new Set<string>();
  /** Batch ids in the order they committed. */
  readonly commits: string[] = [];
  /** Every read and write, in order. */
  readonly calls: { kind: "read" | "write" | "fence"; request: ReadRequest | WriteRequest }[] = [];
  /** Every key digest, with the environment it named. */
  readonly digests: { environmentId: string; request: DigestKeysRequest }[] = [];
  /** Rows returned by reads so far (reconcile reads keys only). */
  rowsRead = 0;
  /**
   * When set, reads and digests naming this environment see the target's rows
   * (in key order) instead of the source's: for reconcile, which compares both.
   */
  targetEnvironmentId: string | undefined;
  onRead: FaultHook<ReadRequest> | undefined;
  onWrite: FaultHook<WriteRequest> | undefined;
  onDigest: FaultHook<DigestKeysRequest> | undefined;
  /** Snapshot ids exported (ExportSnapshotTask), and those released, in order. */
  readonly exportedSnapshots: string[] = [];
  readonly releasedSnapshots: string[] = [];
  /** When set, an export fails with this error (an agent older than snapshots answers `unimplemented`). */
  exportSnapshotError: Error | undefined;
  private readonly inFlight = new Map<string, Promise<unknown>>();
  private readonly away = new Map<string, number>();
  private readonly arrivals = new Set<() => void>();
  private reads = 0;
  private writes = 0;
  /** When true, a write asked to move sequences answers with a move of `<entity>_id_seq` to its largest key. */
  movesSequencesInWrites = false;
  /** Every finish asked for, in order. */
  readonly finishes: FinishRequest[] = [];

  /** Fills the source with `count` rows of `entity`, keys 1..count. */
  seed(entity: string, count: number): void {
    this.source.set(
      entity,
      Array.from({ length: count }, (_, i) => ({ key: [String(i + 1)], values: { v: `row ${i + 1}` } })),
    );
  }

  /** The target's keys of an entity, sorted. */
  targetKeys(entity: string): string[] {
    return [...(this.target.get(entity)?.keys() ?? [])].sort((a, b) => Number(a) - Number(b));
  }

  disconnect(environmentId: string): void {
    this.away.set(environmentId, Date.now());
  }

  reconnect(environmentId: string): void {
    this.away.delete(environmentId);
    for (const arrive of [...this.arrivals]) arrive();
  }

  private present(environmentId: string) {
    if (this.away.has(environmentId)) throw awayError(environmentId);
  }

  async readBatch(environmentId: string, request: ReadRequest, options: CallOptions): Promise<ReadResult> {
    this.present(environmentId);
    this.calls.push({ kind: "read", request });
    await this.onRead?.(request, ++this.reads);
    if (options.signal?.aborted) throw new DrayError("cancelled", "read cancelled");
    const all = this.rowsOf(environmentId, request.entity);
    const after = request.after;
    const until = request.until;
    const range = all.filter(
      (r) => (!after || compareKeys(r.key, after) > 0) && (!until || compareKeys(r.key, until) <= 0),
    );
    const page = range.slice(0, request.maxRows);
    this.rowsRead += page.length;
    return {
      rows: new FakeRows(page),
      last: page.length > 0 ? page[page.length - 1]!.key : null,
      done: page.length === range.length,
      qualityRejected: [],
      transformKeyId: "",
    };
  }

  /** The rows a read or digest of `environmentId` sees, in key order (see {@link targetEnvironmentId}). */
  private rowsOf(environmentId: string, entity: { schema: string; name: string }): readonly FakeRow[] {
    const name = `${entity.schema}.${entity.name}`;
    if (this.targetEnvironmentId === undefined || environmentId !== this.targetEnvironmentId)
      return this.source.get(name) ?? [];
    return [...(this.target.get(name)?.values() ?? [])].sort((a, b) => compareKeys(a.key, b.key));
  }

  /** The agents' DigestKeysTask over in-memory rows (given boundaries are taken as ascending). */
  async exportSnapshot(environmentId: string): Promise<string> {
    this.present(environmentId);
    if (this.exportSnapshotError) throw this.exportSnapshotError;
    const id = `0000000${this.exportedSnapshots.length + 3}-0000001B-1`;
    this.exportedSnapshots.push(id);
    return id;
  }

  async releaseSnapshot(environmentId: string, snapshotId: string): Promise<void> {
    this.present(environmentId);
    this.releasedSnapshots.push(snapshotId);
  }

  async digestKeys(
    environmentId: string,
    request: DigestKeysRequest,
    options: CallOptions,
  ): Promise<DigestKeysResult> {
    this.present(environmentId);
    this.digests.push({ environmentId, request });
    await this.onDigest?.(request, this.digests.length);
    if (options.signal?.aborted) throw new DrayError("cancelled", "digest cancelled");
    if (request.splitEvery > 0 && request.boundaries.length > 0)
      throw new DrayError("invalid_argument", "give splitEvery or boundaries, not both");
    const { after, until } = request;
    const keys = this.rowsOf(environmentId, request.entity)
      .map((r) => r.key)
      .filter((k) => (!after || compareKeys(k, after) > 0) && (!until || compareKeys(k, until) <= 0));
    const boundaries =
      request.splitEvery > 0
        ? Array.from(
            { length: Math.min(1_000, Math.floor(keys.length / request.splitEvery)) },
            (_, i) => keys[(i + 1) * request.splitEvery - 1]!,
          )
        : request.boundaries;
    const parts: (readonly string[])[][] = boundaries.map(() => []);
    parts.push([]);
    let at = 0;
    for (const key of keys) {
      while (at < boundaries.length && compareKeys(key, boundaries[at]!) > 0) at++;
      parts[at]!.push(key);
    }
    return { boundaries: boundaries.map((b) => [...b]), ranges: parts.map(digestOf) };
  }

  async writeBatch(environmentId: string, request: WriteRequest, options: CallOptions): Promise<WriteResult> {
    this.present(environmentId);
    this.calls.push({ kind: request.fence ? "fence" : "write", request });
    const work = this.write(request, options);
    this.inFlight.set(
      request.batchId,
      work.catch(() => {}),
    );
    try {
      return await work;
    } finally {
      this.inFlight.delete(request.batchId);
    }
  }

  private async write(request: WriteRequest, options: CallOptions): Promise<WriteResult> {
    const recorded = this.ledger.get(request.batchId);
    if (request.fence) {
      if (recorded?.state === "committed") return { ...recorded.result!, alreadyCommitted: true };
      this.ledger.set(request.batchId, { state: "sealed" });
      return { alreadyCommitted: false, created: 0, updated: 0, rejected: 0, rejectedRows: [] };
    }
    await this.onWrite?.(request, ++this.writes);
    if (options.signal?.aborted) throw new DrayError("cancelled", "write cancelled");
    const now = this.ledger.get(request.batchId);
    if (now?.state === "sealed")
      throw new DrayError("failed_precondition", "batch id sealed", { details: { reason: "batch_sealed" } });
    if (now?.state === "committed") return { ...now.result!, alreadyCommitted: true };
    if (request.previousBatchId) {
      await this.inFlight.get(request.previousBatchId);
      if (this.ledger.get(request.previousBatchId)?.state !== "committed")
        throw new DrayError("aborted", "the previous batch did not commit", {
          retryable: true,
          details: { reason: "previous_batch_not_committed" },
        });
    }
    return this.apply(request);
  }

  private apply(request: WriteRequest): WriteResult {
    if (!(request.rows instanceof FakeRows)) throw new DrayError("internal", "not rows of the fake agent");
    const entity = `${request.entity.schema}.${request.entity.name}`;
    const table = this.target.get(entity) ?? new Map<string, FakeRow>();
    const rejectedRows: RejectedRow[] = [];
    const changes: FakeRow[] = [];
    for (const row of request.rows.rows) {
      const key = row.key.join(",");
      const exists = table.has(key);
      if (this.rejectKeys.has(key) || (exists && request.mode === "insert")) {
        if (request.onRowError === "fail")
          throw new DrayError("failed_precondition", `row ${key} violates a constraint`, {
            retryable: false,
          });
        rejectedRows.push({ key: row.key, field: "", message: "violates a constraint", sqlState: "23505" });
        continue;
      }
      changes.push(row);
    }
    let created = 0;
    let updated = 0;
    for (const row of changes) {
      const key = row.key.join(",");
      if (table.has(key)) updated++;
      else created++;
      table.set(key, row);
    }
    this.target.set(entity, table);
    const result: WriteResult = {
      alreadyCommitted: false,
      created,
      updated,
      rejected: rejectedRows.length,
      rejectedRows,
    };
    this.ledger.set(request.batchId, { state: "committed", result });
    if (request.moveSequences && this.movesSequencesInWrites) {
      const largest = Math.max(...[...table.keys()].map(Number));
      return {
        ...result,
        sequences: [
          { sequence: `${entity}_id_seq`, field: "id", before: "1", after: String(largest), moved: true },
        ],
      };
    }
    this.commits.push(request.batchId);
    return result;
  }

  async describe(_environmentId?: string, _options?: CallOptions): Promise<never> {
    throw new DrayError("unimplemented", "the fake agent does not describe schemas");
  }

  async count(_environmentId: string, entity: { schema: string; name: string }): Promise<number> {
    return this.source.get(`${entity.schema}.${entity.name}`)?.length ?? 0;
  }

  /**
   * Counts each entity in turn through {@link count} (so a subclass's count sees
   * every one); a table seeded with {@link estimateAs} is estimated instead when
   * the call asks for estimates.
   */
  async countMany(
    environmentId: string,
    entities: readonly { schema: string; name: string }[],
    options: { estimateOverBytes?: number } = {},
  ): Promise<EntityCount[] | undefined> {
    const counts: EntityCount[] = [];
    for (const entity of entities) {
      const estimate = this.estimates.get(`${entity.schema}.${entity.name}`);
      if (estimate && (options.estimateOverBytes ?? 0) > 0) counts.push({ ...estimate, estimated: true });
      else counts.push({ count: await this.count(environmentId, entity), estimated: false, upperBound: 0 });
    }
    return counts;
  }

  /** Makes countMany answer an estimate for `entity` when estimates are asked for. */
  estimateAs(entity: string, count: number, upperBound: number): void {
    this.estimates.set(entity, { count, upperBound });
  }

  private readonly estimates = new Map<string, { count: number; upperBound: number }>();

  async clean(_environmentId: string, request: { entity: { schema: string; name: string } }) {
    const key = `${request.entity.schema}.${request.entity.name}`;
    const deleted = this.target.get(key)?.size ?? 0;
    this.target.delete(key);
    return { deleted };
  }

  copyTextRows(fields: readonly string[], data: Uint8Array): RowPayload {
    const lines = Buffer.from(data)
      .toString("utf8")
      .split("\n")
      .filter((l) => l.length > 0);
    return new FakeRows(
      lines.map((line) => {
        const cells = line.split("\t");
        return {
          key: [cells[0]!],
          values: Object.fromEntries(fields.map((f, i) => [f, cells[i] === "\\N" ? null : cells[i]!])),
        };
      }),
    );
  }

  rowValues(rows: RowPayload): string[][] {
    return (rows as FakeRows).rows.map((r) => [...r.key]);
  }

  async deleteKeys(
    _environmentId: string,
    request: { entity: { schema: string; name: string }; keys: readonly (readonly string[])[] },
  ) {
    const table = this.target.get(`${request.entity.schema}.${request.entity.name}`);
    let deleted = 0;
    for (const key of request.keys) if (table?.delete(key.join(","))) deleted += 1;
    return { deleted };
  }

  async finish(_environmentId: string, request: FinishRequest) {
    this.finishes.push(request);
    return { sequences: [], violations: [], violationCount: 0 };
  }

  isConnected(environmentId: string): boolean {
    return !this.away.has(environmentId);
  }

  connectedSince(environmentId: string): number | undefined {
    return this.away.has(environmentId) ? undefined : 0;
  }

  absence(environmentId: string): AgentAbsence | undefined {
    const since = this.away.get(environmentId);
    return since === undefined ? undefined : { since, agentId: "fake" };
  }

  async waitForAgent(environmentId: string, limitMs: number, signal: AbortSignal): Promise<void> {
    while (this.away.has(environmentId)) {
      if (signal.aborted) throw new DrayError("cancelled", "cancelled while waiting for the agent");
      const awayMs = Date.now() - this.away.get(environmentId)!;
      if (awayMs >= limitMs)
        throw new DrayError("unavailable", "the agent has been away too long", {
          details: { reason: "agent_unavailable", environmentId, agentId: "fake", awayMs },
        });
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.arrivals.delete(done);
          resolve();
        };
        const timer = setTimeout(done, limitMs - awayMs);
        this.arrivals.add(done);
        signal.addEventListener("abort", done, { once: true });
      });
    }
  }
}
