/**
 * The high-water mark of a continuous read. A continuous pipeline polls the
 * source for rows after its last position in (cursor, row key) order; a row
 * whose transaction commits after a row with a later cursor has been read
 * would be passed over for good. So each read stays below a mark under which
 * every writing transaction has ended, and the rows above it are left for a
 * later poll. The mark becomes one more condition on the cursor field (a
 * bound parameter, see conditions.ts), so the COPY and the SELECT read paths
 * carry it alike.
 *
 * Date/time cursors (`timestamp with time zone`, `timestamp without time
 * zone`, `date`): the mark is the earlier of now() minus the safety lag and
 * the start of the oldest other transaction of this database that is writing
 * (it holds a transaction id), read with `<`. A transaction that writes
 * `now()` writes its own start time or later, so no row below the mark can
 * still be in flight. For `timestamp without time zone` the instant is taken
 * in the session's time zone (the agent's sessions run in UTC), and for `date`
 * its date there. Seeing the transaction start of other users' sessions in
 * pg_stat_activity takes superuser or the pg_read_all_stats role; without it
 * their start is hidden (NULL) and only the safety lag applies. The lag also
 * covers what the start cannot: a transaction that takes its cursor value
 * before its first write (and so before it shows as writing), client-side
 * clocks, and prepared (two-phase) transactions, which pg_stat_activity does
 * not list.
 *
 * Other cursors (integers, text, uuid, …): a two-phase mark kept in agent
 * memory per (entity, cursor field). Each read records `pg_current_snapshot()`
 * with the largest cursor value it sees; the mark is the largest value of the
 * newest EARLIER recording whose in-progress transactions have all ended
 * since, read with `<=`. A read whose snapshot shows no transaction writing
 * (anywhere on the server) takes its own largest value at once. Until a mark
 * exists (the first poll of an entity on a busy server, and the first after
 * an agent restart) the read returns no rows. A mark
 * once reached stays usable until a newer recording qualifies. A transaction
 * that takes its cursor value before its first write (e.g. `nextval` in an
 * earlier statement) and writes it later may still be passed over. The
 * largest value is read with `order by cursor desc limit 1`: cheap with an
 * index on the cursor field, which a continuous read needs anyway.
 *
 * Rows whose cursor is NULL are never read in continuous mode: the mark's
 * comparison leaves them out. A read with `until` (one batch's range read
 * again) gets no mark: the range was read under one already, and a lower mark
 * now would shrink the batch.
 */
import { DrayError } from "@dray/common";
import type { Condition, ReadBatchRequest } from "../../connector.js";
import { type EntityInfo, type FieldInfo, ownRowsSql, requireFields } from "./entity-catalog.js";
import { quoteIdentifier, validateIdentifier } from "./identifiers.js";
import type { Session } from "./session.js";

/** Longest safety lag accepted: one day. */
export const MAX_SAFETY_LAG_MS = 86_400_000;

/** Entity cursors whose two-phase mark is kept; beyond, the least recently read is forgotten. */
export const MAX_TRACKED_CURSORS = 1_000;

/** Recordings kept per cursor while waiting for their transactions to end; beyond, the oldest goes. */
export const MAX_PENDING_RECORDINGS = 16;

/**
 * Checks `continuous` of a read request: the cursor field is a valid name and
 * the first key field, the safety lag a whole number of milliseconds from 0
 * to {@link MAX_SAFETY_LAG_MS}.
 *
 * @throws DrayError `invalid_argument`
 */
export function validateContinuous(request: ReadBatchRequest): void {
  const continuous = request.continuous;
  if (continuous === undefined || continuous === null) return;
  if (typeof continuous !== "object")
    throw new DrayError("invalid_argument", "continuous must be an object with cursorField and safetyLagMs");
  validateIdentifier("continuous.cursorField", continuous.cursorField);
  const keyFields = Array.isArray(request.keyFields) ? request.keyFields : [];
  if (keyFields[0] !== continuous.cursorField)
    throw new DrayError(
      "invalid_argument",
      `continuous.cursorField ${JSON.stringify(continuous.cursorField)} must be the first key field`,
    );
  const lag = continuous.safetyLagMs;
  if (!Number.isSafeInteger(lag) || lag < 0 || lag > MAX_SAFETY_LAG_MS)
    throw new DrayError(
      "invalid_argument",
      `continuous.safetyLagMs must be a whole number of milliseconds from 0 to ${MAX_SAFETY_LAG_MS}`,
    );
}

/** Whether a read gets a high-water mark: continuous, and not a batch's range read again (`until`). */
export function needsContinuousBound(request: ReadBatchRequest): boolean {
  return (
    request.continuous !== undefined &&
    request.continuous !== null &&
    (request.until === undefined || request.until === null)
  );
}

/**
 * The catalog entry as a continuous read keys on it: its cursor field counts
 * as NOT NULL, since the mark (or the `after`/`until` row comparison) leaves
 * the rows with a NULL cursor out. The row key that follows it must still be
 * NOT NULL and unique ({@link resolveKey}). Other reads get `info` unchanged.
 */
export function keyInfoOf(info: EntityInfo, request: ReadBatchRequest): EntityInfo {
  const cursor = request.continuous?.cursorField;
  if (cursor === undefined) return info;
  return { ...info, fields: info.fields.map((f) => (f.name === cursor ? { ...f, notNull: true } : f)) };
}

/** How the mark of a cursor field is found. */
export type CursorKind = "timestamptz" | "timestamp" | "date" | "snapshot";

/** The kind of mark for a field of catalog type `castType` (a domain over a date/time type counts as other). */
export function cursorKindOf(castType: string): CursorKind {
  switch (castType) {
    case "timestamp with time zone":
      return "timestamptz";
    case "timestamp without time zone":
      return "timestamp";
    case "date":
      return "date";
    default:
      return "snapshot";
  }
}

/** Start of the oldest other transaction of this database that holds a transaction id; NULL when none is seen. */
const OLDEST_WRITER_SQL = `(select min(a.xact_start) from pg_catalog.pg_stat_activity a
  where a.backend_xid is not null and a.pid <> pg_catalog.pg_backend_pid()
    and a.datname = pg_catalog.current_database())`;

/** now() minus the lag (`$1`, milliseconds). */
const LAGGED_NOW_SQL = "pg_catalog.now() - $1::int8 * interval '1 millisecond'";

/**
 * The statement that computes a date/time mark as text, the lag bound as `$1`
 * (milliseconds). `least` skips a NULL oldest writer, leaving the lag alone.
 */
export function timeMarkSql(kind: Exclude<CursorKind, "snapshot">): string {
  const instant = `least(${LAGGED_NOW_SQL}, ${OLDEST_WRITER_SQL})`;
  const mark =
    kind === "timestamptz"
      ? instant
      : kind === "timestamp"
        ? `(${instant})::timestamp without time zone`
        : `(${instant})::date`;
  return `select (${mark})::text as mark`;
}

/** The statement that records the current snapshot and the largest non-NULL cursor value, as text. */
export function snapshotMarkSql(info: Pick<EntityInfo, "entity" | "partitioned">, field: FieldInfo): string {
  const column = quoteIdentifier(field.name);
  return `select pg_catalog.pg_current_snapshot()::text as snapshot,
    (select ${column} from ${ownRowsSql(info)} where ${column} is not null order by ${column} desc limit 1)::text as max_value`;
}

/** A `pg_snapshot`: transactions below `xmin` have ended, from `xmax` on have not started, `xip` were running. */
export interface PgSnapshot {
  xmin: bigint;
  xmax: bigint;
  xip: bigint[];
}

/** A transaction id (xid8) in decimal. */
function xidOf(text: string, snapshot: string): bigint {
  if (text.length === 0 || text.length > 20 || ![...text].every((c) => c >= "0" && c <= "9"))
    throw new DrayError("internal", `unexpected snapshot ${JSON.stringify(snapshot)} from the server`);
  return BigInt(text);
}

/**
 * Parses the text of a `pg_snapshot` (`xmin:xmax:xip,xip,…`).
 *
 * @throws DrayError `internal` on anything else.
 * @example parseSnapshot("740:745:740,743") // { xmin: 740n, xmax: 745n, xip: [740n, 743n] }
 */
export function parseSnapshot(text: string): PgSnapshot {
  const parts = text.split(":");
  if (parts.length !== 3) throw new DrayError("internal", `unexpected snapshot ${JSON.stringify(text)}`);
  const [xmin, xmax, xip] = parts as [string, string, string];
  return {
    xmin: xidOf(xmin, text),
    xmax: xidOf(xmax, text),
    xip: xip === "" ? [] : xip.split(",").map((x) => xidOf(x, text)),
  };
}

/**
 * Whether every transaction in progress in `earlier` has ended by `current`:
 * each is below `current.xmax` and not among `current.xip`. A transaction id
 * `current` has not reached yet counts as running (never the case for
 * snapshots of one server taken in order).
 */
export function transactionsEnded(earlier: PgSnapshot, current: PgSnapshot): boolean {
  const running = new Set(current.xip);
  return earlier.xip.every((xid) => xid < current.xmax && !running.has(xid));
}

/** What one read saw: its snapshot and the largest cursor value (text), null for none. */
export interface Recording {
  snapshot: PgSnapshot;
  maxValue: string | null;
}

interface CursorState {
  /** The newest mark known safe (inclusive), null while none is. */
  safe: string | null;
  /** Recordings still waiting for their transactions to end, oldest first. */
  pending: Recording[];
}

/** Options of {@link ContinuousMarks}. */
export interface ContinuousMarksOptions {
  /** @default MAX_TRACKED_CURSORS */
  maxCursors?: number;
  /** @default MAX_PENDING_RECORDINGS */
  maxPending?: number;
}

/**
 * The two-phase marks of non-date/time cursors, in agent memory (one per
 * connector, so per database), keyed by (entity, cursor field). Bounded:
 * the least recently read cursor is forgotten first, and then starts again
 * like after a restart.
 */
export class ContinuousMarks {
  private readonly states = new Map<string, CursorState>();
  private readonly maxCursors: number;
  private readonly maxPending: number;

  constructor(options: ContinuousMarksOptions = {}) {
    this.maxCursors = Math.max(1, options.maxCursors ?? MAX_TRACKED_CURSORS);
    this.maxPending = Math.max(1, options.maxPending ?? MAX_PENDING_RECORDINGS);
  }

  /** Cursors tracked now. */
  get size(): number {
    return this.states.size;
  }

  /**
   * Takes the recording of a read and returns the mark it may read up to
   * (inclusive): the largest value of the newest earlier recording whose
   * in-progress transactions have all ended by `current` (that one and all
   * older recordings are then dropped), else the last such mark, else null
   * (read nothing). `current` is kept for the next reads.
   */
  advance(key: string, current: Recording): string | null {
    let state = this.states.get(key);
    if (state) {
      // Most recently read last: Map keeps insertion order.
      this.states.delete(key);
    } else {
      state = { safe: null, pending: [] };
    }
    this.states.set(key, state);
    while (this.states.size > this.maxCursors) this.states.delete(this.states.keys().next().value as string);
    if (current.snapshot.xip.length === 0) {
      // No transaction was writing when this read looked: what it saw is final now, no need to wait a poll.
      if (current.maxValue !== null) state.safe = current.maxValue;
      state.pending = [];
      return state.safe;
    }
    for (let i = state.pending.length - 1; i >= 0; i--) {
      const recording = state.pending[i]!;
      if (!transactionsEnded(recording.snapshot, current.snapshot)) continue;
      // An empty table then leaves the last mark as it was: it is still safe.
      if (recording.maxValue !== null) state.safe = recording.maxValue;
      state.pending = state.pending.slice(i + 1);
      break;
    }
    state.pending.push(current);
    if (state.pending.length > this.maxPending) state.pending.shift();
    return state.safe;
  }

  /** Forgets every cursor (as after a restart). */
  clear(): void {
    this.states.clear();
  }
}

/** The key of an entity's cursor in {@link ContinuousMarks}. */
export function cursorKey(info: Pick<EntityInfo, "entity">, cursorField: string): string {
  return JSON.stringify([info.entity.schema, info.entity.name, cursorField]);
}

/** A condition no row meets (`in` an empty list is `false`). */
function noRows(field: string): Condition {
  return { field, operator: "in", values: [] };
}

/**
 * The mark of a continuous read as a condition on its cursor field: `lt` the
 * date/time mark, `lte` the two-phase mark, or no rows while there is none.
 * One small statement on `session` before the read.
 */
export async function continuousCondition(
  session: Session,
  info: EntityInfo,
  request: ReadBatchRequest,
  marks: ContinuousMarks,
): Promise<Condition> {
  const { cursorField, safetyLagMs } = request.continuous!;
  const [field] = requireFields(info, [cursorField]) as [FieldInfo];
  const kind = cursorKindOf(field.castType);
  if (kind !== "snapshot") {
    const [row] = await session.query<{ mark: string | null }>(timeMarkSql(kind), [safetyLagMs]);
    const mark = row?.mark ?? null;
    return mark === null ? noRows(cursorField) : { field: cursorField, operator: "lt", values: [mark] };
  }
  const [row] = await session.query<{ snapshot: string; max_value: string | null }>(
    snapshotMarkSql(info, field),
  );
  if (!row) throw new DrayError("internal", "the snapshot of a continuous read returned no row");
  const mark = marks.advance(cursorKey(info, cursorField), {
    snapshot: parseSnapshot(row.snapshot),
    maxValue: row.max_value,
  });
  return mark === null ? noRows(cursorField) : { field: cursorField, operator: "lte", values: [mark] };
}

/**
 * The request with its high-water mark added to `where` (see the module
 * comment); unchanged when it needs none ({@link needsContinuousBound}).
 */
export async function boundContinuousRead(
  session: Session,
  info: EntityInfo,
  request: ReadBatchRequest,
  marks: ContinuousMarks,
): Promise<ReadBatchRequest> {
  if (!needsContinuousBound(request)) return request;
  const condition = await continuousCondition(session, info, request, marks);
  const where = request.where;
  // A `where` that is not a list is refused when the read is planned (conditionsSql).
  if (where !== undefined && !Array.isArray(where)) return request;
  return { ...request, where: [...(where ?? []), condition] };
}
