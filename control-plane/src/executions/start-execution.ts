/**
 * Starting an execution: a `queued` row with the pipeline's settings frozen in
 * `snapshot`, the first stage-log entry and a status event. The executor picks
 * queued rows up; one execution per pipeline is enforced by the partial unique
 * index `executions_one_active_idx`, so concurrent starts cannot both win.
 */
import { randomUUID } from "node:crypto";
import { DrayError, type Logger } from "@dray/common";
import { and, eq, inArray } from "drizzle-orm";
import type { EventBus } from "../events/event-bus.js";
import type { PipelineSettings } from "../pipelines/pipeline-validation.js";
import { requireSourceEnvironment } from "../pipelines/pipeline-validation.js";
import { getPipeline } from "../pipelines/pipelines-service.js";
import type { Db } from "../store/db.js";
import { newId } from "../store/ids.js";
import { isUniqueViolation } from "../store/raw-sql.js";
import { executions } from "../store/schema.js";
import { appendExecutionEvent } from "./execution-events.js";
import type { Actor, PipelineRow } from "./execution-records.js";
import { STAGES } from "./execution-vocabulary.js";
import { appendStageLog, type StageLogRow, stageLogEvent } from "./stage-log.js";

/** What the execution services need; events are written only when `bus` is set. */
export interface ExecutionServiceDeps {
  db: Db;
  bus?: EventBus | undefined;
  logger: Logger;
}

/** Answer of a start. */
export interface StartedExecution {
  id: string;
  pipelineToken: string;
  status: "queued";
}

/** The pipeline settings frozen into an execution's `snapshot`. */
export function pipelineSnapshot(pipeline: PipelineRow): PipelineSettings {
  return {
    name: pipeline.name,
    sourceKind: pipeline.sourceKind,
    sourceEnvironmentId: pipeline.sourceEnvironmentId,
    targetEnvironmentId: pipeline.targetEnvironmentId,
    action: pipeline.action,
    writeStrategy: pipeline.writeStrategy,
    entities: pipeline.entities,
    batchSize: pipeline.batchSize,
    batchBytes: pipeline.batchBytes,
    maxRetriesPerBatch: pipeline.maxRetriesPerBatch,
    stopOnError: pipeline.stopOnError,
    targetTriggers: pipeline.targetTriggers,
    loadOrder: pipeline.loadOrder,
    entityConcurrency: pipeline.entityConcurrency,
    // A copy's frozen settings stay as they were; a transform freezes its rules.
    ...(pipeline.action === "transform"
      ? {
          transformations: (pipeline.transformations ?? []).map((t) => ({ ...t, options: { ...t.options } })),
        }
      : {}),
    ...((pipeline.qualityRules ?? []).length > 0
      ? { qualityRules: pipeline.qualityRules.map((r) => ({ ...r, options: { ...r.options } })) }
      : {}),
    mode: pipeline.mode,
    ...(pipeline.mode === "continuous"
      ? {
          cursorField: pipeline.cursorField,
          batchIntervalMs: pipeline.batchIntervalMs,
          safetyLagMs: pipeline.safetyLagMs,
          maxFailedPolls: pipeline.maxFailedPolls,
          reconcileEveryPolls: pipeline.reconcileEveryPolls,
        }
      : {}),
    ...(pipeline.fileSettings ? { fileSettings: structuredClone(pipeline.fileSettings) } : {}),
  };
}

/** A new pipeline token, `pt-<uuid v4>`. */
export function newPipelineToken(): string {
  return `pt-${randomUUID()}`;
}

async function activeExecutionOf(db: Db, pipelineId: string): Promise<string | undefined> {
  const [row] = await db
    .select({ id: executions.id })
    .from(executions)
    .where(and(eq(executions.pipelineId, pipelineId), inArray(executions.status, ["queued", "in_progress"])))
    .limit(1);
  return row?.id;
}

function alreadyRunning(pipeline: PipelineRow, executionId: string): DrayError {
  return new DrayError(
    "failed_precondition",
    `pipeline "${pipeline.name}" already has an execution in progress (${executionId}): wait for it or cancel it`,
    { details: { executionId } },
  );
}

/**
 * Queues an execution of the organisation's pipeline. Throws `not_found` for
 * an unknown pipeline and `failed_precondition` (409, `details.executionId`)
 * while another execution of it is queued or in progress.
 */
export async function startExecution(
  deps: ExecutionServiceDeps,
  organisationId: string,
  pipelineId: string,
  input: { confirm?: boolean | undefined; actor: Actor },
  now: Date,
): Promise<StartedExecution> {
  const pipeline = await getPipeline(deps.db, organisationId, pipelineId);
  requireSourceEnvironment(pipeline, "is not run: each uploaded file is loaded as its own job");
  let created: { id: string; pipelineToken: string; entry: StageLogRow } | undefined;
  // A unique violation whose winner finished in between is retried once.
  for (let attempt = 0; attempt < 2 && !created; attempt++) {
    const id = newId();
    const pipelineToken = newPipelineToken();
    try {
      created = await deps.db.transaction(async (tx) => {
        await tx.insert(executions).values({
          id,
          organisationId,
          pipelineId: pipeline.id,
          pipelineToken,
          kind: pipeline.mode === "continuous" ? "continuous" : "run",
          status: "queued",
          triggeredBy: input.actor,
          snapshot: pipelineSnapshot(pipeline),
          confirmed: input.confirm ?? false,
          createdAt: now,
          updatedAt: now,
        });
        const entry = await appendStageLog(tx, {
          executionId: id,
          processName: STAGES.intake,
          state: "begin",
          code: "begin",
          description: "Process started",
          at: now,
        });
        return { id, pipelineToken, entry };
      });
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
      const active = await activeExecutionOf(deps.db, pipeline.id);
      if (active) throw alreadyRunning(pipeline, active);
    }
  }
  if (!created) throw new DrayError("aborted", "the execution could not be queued: retry");

  const { id, pipelineToken, entry } = created;
  deps.logger.info("execution queued", { organisationId, pipelineId: pipeline.id, executionId: id });
  if (deps.bus) {
    const events = { db: deps.db, bus: deps.bus, logger: deps.logger };
    const target = { executionId: id, organisationId };
    try {
      await appendExecutionEvent(events, target, "status", {
        type: "execution.status",
        status: "queued",
        pipelineId: pipeline.id,
        pipelineToken,
        triggeredBy: input.actor,
      });
      await appendExecutionEvent(events, target, "log", stageLogEvent(entry));
    } catch (error) {
      deps.logger.warn("could not record the queued event", { executionId: id, error: String(error) });
    }
  }
  return { id, pipelineToken, status: "queued" };
}
