/**
 * Paged lists of an execution's errors and batches, and a pipeline's run
 * history (newest first, filtered by status and createdAt range).
 */
import { and, asc, count, desc, eq, gte, inArray, lt, lte, type SQL, sum } from "drizzle-orm";
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
const iso = (date: Date | null) => (date ? date.toISOString() : null);

/** The organisation's execution errors, oldest first, by severity and/or entity. */
export async function listExecutionErrors(
  db: Db,
  organisationId: string,
  id: string,
  filter: { severity?: "error" | "warning" | undefined; entity?: string | undefined },
  paging: Paging,
) {
  await requireExecution(db, organisationId, id);
  const conditions: SQL[] = [eq(executionErrors.executionId, id)];
  if (filter.severity) conditions.push(eq(executionErrors.severity, filter.severity));
  if (filter.entity) conditions.push(eq(executionErrors.entity, filter.entity));
  const where = and(...conditions);
  const [rows, [counted]] = await Promise.all([
    db
      .select()
      .from(executionErrors)
      .where(where)
      .orderBy(asc(executionErrors.id))
      .limit(paging.pageSize)
      .offset(offsetOf(paging)),
    db.select({ total: count() }).from(executionErrors).where(where),
  ]);
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
  return { errors, ...paging, total: Number(counted?.total ?? 0) };
}

/** The organisation's execution batches, by entity, pass and seq, with seed 03's state labels. */
export async function listExecutionBatches(
  db: Db,
  organisationId: string,
  id: string,
  filter: { entity?: string | undefined },
  paging: Paging,
) {
  await requireExecution(db, organisationId, id);
  const conditions: SQL[] = [eq(executionBatches.executionId, id)];
  if (filter.entity) conditions.push(eq(executionBatches.entity, filter.entity));
  const where = and(...conditions);
  const [rows, [counted]] = await Promise.all([
    db
      .select()
      .from(executionBatches)
      .where(where)
      .orderBy(asc(executionBatches.entity), asc(executionBatches.pass), asc(executionBatches.seq))
      .limit(paging.pageSize)
      .offset(offsetOf(paging)),
    db.select({ total: count() }).from(executionBatches).where(where),
  ]);
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
  return { batches, ...paging, total: Number(counted?.total ?? 0) };
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

/** The run history of the organisation's pipeline, newest first. */
export async function listPipelineExecutions(
  db: Db,
  organisationId: string,
  pipelineId: string,
  filter: { statuses?: ExecutionStatus[] | undefined; range: CreatedRange },
  paging: Paging,
  now: Date,
): Promise<Page<"executions", ExecutionSummary>> {
  await getPipeline(db, organisationId, pipelineId);
  const conditions: SQL[] = [eq(executions.pipelineId, pipelineId)];
  if (filter.statuses) conditions.push(inArray(executions.status, filter.statuses));
  if (filter.range.from) conditions.push(gte(executions.createdAt, filter.range.from));
  if (filter.range.before) conditions.push(lt(executions.createdAt, filter.range.before));
  if (filter.range.until) conditions.push(lte(executions.createdAt, filter.range.until));
  const where = and(...conditions);
  const [rows, [counted]] = await Promise.all([
    db
      .select()
      .from(executions)
      .where(where)
      .orderBy(desc(executions.createdAt), desc(executions.id))
      .limit(paging.pageSize)
      .offset(offsetOf(paging)),
    db.select({ total: count() }).from(executions).where(where),
  ]);
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
  return { executions: items, ...paging, total: Number(counted?.total ?? 0) };
}
