/**
 * Reads of a table without a row key (no primary key, no unique key of NOT
 * NULL fields), for `insert` and `clean` copies: by physical position (ctid),
 * in one snapshot for every batch.
 *
 * The first read exports a snapshot on a connection of its own and holds it
 * (snapshot-holder.ts), and measures the table in blocks. Every read imports
 * that snapshot (`SET TRANSACTION SNAPSHOT`), so rows written after the first
 * read are never seen and none moves between batches, and reads windows of
 * blocks with a TID range scan: `ctid > last and ctid < '(end,0)' order by
 * ctid limit n`. A window is sized from the rows wanted and the table's rows
 * per block, so its sort stays small; windows follow each other until the page
 * is full or the table's end is reached.
 *
 * The cursor (`last`) is `[snapshot id, ctid of the last row, table blocks]`.
 */
import { DrayError } from "@dray/common";
import type { ReadBatchRequest, ReadBatchResult } from "../../connector.js";
import { BoundParams, conditionsSql, dollarPlaceholder, type Placeholder } from "./conditions.js";
import {
  copyCollector,
  copyInto,
  settingPlaceholder,
  settingsCanCarry,
  settingsStatement,
} from "./copy-read.js";
import type { EntityInfo } from "./entity-catalog.js";
import { displayName, quoteIdentifier } from "./identifiers.js";
import { encodePage, type KeysetPlan, type KeysetQuery, planRead } from "./keyset-read.js";
import type { RawRow, Session } from "./session.js";
import type { SnapshotHolder } from "./snapshot-holder.js";
import { isSnapshotId, snapshotImportSetup, whileSnapshotHeld } from "./snapshot-import.js";

export { isSnapshotId };

/** A physical row position: `(block,offset)`. */
export interface RowPosition {
  block: number;
  offset: number;
}

/** A cursor of a read without a row key, as `after` or `until` carry it. */
export interface KeylessCursor {
  snapshotId: string;
  position: RowPosition;
  /** Blocks of the table when the snapshot was taken. */
  totalBlocks: number;
}

/** Rows per block assumed when the table's statistics say nothing (never analysed). */
export const DEFAULT_ROWS_PER_BLOCK = 60;

/** Largest block number (BlockNumber is 32-bit) and line pointer offset (16-bit). */
const MAX_BLOCK = 0xffff_fffe;
const MAX_OFFSET = 0xffff;

/** The decimal value of `text` when it holds 1 to 10 ASCII digits only, else null. */
function parseDigits(text: string): number | null {
  if (text.length === 0 || text.length > 10) return null;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x30 || code > 0x39) return null;
  }
  return Number(text);
}

/**
 * Parses a tid's text form, `(block,offset)`, with a plain scan.
 *
 * @example
 * parseTid("(12,3)") // { block: 12, offset: 3 }
 * parseTid("(12, 3)") // null
 */
export function parseTid(text: string): RowPosition | null {
  if (text.length < 5 || text.length > 24 || text[0] !== "(" || text[text.length - 1] !== ")") return null;
  const comma = text.indexOf(",");
  if (comma === -1) return null;
  const block = parseDigits(text.slice(1, comma));
  const offset = parseDigits(text.slice(comma + 1, -1));
  if (block === null || offset === null || block > MAX_BLOCK || offset > MAX_OFFSET) return null;
  return { block, offset };
}

/** The text form of a position, `(block,offset)`. */
export function tidText(position: RowPosition): string {
  return `(${position.block},${position.offset})`;
}

/**
 * Parses `after` or `until` of a read without a row key.
 *
 * @throws DrayError `invalid_argument` saying what is wrong with it.
 */
export function parseKeylessCursor(name: "after" | "until", values: readonly string[]): KeylessCursor {
  const bad = (why: string) =>
    new DrayError(
      "invalid_argument",
      `${name} of a read of a table without a row key must be [snapshot id, row position, table blocks] ` +
        `as an earlier read returned it: ${why}`,
    );
  if (values.length !== 3) throw bad(`it has ${values.length} values`);
  const [snapshotId, tid, blocks] = values as [string, string, string];
  if (!isSnapshotId(snapshotId)) throw bad("the snapshot id may hold hex digits and dashes only");
  const position = parseTid(tid);
  if (!position) throw bad(`the row position ${JSON.stringify(tid.slice(0, 40))} is not (block,offset)`);
  const totalBlocks = parseDigits(blocks);
  if (totalBlocks === null || totalBlocks > MAX_BLOCK + 1)
    throw bad(`the table blocks ${JSON.stringify(blocks.slice(0, 40))} are not a block count`);
  return { snapshotId, position, totalBlocks };
}

/** The cursor of a row: `[snapshot id, ctid, table blocks]`. */
export function keylessCursor(snapshotId: string, tid: string, totalBlocks: number): string[] {
  return [snapshotId, tid, String(totalBlocks)];
}

/** Rows per block from the planner's statistics, or {@link DEFAULT_ROWS_PER_BLOCK} without them. */
export function rowsPerBlock(stats: { tuples: number; pages: number }): number {
  return stats.tuples > 0 && stats.pages > 0 ? stats.tuples / stats.pages : DEFAULT_ROWS_PER_BLOCK;
}

/** Blocks expected to hold `rows` rows at `density` rows per block; at least 1. */
export function windowBlocks(rows: number, density: number): number {
  return Math.max(1, Math.ceil(rows / Math.max(density, 0.001)));
}

/**
 * The size of the window after one of `blocks` blocks that gave `found` rows,
 * when `wanted` more rows are still wanted: sized by the density just seen, or
 * twice as large after an empty window.
 *
 * @example
 * nextWindowBlocks(10, 0, 500) // 20
 * nextWindowBlocks(10, 100, 500) // 50
 */
export function nextWindowBlocks(blocks: number, found: number, wanted: number): number {
  return found === 0 ? blocks * 2 : windowBlocks(wanted, found / blocks);
}

/** The row range one window query reads. */
export interface WindowBounds {
  /** Rows after this position (exclusive)… */
  after: RowPosition | null;
  /** …or from the start of this block on; null with `after` null: from the table's start. */
  fromBlock: number | null;
  /** The first block past the window. */
  endBlock: number;
  /** No row after this position (inclusive), for a re-read. */
  until: RowPosition | null;
  limit: number;
}

/**
 * `select fields, ctid from only t where ctid > $1::tid and ctid < $2::tid
 * [and ctid <= $3::tid] [and conditions] order by ctid limit $n`: one window,
 * every value bound (written by `placeholder`). The ctid is the last column,
 * for the cursor only.
 */
export function buildWindowQuery(
  request: ReadBatchRequest,
  plan: KeysetPlan,
  bounds: WindowBounds,
  placeholder: Placeholder = dollarPlaceholder,
): KeysetQuery {
  const params = new BoundParams(placeholder);
  const selected = plan.fields.map((f) => (plan.nulled.has(f.name) ? "null" : quoteIdentifier(f.name)));
  selected.push("ctid");
  const where: string[] = [];
  if (bounds.after) where.push(`ctid > ${params.add(tidText(bounds.after))}::tid`);
  else if (bounds.fromBlock !== null && bounds.fromBlock > 0)
    where.push(`ctid >= ${params.add(tidText({ block: bounds.fromBlock, offset: 0 }))}::tid`);
  where.push(`ctid < ${params.add(tidText({ block: bounds.endBlock, offset: 0 }))}::tid`);
  if (bounds.until) where.push(`ctid <= ${params.add(tidText(bounds.until))}::tid`);
  where.push(...conditionsSql(request.where, plan.resolve, params));
  const sql = [
    `select ${selected.join(", ")}`,
    `from ${plan.from}`,
    `where ${where.join(" and ")}`,
    "order by ctid",
    `limit ${params.add(bounds.limit)}::int8`,
  ].join(" ");
  return {
    sql,
    params: params.values,
    fields: plan.fields.map((f) => f.name),
    columnCount: selected.length,
    keyPositions: [selected.length - 1],
  };
}

/** Where a read without a row key starts and stops, from its request. */
export interface KeylessRange {
  snapshotId: string | null;
  totalBlocks: number | null;
  after: RowPosition | null;
  until: RowPosition | null;
}

/**
 * The range of a read from its `after` and `until` cursors; both null (the
 * first read) leaves the snapshot to be exported.
 *
 * @throws DrayError `invalid_argument` for a malformed cursor or two cursors of different snapshots.
 */
export function keylessRange(request: ReadBatchRequest): KeylessRange {
  const after = request.after ? parseKeylessCursor("after", request.after) : null;
  const until = request.until ? parseKeylessCursor("until", request.until) : null;
  if (after && until && (after.snapshotId !== until.snapshotId || after.totalBlocks !== until.totalBlocks))
    throw new DrayError("invalid_argument", "after and until come from reads of different snapshots");
  const cursor = after ?? until;
  return {
    snapshotId: cursor?.snapshotId ?? null,
    totalBlocks: cursor?.totalBlocks ?? null,
    after: after?.position ?? null,
    until: until?.position ?? null,
  };
}

/** The error of a read whose snapshot is gone. */
export function lostSnapshotError(info: Pick<EntityInfo, "entity">, snapshotId: string): DrayError {
  const entity = displayName(info.entity);
  return new DrayError(
    "failed_precondition",
    `the consistent read of ${entity} (a table without a row key) ended: its snapshot ${snapshotId} ` +
      "is no longer held (the agent restarted, its connection closed, or no batch was read for 15 minutes). " +
      `Run the copy again with writeStrategy clean to copy ${entity} again from the start.`,
  );
}

const STATS_SQL = `
select c.reltuples::float8 as tuples, c.relpages::float8 as pages
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where n.nspname = $1::text and c.relname = $2::text`;

/**
 * Runs `fn` in a `REPEATABLE READ READ ONLY` transaction that imports the
 * snapshot `snapshotId` (snapshot-import.ts).
 *
 * @throws DrayError `failed_precondition` when the snapshot can no longer be imported.
 */
function inSnapshot<T>(
  session: Session,
  info: EntityInfo,
  snapshotId: string,
  fn: () => Promise<T>,
): Promise<T> {
  return whileSnapshotHeld(
    snapshotId,
    () => session.transaction(fn, snapshotImportSetup(snapshotId)),
    (id) => lostSnapshotError(info, id),
  );
}

/** Rows of several windows gathered into one page. */
interface PageSink {
  /** Runs one window query and takes its rows; false when the page was cut off (a COPY cancelled). */
  run(query: (placeholder: Placeholder) => KeysetQuery): Promise<boolean>;
  /** Rows taken so far. */
  readonly rows: number;
  /** Bytes of the rows taken so far, at least what the page's data holds. */
  readonly bytes: number;
  finish(): { data: Buffer; rowCount: number; last: string[] | null; trimmed: boolean };
}

/** A sink that reads each window with COPY TO STDOUT, its parameters in settings. */
function copySink(session: Session, request: ReadBatchRequest, fieldCount: number): PageSink {
  const collector = copyCollector(fieldCount, fieldCount + 1, request.maxBytes);
  const sink = {
    rows: 0,
    bytes: 0,
    async run(build: (placeholder: Placeholder) => KeysetQuery) {
      const query = build(settingPlaceholder);
      const setup = settingsStatement(query.params);
      if (setup) await session.query(setup.text, setup.params);
      return copyInto(
        session,
        { copySql: `copy (${query.sql}) to stdout` },
        {
          add(message: Buffer) {
            sink.rows++;
            sink.bytes += message.length;
            return collector.add(message);
          },
        },
      );
    },
    finish: () => collector.finish([fieldCount]),
  };
  return sink;
}

/** A sink that reads each window with SELECT; rows are escaped to COPY text at the end. */
function selectSink(session: Session, request: ReadBatchRequest, fieldCount: number): PageSink {
  const taken: RawRow[] = [];
  const sink = {
    rows: 0,
    bytes: 0,
    async run(build: (placeholder: Placeholder) => KeysetQuery) {
      const query = build(dollarPlaceholder);
      for (const row of await session.rawRows(query.sql, query.params)) {
        taken.push(row);
        sink.rows++;
        sink.bytes += row.length;
        for (const value of row) sink.bytes += value ? value.length : 2;
      }
      return true;
    },
    finish: () => encodePage(taken, fieldCount, [fieldCount], request.maxBytes),
  };
  return sink;
}

/**
 * Reads one batch of a table without a row key (see the module comment).
 * `snapshots` holds the snapshot exported by a first read (no `after`, no
 * `until`); it is let go when the read reaches the table's end.
 *
 * @throws DrayError `failed_precondition` for a partitioned table (row
 *   positions repeat across partitions), without a snapshot holder on a first
 *   read, or when the snapshot is gone.
 */
export async function readKeyless(
  session: Session,
  request: ReadBatchRequest,
  info: EntityInfo,
  method: "copy" | "select",
  snapshots: SnapshotHolder | undefined,
): Promise<ReadBatchResult> {
  const entity = displayName(info.entity);
  if (info.partitioned)
    throw new DrayError(
      "failed_precondition",
      `${entity} is partitioned and has no primary key and no unique key of NOT NULL fields: its rows cannot ` +
        "be read in consistent batches (row positions repeat across partitions). Add a primary key or a " +
        `unique index on NOT NULL fields to ${entity}, or name such key fields, then run again.`,
    );
  const plan = planRead(info, request, []);
  const range = keylessRange(request);
  let snapshotId = range.snapshotId;
  let totalBlocks = range.totalBlocks;
  let exported = false;
  if (snapshotId === null || totalBlocks === null) {
    if (!snapshots)
      throw new DrayError(
        "failed_precondition",
        `${entity} has no primary key and no unique key of NOT NULL fields, and this connector cannot hold ` +
          "a snapshot to read it consistently; give it a primary key or name key fields",
      );
    const snapshot = await snapshots.export(info.entity, session.signal);
    snapshotId = snapshot.snapshotId;
    totalBlocks = snapshot.totalBlocks;
    exported = true;
  }
  const id = snapshotId;
  const blocks = totalBlocks;
  try {
    const { page, reachedEnd } = await inSnapshot(session, info, id, () =>
      readWindows(session, request, plan, range, blocks, method),
    );
    const done = reachedEnd && !page.trimmed;
    if (done && range.until === null) await snapshots?.release(id, "the read reached the table's end");
    else snapshots?.touch(id);
    return {
      rows: {
        encoding: "copy_text",
        fields: plan.fields.map((f) => f.name),
        rowCount: page.rowCount,
        data: page.data,
      },
      last: page.last ? keylessCursor(id, page.last[0]!, blocks) : null,
      done,
    };
  } catch (error) {
    // No cursor of this snapshot was handed out: nobody can read it again.
    if (exported) await snapshots?.release(id, "the first read failed");
    throw error;
  }
}

/**
 * Reads windows of blocks inside the snapshot until the page is full (rows or
 * bytes) or the last block (the table's, or the one of `until`) is passed.
 */
async function readWindows(
  session: Session,
  request: ReadBatchRequest,
  plan: KeysetPlan,
  range: KeylessRange,
  totalBlocks: number,
  method: "copy" | "select",
): Promise<{ page: ReturnType<PageSink["finish"]>; reachedEnd: boolean }> {
  const [stats] = await session.query<{ tuples: number; pages: number }>(STATS_SQL, [
    request.entity.schema,
    request.entity.name,
  ]);
  const density = rowsPerBlock({ tuples: Number(stats?.tuples ?? 0), pages: Number(stats?.pages ?? 0) });
  const lastBlock = range.until ? Math.min(totalBlocks, range.until.block + 1) : totalBlocks;
  const fieldCount = plan.fields.length;
  const probe = buildWindowQuery(
    request,
    plan,
    { after: range.after, fromBlock: null, endBlock: 0, until: range.until, limit: request.maxRows },
    settingPlaceholder,
  );
  const sink =
    method === "copy" && settingsCanCarry(probe.params)
      ? copySink(session, request, fieldCount)
      : selectSink(session, request, fieldCount);
  let start = range.after?.block ?? 0;
  let after = range.after;
  // The first window starts inside the block of `after`: one block more.
  let size = windowBlocks(request.maxRows, density) + (after ? 1 : 0);
  let reachedEnd = false;
  while (start < lastBlock) {
    const end = Math.min(lastBlock, start + size);
    const wanted = request.maxRows - sink.rows;
    const before = sink.rows;
    const bounds: WindowBounds = {
      after,
      fromBlock: start,
      endBlock: end,
      until: range.until,
      limit: wanted,
    };
    const complete = await sink.run((placeholder) => buildWindowQuery(request, plan, bounds, placeholder));
    const found = sink.rows - before;
    if (!complete || found >= wanted || sink.bytes >= request.maxBytes) break;
    if (end >= lastBlock) {
      reachedEnd = true;
      break;
    }
    size = nextWindowBlocks(end - start, found, wanted - found);
    start = end;
    after = null;
  }
  if (start >= lastBlock) reachedEnd = true;
  return { page: sink.finish(), reachedEnd };
}
