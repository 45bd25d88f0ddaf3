/**
 * A continuous pipeline's long-lived execution (seed 03's START / STOP
 * PIPELINE): poll after poll, each entity (in dependency order) is copied
 * from its checkpoint to the source agent's high-water mark, batch by batch,
 * each batch one target transaction that records its position in the ledger.
 * A poll that moved rows is followed at once by the next; an idle one waits
 * `batchIntervalMs`. Stop lets the batches in flight commit, then ends the run
 * `completed`. A poll that fails counts towards `maxFailedPolls`, after which
 * the run pauses itself (`failed`, reason `paused_after_failed_polls`); a new
 * start resumes from the positions.
 */
import { DrayError, sleep } from "@dray/common";
import { and, desc, eq, ne, sql } from "drizzle-orm";
import { REASON_CODES, STAGES } from "../executions/execution-vocabulary.js";
import { executionBatches, executionEntities, executions } from "../store/schema.js";
import { isReadFailure } from "./batch-read.js";
import { inDependencyOrder } from "./dependency-order.js";
import { copyEntity } from "./entity-copier.js";
import { reconcileEntity } from "./reconcile.js";
import type { EntityRunPlan, RunContext } from "./run-context.js";
import { AgentUnavailable, BatchFailed, RecordLimitReached } from "./run-errors.js";

/** Thrown when a continuous run pauses itself after too many failed polls in a row. */
export class PausedAfterFailedPolls extends DrayError {
  readonly reasonCode: string = REASON_CODES.pausedAfterFailedPolls;
}

/**
 * Gives a new continuous execution the positions its pipeline's previous
 * continuous execution reached (a STOP then START resumes, it does not copy
 * everything again). Only entities read in the same order carry over.
 */
export async function carryPositionsOver(ctx: RunContext, pipelineId: string): Promise<number> {
  const [previous] = await ctx.db
    .select({ id: executions.id, snapshot: executions.snapshot })
    .from(executions)
    .where(
      and(
        eq(executions.pipelineId, pipelineId),
        eq(executions.kind, "continuous"),
        ne(executions.id, ctx.executionId),
      ),
    )
    .orderBy(desc(executions.createdAt))
    .limit(1);
  if (!previous) return 0;
  const plan = (previous.snapshot as { plan?: { entities: EntityRunPlan[] } }).plan;
  const rows = await ctx.db
    .select({ entity: executionEntities.entity, checkpoint: executionEntities.checkpoint })
    .from(executionEntities)
    .where(eq(executionEntities.executionId, previous.id));
  let carried = 0;
  for (const row of rows) {
    const before = plan?.entities.find((e) => e.entity === row.entity)?.cursorKey;
    const now = ctx.plan.entities.find((e) => e.entity === row.entity)?.cursorKey;
    if (!row.checkpoint || !before || !now || JSON.stringify(before) !== JSON.stringify(now)) continue;
    await ctx.db
      .update(executionEntities)
      .set({ checkpoint: row.checkpoint })
      .where(
        and(eq(executionEntities.executionId, ctx.executionId), eq(executionEntities.entity, row.entity)),
      );
    carried += 1;
  }
  return carried;
}

/** Whether the execution has reserved any batch yet. */
async function hasBatches(ctx: RunContext): Promise<boolean> {
  const [row] = await ctx.db
    .select({ id: executionBatches.id })
    .from(executionBatches)
    .where(eq(executionBatches.executionId, ctx.executionId))
    .limit(1);
  return row !== undefined;
}

/** Records one poll of the source (the count and time the Execution Monitor shows). */
async function notePoll(ctx: RunContext): Promise<number> {
  const [row] = await ctx.db
    .update(executions)
    .set({ polls: sql`${executions.polls} + 1`, lastPollAt: sql`now()` })
    .where(eq(executions.id, ctx.executionId))
    .returning({ polls: executions.polls });
  return row?.polls ?? 0;
}

/** Whether a reconcile was asked for on demand, clearing the request. */
async function takeReconcileRequest(ctx: RunContext): Promise<boolean> {
  const rows = await ctx.db
    .update(executions)
    .set({ reconcileRequestedAt: null })
    .where(and(eq(executions.id, ctx.executionId), sql`${executions.reconcileRequestedAt} is not null`))
    .returning({ id: executions.id });
  return rows.length > 0;
}

const processedOf = (ctx: RunContext) =>
  [...ctx.counters.values()].reduce((n, c) => n + c.processed + c.skipped + c.failed, 0);

/** Sleeps `ms`, waking early when the run stops or is aborted. */
async function idle(ctx: RunContext, ms: number, stop: AbortSignal): Promise<void> {
  if (stop.aborted) return;
  const both = AbortSignal.any([ctx.signal, stop]);
  await sleep(ms, both).catch(() => {});
}

/**
 * Runs the polls of a continuous execution until `stop` fires (resolves) or
 * the run fails, is cancelled or handed over (throws).
 */
export async function runContinuous(ctx: RunContext, stop: AbortSignal, pipelineId: string) {
  const settings = ctx.settings;
  const interval = settings.batchIntervalMs ?? 2500;
  const maxFailed = settings.maxFailedPolls ?? 5;
  const reconcileEvery = settings.reconcileEveryPolls ?? 0;
  // Until its first batch, a run (also one resumed after a crash at its start) takes the previous positions.
  if (!(await hasBatches(ctx))) {
    const carried = await carryPositionsOver(ctx, pipelineId);
    if (carried > 0)
      await ctx.journal.stage({
        processName: STAGES.jobRunner,
        state: "processing",
        code: "resumed",
        description: `Continuing ${carried} entities from the positions the previous start reached`,
      });
  }
  await ctx.journal.stage({
    processName: STAGES.jobRunner,
    state: "processing",
    code: "continuous",
    description:
      `Continuous: copying new and changed rows of ${ctx.plan.entities.length} entities ` +
      `(polling every ${interval} ms when idle, safety lag ${settings.safetyLagMs ?? 0} ms)`,
  });
  let failedPolls = 0;
  while (!stop.aborted) {
    const before = processedOf(ctx);
    let poll = 0;
    try {
      await inDependencyOrder(ctx.plan.entities, settings.entityConcurrency, async (entity, halt) => {
        await copyEntity(ctx, entity, 1, AbortSignal.any([halt, stop]));
      });
      poll = await notePoll(ctx);
      failedPolls = 0;
    } catch (error) {
      if (ctx.signal.aborted || error instanceof RecordLimitReached) throw error;
      if (stop.aborted) break;
      // A batch given up after its retries with stopOnError stops the pipeline (seed 03); a poll that
      // could not read, or found an agent away, is a failed poll.
      const batchGivenUp = error instanceof BatchFailed && !(error instanceof AgentUnavailable);
      if (batchGivenUp && settings.stopOnError && !isReadFailure(error)) throw error;
      failedPolls += 1;
      const e = DrayError.from(error);
      await ctx.journal.stage({
        processName: STAGES.jobRunner,
        state: "error",
        code: "poll_failed",
        description: `Poll failed (${failedPolls} of ${maxFailed} in a row): ${e.message}`,
      });
      if (failedPolls >= maxFailed)
        throw new PausedAfterFailedPolls(
          "failed_precondition",
          `paused after ${failedPolls} failed polls in a row; the last one: ${e.message}. ` +
            "Fix the cause, then start the pipeline again: it resumes from its positions",
        );
      await idle(ctx, interval, stop);
      continue;
    }
    const moved = processedOf(ctx) - before;
    if (moved > 0) {
      await ctx.journal.stage({
        processName: STAGES.loader(ctx.plan.targetPlatform),
        state: "processing",
        code: "poll",
        description: `Poll ${poll}: ${moved} rows copied`,
      });
      await raiseTotals(ctx);
    }
    if ((reconcileEvery > 0 && poll % reconcileEvery === 0) || (await takeReconcileRequest(ctx))) {
      for (const entity of ctx.plan.entities) await reconcileEntity(ctx, entity, stop);
    }
    if (moved === 0) await idle(ctx, interval, stop);
  }
  await ctx.journal.stage({
    processName: STAGES.jobRunner,
    state: "end",
    code: "stopped",
    description: "Stopped at a batch boundary: every batch in flight committed first",
  });
}

/** A continuous run's totals follow what it copied (there is no fixed total to reach). */
async function raiseTotals(ctx: RunContext): Promise<void> {
  for (const [entity, c] of ctx.counters) {
    const seen = c.processed + c.skipped + c.failed;
    if (seen <= c.total) continue;
    c.total = seen;
    await ctx.db
      .update(executionEntities)
      .set({ total: seen })
      .where(and(eq(executionEntities.executionId, ctx.executionId), eq(executionEntities.entity, entity)));
  }
}
