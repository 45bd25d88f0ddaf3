/**
 * The execution as the API shows it (GET /executions/:id, the Execution
 * Monitor of seed 01): status, who, why, timings, throughput, totals and the
 * per-entity breakdown.
 */
import { asc, eq } from "drizzle-orm";
import type { Db } from "../store/db.js";
import { executionEntities, pipelines } from "../store/schema.js";
import { durationMsOf, percentOf, type RecordCounters, sumCounters, throughputOf } from "./execution-math.js";
import { type Actor, type ExecutionRow, requireExecution } from "./execution-records.js";
import type { ExecutionStatus } from "./execution-vocabulary.js";

/** One entity of an execution. */
export interface ExecutionEntityView extends RecordCounters {
  entity: string;
  level: number;
  status: string;
  pass: number;
  percent: number;
}

/** An execution as the API shows it. */
export interface ExecutionView {
  id: string;
  pipelineId: string;
  pipelineName: string;
  pipelineToken: string;
  /** `run` (a once run), `continuous` (a continuous pipeline's execution) or `file` (one uploaded file's load). */
  kind: "run" | "continuous" | "file";
  status: ExecutionStatus;
  cancelRequested: boolean;
  /** Continuous: polls of the source so far, the last one's time, and the stop asked for (by whom). */
  continuous: {
    polls: number;
    lastPollAt: string | null;
    stopRequested: boolean;
    stoppedBy: Actor | null;
  } | null;
  /** File loads: the file (SHA-256 of its bytes) and the upload batch's publisher token. */
  fileId: string | null;
  publisherToken: string | null;
  triggeredBy: Actor;
  cancelledBy: Actor | null;
  reasonCode: string | null;
  reason: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  recordsProcessed: number;
  /** Records processed per second over `durationMs`. */
  throughput: number;
  totals: RecordCounters;
  entities: ExecutionEntityView[];
  /** Times claimed by an executor; > 1 after a resume. */
  attempts: number;
}

const iso = (date: Date | null) => (date ? date.toISOString() : null);

/**
 * An entity's status as shown: an entity left `pending` or `in_progress` by a
 * failed or cancelled execution shows the execution's final status, so that
 * nothing of a finished run looks like it is still running.
 *
 * @example
 * entityStatusOf("in_progress", "cancelled") // "cancelled"
 * entityStatusOf("completed", "cancelled") // "completed"
 */
export function entityStatusOf(entity: string, execution: ExecutionStatus): string {
  const unfinished = entity === "pending" || entity === "in_progress";
  return unfinished && (execution === "failed" || execution === "cancelled") ? execution : entity;
}

/** Builds the view of a stored execution and its entity rows. Pure. */
export function toExecutionView(
  row: ExecutionRow,
  pipelineName: string,
  entities: readonly (typeof executionEntities.$inferSelect)[],
  now: Date,
): ExecutionView {
  const entityViews = entities
    .map((e) => ({
      entity: e.entity,
      level: e.level,
      status: entityStatusOf(e.status, row.status),
      pass: e.pass,
      total: e.total,
      processed: e.processed,
      created: e.created,
      updated: e.updated,
      skipped: e.skipped,
      failed: e.failed,
      percent: percentOf(e.processed, e.total, entityStatusOf(e.status, row.status)),
    }))
    .sort((a, b) => a.level - b.level || (a.entity < b.entity ? -1 : a.entity > b.entity ? 1 : 0));
  const totals = sumCounters(entityViews);
  const durationMs = durationMsOf(row.startedAt, row.finishedAt, now);
  return {
    id: row.id,
    pipelineId: row.pipelineId,
    pipelineName,
    pipelineToken: row.pipelineToken,
    kind: row.kind,
    status: row.status,
    cancelRequested: row.cancelRequestedAt !== null,
    continuous:
      row.kind === "continuous"
        ? {
            polls: row.polls,
            lastPollAt: iso(row.lastPollAt),
            stopRequested: row.stopRequestedAt !== null,
            stoppedBy: row.stoppedBy ?? null,
          }
        : null,
    fileId: row.fileId,
    publisherToken: row.publisherToken,
    triggeredBy: row.triggeredBy,
    cancelledBy: row.cancelledBy ?? null,
    reasonCode: row.reasonCode,
    reason: row.reason,
    createdAt: row.createdAt.toISOString(),
    startedAt: iso(row.startedAt),
    finishedAt: iso(row.finishedAt),
    durationMs,
    recordsProcessed: totals.processed,
    throughput: throughputOf(totals.processed, durationMs),
    totals,
    entities: entityViews,
    attempts: row.attempts,
  };
}

/**
 * The organisation's execution as the API shows it; `not_found` for an unknown
 * one or one of another organisation.
 */
export async function executionView(
  db: Db,
  organisationId: string,
  id: string,
  now: Date,
): Promise<ExecutionView> {
  const row = await requireExecution(db, organisationId, id);
  const [pipeline] = await db
    .select({ name: pipelines.name })
    .from(pipelines)
    .where(eq(pipelines.id, row.pipelineId))
    .limit(1);
  const entities = await db
    .select()
    .from(executionEntities)
    .where(eq(executionEntities.executionId, id))
    .orderBy(asc(executionEntities.level), asc(executionEntities.entity));
  return toExecutionView(row, pipeline?.name ?? "", entities, now);
}
