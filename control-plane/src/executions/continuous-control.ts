/**
 * START / STOP of a continuous pipeline (seed 03) and its on-demand
 * reconcile. Start queues the pipeline's long-lived execution; stop asks it
 * to end at the next batch boundary (the batches in flight commit first) and
 * the executor, which watches for the request and its event, ends it
 * `completed`; reconcile asks the running execution to delete, at its next
 * poll, the target rows whose key is gone from the source.
 */
import { DrayError } from "@dray/common";
import { and, eq, inArray } from "drizzle-orm";
import { getPipeline } from "../pipelines/pipelines-service.js";
import { executions } from "../store/schema.js";
import { appendExecutionEvent } from "./execution-events.js";
import type { Actor, ExecutionRow, PipelineRow } from "./execution-records.js";
import { STAGES } from "./execution-vocabulary.js";
import { appendStageLog } from "./stage-log.js";
import { type ExecutionServiceDeps, type StartedExecution, startExecution } from "./start-execution.js";

function requireContinuous(pipeline: PipelineRow, verb: string): void {
  if (pipeline.mode === "continuous") return;
  throw new DrayError(
    "failed_precondition",
    `pipeline ${pipeline.name} has mode "once": only a continuous pipeline can be ${verb}; run it with ` +
      `POST /api/v1/pipelines/${pipeline.id}/executions, or set "mode": "continuous" first`,
    { details: { mode: pipeline.mode } },
  );
}

async function activeContinuous(deps: ExecutionServiceDeps, pipeline: PipelineRow, verb: string) {
  const [row] = await deps.db
    .select()
    .from(executions)
    .where(
      and(
        eq(executions.pipelineId, pipeline.id),
        eq(executions.kind, "continuous"),
        inArray(executions.status, ["queued", "in_progress"]),
      ),
    )
    .limit(1);
  if (!row)
    throw new DrayError(
      "failed_precondition",
      `pipeline ${pipeline.name} is not running, so there is nothing to ${verb}: start it with POST /api/v1/pipelines/${pipeline.id}/start`,
      { details: { running: false } },
    );
  return row;
}

/**
 * Starts a continuous pipeline: queues its long-lived execution. `failed_precondition`
 * (409) for a once pipeline or while it already runs (`details.executionId`).
 */
export async function startContinuous(
  deps: ExecutionServiceDeps,
  organisationId: string,
  pipelineId: string,
  actor: Actor,
  now: Date,
): Promise<StartedExecution> {
  const pipeline = await getPipeline(deps.db, organisationId, pipelineId);
  requireContinuous(pipeline, "started");
  return startExecution(deps, organisationId, pipelineId, { actor }, now);
}

/**
 * Stops a continuous pipeline at its next batch boundary and returns its
 * execution. A start still queued ends at once. `failed_precondition` (409)
 * when it does not run.
 */
export async function stopContinuous(
  deps: ExecutionServiceDeps,
  organisationId: string,
  pipelineId: string,
  actor: Actor,
  now: Date,
): Promise<ExecutionRow> {
  const pipeline = await getPipeline(deps.db, organisationId, pipelineId);
  requireContinuous(pipeline, "stopped");
  const active = await activeContinuous(deps, pipeline, "stop");
  const stopped = await deps.db.transaction(async (tx) => {
    const [row] = await tx
      .update(executions)
      .set({
        stopRequestedAt: active.stopRequestedAt ?? now,
        stoppedBy: actor,
        updatedAt: now,
        ...(active.status === "queued" ? { status: "completed" as const, finishedAt: now } : {}),
      })
      .where(and(eq(executions.id, active.id), inArray(executions.status, ["queued", "in_progress"])))
      .returning();
    if (!row) return undefined;
    await appendStageLog(tx, {
      executionId: row.id,
      processName: STAGES.jobRunner,
      state: row.status === "completed" ? "end" : "processing",
      code: "stop_requested",
      description:
        row.status === "completed"
          ? `Stopped by ${actor.tokenName} before it started`
          : `Stop asked for by ${actor.tokenName}: the batches in flight finish first`,
      at: now,
    });
    return row;
  });
  if (!stopped) return activeContinuous(deps, pipeline, "stop");
  if (deps.bus) {
    const events = { db: deps.db, bus: deps.bus, logger: deps.logger };
    await appendExecutionEvent(events, { executionId: stopped.id, organisationId }, "status", {
      type: stopped.status === "completed" ? "execution.status" : "execution.stop_requested",
      status: stopped.status,
      stoppedBy: actor,
    }).catch((error) =>
      deps.logger.warn("could not record the stop event", { executionId: stopped.id, error: String(error) }),
    );
  }
  deps.logger.info("continuous pipeline stop requested", { organisationId, executionId: stopped.id });
  return stopped;
}

/**
 * Asks the running continuous execution to reconcile deletes at its next
 * poll; returns it. `failed_precondition` (409) when it does not run.
 */
export async function requestReconcile(
  deps: ExecutionServiceDeps,
  organisationId: string,
  pipelineId: string,
  now: Date,
): Promise<ExecutionRow> {
  const pipeline = await getPipeline(deps.db, organisationId, pipelineId);
  requireContinuous(pipeline, "reconciled");
  const active = await activeContinuous(deps, pipeline, "reconcile");
  const [row] = await deps.db
    .update(executions)
    .set({ reconcileRequestedAt: now, updatedAt: now })
    .where(eq(executions.id, active.id))
    .returning();
  return row ?? active;
}
