/**
 * Paged lists of an execution's errors and batches, and a pipeline's run
 * history (newest first, filtered by status and createdAt range).
 */

import { DrayError } from "@dray/common";
import { and, count, eq, gte, inArray, lt, lte, type SQL, sql, sum } from "drizzle-orm";
import {
  decodeCursor,
  type KeysetKey,
  keysetAfter,
  keysetColumns,
  keysetOrderBy,
  pageOf,
} from "../api/pagination.js";
import { getPipeline } from "../pipelines/pipelines-service.js";
import type { Db } from "../store/db.js";
import { executionBatches, executionEntities, executionErrors, executions } from "../store/schema.js";
import { durationMsOf } from "./execution-math.js";
import { type Actor, requireExecution } from "./execution-records.js";
import { BATCH_STATE_LABELS, type ExecutionStatus } from "./execution-vocabulary.js";
import type { CreatedRange } from "./history-filter.js";

/** Which page: 1-based `page`, `pageSize` items per page. */
export interface Paging {
  page: number;
  pageSize: number;
}

/** A page of items with the paging and the total count. */
export type Page<K extends string, T> = { [key in K]: T[] } & Paging & { total: number };

const offsetOf = (p: Paging) => (p.page - 1) * p.pageSize;

/** {@link Paging} with the keyset cursor of a previous answer's `next` (then `page` must be 1). */
export type CursorPaging = Paging & { cursor?: string | undefined };

/**
 * Where a page starts: after the cursor's position (keyset), or at the page's
 * offset when no cursor is given. Throws `invalid_argument` naming `cursor`
 * for a malformed one, or one given together with a page other than 1.
 */
function windowOf(paging: CursorPaging, keys: KeysetKey[], list: string): { after?: SQL; offset: number } {
  if (paging.cursor === undefined) return { offset: offsetOf(paging) };
  const after = keysetAfter(keys, decodeCursor(paging.cursor, list, keys.length));
  if (paging.page !== 1) {
    throw new DrayError("invalid_argument", "give either page or cursor, not both", {
      details: { issues: [{ path: "cursor", message: "cannot be combined with page" }] },
    });
  }
  return { after, offset: 0 };
}

const ERROR_KEYS: KeysetKey[] = [{ expr: sql`${executionErrors.id}`, dir: "asc", kind: "number" }];
const ERROR_LIST = "errors:id";
const BATCH_KEYS: KeysetKey[] = [
  { expr: sql`${executionBatches.entity}`, dir: "asc" },
  { expr: sql`${executionBatches.pass}`, dir: "asc", kind: "number" },
  { expr: sql`${executionBatches.seq}`, dir: "asc", kind: "number" },
  { expr: sql`${executionBatches.id}`, dir: "asc", kind: "uuid" },
];
const BATCH_LIST = "batches:entity";
const iso = (date: Date | null) => (date ? date.toISOString() : null);

/**
 * The organisation's execution errors, oldest first, by severity and/or
 * entity; `next` is the cursor of the following page (null on the last).
 */
export async function listExecutionErrors(
  db: Db,
  organisationId: string,
  id: string,
  filter: { severity?: "error" | "warning" | undefined; entity?: string | undefined },
  paging: CursorPaging,
) {
  await requireExecution(db, organisationId, id);
  const conditions: SQL[] = [eq(executionErrors.executionId, id)];
  if (filter.severity) conditions.push(eq(executionErrors.severity, filter.severity));
  if (filter.entity) conditions.push(eq(executionErrors.entity, filter.entity));
  const where = and(...conditions);
  const window = windowOf(paging, ERROR_KEYS, ERROR_LIST);
  const [fetched, [counted]] = await Promise.all([
    db
      .select({ row: executionErrors, position: keysetColumns(ERROR_KEYS) })
      .from(executionErrors)
      .where(and(where, window.after))
      .orderBy(...keysetOrderBy(ERROR_KEYS))
      .limit(paging.pageSize + 1)
      .offset(window.offset),
    db.select({ total: count() }).from(executionErrors).where(where),
  ]);
  const { items, next } = pageOf(fetched, paging.pageSize, ERROR_LIST, (r) => r.position);
  const rows = items.map((r) => r.row);
  const errors = rows.map((r) => ({
    id: r.id,
    at: r.at.toISOString(),
    severity: r.severity,
    entity: r.entity,
    recordKey: r.recordKey,
    field: r.field,
    code: r.code,
    message: r.message,
  }));
  return { errors, page: paging.page, pageSize: paging.pageSize, total: Number(counted?.total ?? 0), next };
}

/**
 * The organisation's execution batches, by entity, pass and seq, with seed
 * 03's state labels; `next` is the cursor of the following page (null on the last).
 */
export async function listExecutionBatches(
  db: Db,
  organisationId: string,
  id: string,
  filter: { entity?: string | undefined },
  paging: CursorPaging,
) {
  await requireExecution(db, organisationId, id);
  const conditions: SQL[] = [eq(executionBatches.executionId, id)];
  if (filter.entity) conditions.push(eq(executionBatches.entity, filter.entity));
  const where = and(...conditions);
  const window = windowOf(paging, BATCH_KEYS, BATCH_LIST);
  const [fetched, [counted]] = await Promise.all([
    db
      .select({ row: executionBatches, position: keysetColumns(BATCH_KEYS) })
      .from(executionBatches)
      .where(and(where, window.after))
      .orderBy(...keysetOrderBy(BATCH_KEYS))
      .limit(paging.pageSize + 1)
      .offset(window.offset),
    db.select({ total: count() }).from(executionBatches).where(where),
  ]);
  const { items, next } = pageOf(fetched, paging.pageSize, BATCH_LIST, (r) => r.position);
  const rows = items.map((r) => r.row);
  const batches = rows.map((r) => ({
    id: r.id,
    entity: r.entity,
    pass: r.pass,
    seq: r.seq,
    state: BATCH_STATE_LABELS[r.state],
    cursorFrom: r.cursorFrom,
    cursorTo: r.cursorTo,
    rows: r.rows,
    created: r.created,
    updated: r.updated,
    rejected: r.rejected,
    attempts: r.attempts,
    durationMs: r.durationMs,
    error: r.error,
    startedAt: r.startedAt.toISOString(),
    finishedAt: iso(r.finishedAt),
  }));
  return { batches, page: paging.page, pageSize: paging.pageSize, total: Number(counted?.total ?? 0), next };
}

/** One run in a pipeline's history. */
export interface ExecutionSummary {
  id: string;
  pipelineToken: string;
  status: ExecutionStatus;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  recordsProcessed: number;
  triggeredBy: Actor;
}

/** Sort keys of the run history: newest first (exact to the microsecond), then by id. */
const HISTORY_KEYS: KeysetKey[] = [
  { expr: sql`extract(epoch from ${executions.createdAt})`, dir: "desc", kind: "number" },
  { expr: sql`${executions.id}`, dir: "desc", kind: "uuid" },
];
const HISTORY_LIST = "executions:createdAt";

/**
 * The run history of the organisation's pipeline, newest first. `page` pages
 * by offset as before; `cursor` (the `next` of a previous answer) pages by
 * keyset instead and then `page` must be 1. `next` is the cursor of the page
 * after this one, or null on the last page.
 */
export async function listPipelineExecutions(
  db: Db,
  organisationId: string,
  pipelineId: string,
  filter: { statuses?: ExecutionStatus[] | undefined; range: CreatedRange },
  paging: CursorPaging,
  now: Date,
): Promise<Page<"executions", ExecutionSummary> & { next: string | null }> {
  await getPipeline(db, organisationId, pipelineId);
  const conditions: SQL[] = [eq(executions.pipelineId, pipelineId)];
  if (filter.statuses) conditions.push(inArray(executions.status, filter.statuses));
  if (filter.range.from) conditions.push(gte(executions.createdAt, filter.range.from));
  if (filter.range.before) conditions.push(lt(executions.createdAt, filter.range.before));
  if (filter.range.until) conditions.push(lte(executions.createdAt, filter.range.until));
  const where = and(...conditions);
  const window = windowOf(paging, HISTORY_KEYS, HISTORY_LIST);
  const [fetched, [counted]] = await Promise.all([
    db
      .select({ row: executions, position: keysetColumns(HISTORY_KEYS) })
      .from(executions)
      .where(and(where, window.after))
      .orderBy(...keysetOrderBy(HISTORY_KEYS))
      .limit(paging.pageSize + 1)
      .offset(window.offset),
    db.select({ total: count() }).from(executions).where(where),
  ]);
  const { items: page, next } = pageOf(fetched, paging.pageSize, HISTORY_LIST, (r) => r.position);
  const rows = page.map((r) => r.row);
  const processed = new Map<string, number>();
  if (rows.length > 0) {
    const sums = await db
      .select({ executionId: executionEntities.executionId, processed: sum(executionEntities.processed) })
      .from(executionEntities)
      .where(
        inArray(
          executionEntities.executionId,
          rows.map((r) => r.id),
        ),
      )
      .groupBy(executionEntities.executionId);
    for (const s of sums) processed.set(s.executionId, Number(s.processed ?? 0));
  }
  const items = rows.map((r) => ({
    id: r.id,
    pipelineToken: r.pipelineToken,
    status: r.status,
    createdAt: r.createdAt.toISOString(),
    startedAt: iso(r.startedAt),
    finishedAt: iso(r.finishedAt),
    durationMs: durationMsOf(r.startedAt, r.finishedAt, now),
    recordsProcessed: processed.get(r.id) ?? 0,
    triggeredBy: r.triggeredBy,
  }));
  return {
    executions: items,
    page: paging.page,
    pageSize: paging.pageSize,
    total: Number(counted?.total ?? 0),
    next,
  };
}
