import { DrayError, sleep } from "@dray/common";
import { and, count, eq, sql } from "drizzle-orm";
import { STAGES } from "../executions/execution-vocabulary.js";
import type { Db } from "../store/db.js";
import { executionEntities, executionErrors, executions } from "../store/schema.js";
import { releaseUnfinishedBatches } from "./batch-bookkeeping.js";
import { readPage } from "./batch-read.js";
import { runContinuous } from "./continuous-run.js";
import { eachLimited, inDependencyOrder } from "./dependency-order.js";
import { copyEntity } from "./entity-copier.js";
import type { ClaimedExecution } from "./execution-lease.js";
import { runFileLoad } from "./file-load.js";
import { type PreflightHooks, preflight } from "./preflight.js";
import { ReadAhead } from "./read-ahead.js";
import type {
  EntityRunPlan,
  ExecutionPlan,
  PipelineSettings,
  RunContext,
  RunSnapshot,
} from "./run-context.js";
import { abortKindOf, type RunAborted, reasonCodeOf } from "./run-errors.js";
import { noteEntityLoaded, openRunSnapshot, releaseRunSnapshot, trustedNow } from "./run-snapshot.js";
import { acquireTargetLocks } from "./target-locks.js";
import { cleanTargets, moveSequences, validatePostponed } from "./target-tasks.js";

/**
 * What else the transaction that records a run's end writes (a file load: its
 * file's state), so that it changes exactly when the run's status does.
 */
interface AlsoWhenFinished {
  alsoWhenFinished?: (tx: Db) => Promise<void>;
}

/** How a run ended. `lost` means another replica owns it now: write nothing more. */
export type RunOutcome =
  | ({ status: "completed" } & AlsoWhenFinished)
  | ({ status: "failed"; reasonCode: string; reason: string } & AlsoWhenFinished)
  | ({ status: "cancelled"; reason: string } & AlsoWhenFinished)
  | { status: "lost" };

const STAGE = { intake: "StreamNotifier", runner: "JobRunner" } as const;

const loaderOf = (plan: ExecutionPlan) => STAGES.loader(plan.targetPlatform);

async function loadOrPlan(
  ctx: Omit<RunContext, "plan">,
  execution: ClaimedExecution,
  hooks: PreflightHooks = {},
): Promise<ExecutionPlan> {
  const snapshot = execution.snapshot as PipelineSettings & { plan?: ExecutionPlan };
  if (snapshot.plan) {
    const rows = await ctx.db
      .select()
      .from(executionEntities)
      .where(eq(executionEntities.executionId, ctx.executionId));
    for (const r of rows) ctx.counters.set(r.entity, { ...r });
    await ctx.journal.stage({
      processName: STAGE.intake,
      state: "processing",
      code: "resumed",
      description: `Resumed (attempt ${execution.attempts}) from the last checkpoints`,
    });
    return snapshot.plan;
  }
  const { plan, totals } = await preflight(ctx, ctx.settings, execution.confirmed, hooks);
  await ctx.db.transaction(async (tx) => {
    await tx
      .update(executions)
      .set({ snapshot: { ...snapshot, plan } })
      .where(eq(executions.id, ctx.executionId));
    await tx
      .insert(executionEntities)
      .values(
        plan.entities.map((e) => ({
          executionId: ctx.executionId,
          entity: e.entity,
          level: e.level,
          status: "pending" as const,
          total: totals.get(e.entity) ?? 0,
        })),
      )
      .onConflictDoNothing();
  });
  for (const e of plan.entities) {
    ctx.counters.set(e.entity, {
      total: totals.get(e.entity) ?? 0,
      processed: 0,
      created: 0,
      updated: 0,
      skipped: 0,
      failed: 0,
    });
  }
  const total = [...totals.values()].reduce((a, b) => a + b, 0);
  await ctx.journal.stage({
    processName: STAGE.intake,
    state: "end",
    code: "end",
    description:
      `Preflight passed: ${plan.entities.length} entities in ${plan.levels.length} levels, ${total} records` +
      estimatedNote(plan),
  });
  return plan;
}

/**
 * A resumed run may start before the agents have reconnected (the control
 * plane just restarted, or took over from a dead replica): wait, bounded by
 * `agentReconnectWaitMs` (agents back off up to 15 s between reconnects, while
 * a batch's retries give up after a few seconds), until both environments' agents are
 * connected here. Afterwards the batches' own retries and errors apply.
 */
async function awaitAgents(ctx: Omit<RunContext, "plan">, plan: ExecutionPlan | undefined): Promise<void> {
  const environments = [
    { role: "source", id: ctx.settings.sourceEnvironmentId, name: plan?.sourceName },
    { role: "target", id: ctx.settings.targetEnvironmentId, name: plan?.targetName },
  ].filter((e): e is { role: string; id: string; name: string | undefined } => e.id !== null);
  const missing = () => environments.filter((e) => !ctx.agents.isConnected(e.id));
  if (missing().length === 0) return;
  await ctx.journal.stage({
    processName: STAGE.runner,
    state: "processing",
    code: "waiting",
    description: `Waiting for the agents of ${missing()
      .map((e) => (e.name ? `${e.role} environment "${e.name}"` : `the ${e.role} environment`))
      .join(" and ")} to reconnect`,
  });
  const until = Date.now() + ctx.options.agentReconnectWaitMs;
  while (missing().length > 0 && Date.now() < until) await sleep(100, ctx.signal);
}

async function setEntityStatus(ctx: RunContext, entity: string, status: "in_progress" | "completed") {
  await ctx.db
    .update(executionEntities)
    .set({
      status,
      ...(status === "in_progress"
        ? { startedAt: sql`coalesce(${executionEntities.startedAt}, now())` }
        : { finishedAt: sql`now()` }),
    })
    .where(and(eq(executionEntities.executionId, ctx.executionId), eq(executionEntities.entity, entity)));
}

/** What the preflight line says of totals that are estimates (empty when every one was counted). */
function estimatedNote(plan: ExecutionPlan): string {
  const estimated = plan.entities.filter((e) => e.totalEstimated).map((e) => e.entity);
  return estimated.length === 0
    ? ""
    : ` (${estimated.join(", ")} estimated from the source's statistics, not counted: each total becomes ` +
        "the rows read once the entity is loaded)";
}

/**
 * An entity whose total was the planner's estimate (EntityRunPlan.totalEstimated)
 * gets the rows its first pass read as its total, once that pass has ended.
 */
async function settleEstimatedTotal(ctx: RunContext, entity: string) {
  const c = ctx.counters.get(entity);
  if (!c) return;
  c.total = c.processed;
  await ctx.db
    .update(executionEntities)
    .set({ total: c.total })
    .where(and(eq(executionEntities.executionId, ctx.executionId), eq(executionEntities.entity, entity)));
}

/** Moves an entity to the back-fill pass once; its checkpoint restarts from the beginning. */
async function enterPass2(ctx: RunContext, entity: string) {
  await ctx.db
    .update(executionEntities)
    .set({ pass: 2, checkpoint: null })
    .where(
      and(
        eq(executionEntities.executionId, ctx.executionId),
        eq(executionEntities.entity, entity),
        eq(executionEntities.pass, 1),
      ),
    );
}

/** Rows of this execution skipped for failing a data-quality rule (all attempts), once the journal is written. */
async function qualityFailures(ctx: RunContext): Promise<number> {
  await ctx.journal.flush();
  const [row] = await ctx.db
    .select({ n: count() })
    .from(executionErrors)
    .where(and(eq(executionErrors.executionId, ctx.executionId), eq(executionErrors.code, "data_quality")));
  return row?.n ?? 0;
}

/**
 * Runs one pass of one entity. `ahead`: the run's pages read ahead (a fresh
 * run), which also tells that the entity is still pending, so its row need not
 * be looked up first. `behind`: when given, the entity's final status is
 * written behind the copy (its promise goes there, for the run to await) so
 * that the entities waiting for it start at once: should the process die
 * first, the resumed run finds nothing left to copy of it and completes it.
 */
async function runEntity(
  ctx: RunContext,
  entity: EntityRunPlan,
  pass: 1 | 2,
  halt: AbortSignal,
  ahead?: ReadAhead,
  behind?: Promise<unknown>[],
) {
  const fresh = pass === 1 && ahead !== undefined;
  if (!fresh) {
    const [row] = await ctx.db
      .select({ status: executionEntities.status, pass: executionEntities.pass })
      .from(executionEntities)
      .where(
        and(eq(executionEntities.executionId, ctx.executionId), eq(executionEntities.entity, entity.entity)),
      );
    if (row?.status === "completed" || (row && row.pass > pass)) return;
    // Even a "pending" entity is looked up in a resumed run: its in_progress status is written while the
    // copy starts, so the previous owner may have died with a batch reserved and the status not yet written.
  }
  if (pass === 2) await enterPass2(ctx, entity.entity);
  // The status is written while the copy starts (a read has no side effect, and the first batch's
  // reservation is a store write of its own); it is awaited before anything else is written about the entity.
  const started = setEntityStatus(ctx, entity.entity, "in_progress");
  started.catch(() => {});
  const loader = loaderOf(ctx.plan);
  const trusted = pass === 1 ? trustedNow(ctx, entity) : [];
  await ctx.journal.stage({
    processName: loader,
    state: "begin",
    code: "begin",
    entity: entity.entity,
    description:
      pass === 1
        ? `Loading ${entity.entity}${
            trusted.length > 0
              ? `; references ${trusted.join(", ")} hold in the source snapshot and are not checked again`
              : ""
          }`
        : `Back-filling deferred references of ${entity.entity} (${entity.deferredFields.join(", ")})`,
  });
  try {
    await copyEntity(ctx, entity, pass, halt, fresh, fresh ? ahead?.take(entity.entity) : undefined);
  } catch (error) {
    // A failed run releases its entities; this write must not land after that (nor hide the copy's error).
    await started.catch(() => {});
    throw error;
  }
  await started;
  if (pass === 1) noteEntityLoaded(ctx, entity.entity);
  if (pass === 1 && entity.totalEstimated) await settleEstimatedTotal(ctx, entity.entity);
  const last = pass === 2 || entity.deferredFields.length === 0;
  if (last) {
    const completed = setEntityStatus(ctx, entity.entity, "completed");
    if (behind) {
      completed.catch(() => {});
      behind.push(completed);
    } else await completed;
  }
  const c = ctx.counters.get(entity.entity)!;
  await ctx.journal.stage({
    processName: loader,
    state: "end",
    code: "end",
    entity: entity.entity,
    description:
      pass === 1
        ? `${entity.entity}: ${c.created} created, ${c.updated} updated, ${c.skipped} skipped` +
          `${c.skipped > 0 ? " (rejected by the target one by one, see the error log)" : ""}, ${c.failed} failed` +
          `${c.failed > 0 ? " (in batches given up after their retries)" : ""}`
        : `${entity.entity}: deferred references back-filled`,
  });
}

/**
 * Runs one claimed execution to its end: preflight (first attempt) or resume,
 * then every dependency level in order with bounded entity concurrency, then
 * the back-fill pass for deferred references. Returns how it ended; the caller
 * records the final status and, once it did, releases the target locks (a run
 * handed over keeps them: they are its next owner's).
 */
export async function runExecution(
  base: Omit<RunContext, "plan">,
  execution: ClaimedExecution,
): Promise<RunOutcome> {
  if (execution.kind === "file") return runFileLoad(base, execution);
  const ctx = base as RunContext;
  let snapshot: Promise<RunSnapshot | undefined> | undefined;
  try {
    if (execution.attempts === 1) {
      await ctx.journal.status("in_progress");
      await ctx.journal.stage({
        processName: STAGE.intake,
        state: "processing",
        code: "preflight",
        description: "Checking environments, entities and the monthly record limit",
      });
    }
    if (execution.attempts > 1) {
      await awaitAgents(base, (execution.snapshot as { plan?: ExecutionPlan }).plan);
    }
    // A fresh run reads every entity as of one moment of the source: the snapshot is exported as soon as
    // the agents are ready, while preflight describes and counts and the target is locked.
    const hooks: PreflightHooks =
      execution.attempts === 1 && execution.kind !== "continuous"
        ? {
            agentsReady: () => {
              snapshot = openRunSnapshot(ctx);
              snapshot.catch(() => {});
            },
          }
        : {};
    ctx.plan = await loadOrPlan(base, execution, hooks);
    await acquireTargetLocks(ctx);
    if (snapshot) ctx.snapshot = await snapshot;
    await ctx.journal.stage({
      processName: STAGE.runner,
      state: "begin",
      code: "begin",
      description:
        `Running ${ctx.plan.entities.length} entities in ${ctx.plan.levels.length} levels into ${ctx.plan.targetName}` +
        (ctx.snapshot ? `, reading the source as of one moment (snapshot ${ctx.snapshot.id})` : ""),
    });
    const fresh = execution.attempts === 1;
    const transformed = ctx.plan.entities.filter((e) => (e.transforms ?? []).length > 0);
    const fieldsTransformed = transformed.reduce((n, e) => n + (e.transforms ?? []).length, 0);
    const checked = ctx.plan.entities.filter((e) => (e.qualityRules ?? []).length > 0);
    const rulesChecked = checked.reduce((n, e) => n + (e.qualityRules ?? []).length, 0);
    if (checked.length > 0)
      await ctx.journal.stage({
        processName: STAGES.dataQuality,
        state: "begin",
        code: "begin",
        description: `Checking ${rulesChecked} data-quality rules on ${checked.length} entities on the source agent`,
      });
    if (transformed.length > 0)
      await ctx.journal.stage({
        processName: STAGES.transformation,
        state: "begin",
        code: "begin",
        description: `Transforming ${fieldsTransformed} fields of ${transformed.length} entities on the source agent`,
      });
    if (execution.kind === "continuous") {
      await runContinuous(ctx, ctx.stop ?? new AbortController().signal, execution.pipelineId);
      return { status: "completed" };
    }
    if (ctx.settings.writeStrategy === "clean" && fresh) await cleanTargets(ctx);
    // Sequences move, and entities' final statuses are written, behind the copy (nothing else depends on
    // them); the run waits for them at its end.
    const behind: Promise<unknown>[] = [];
    // Each entity's last write moves its sequences (moveSequences falls back to a finish task).
    ctx.sequenceMoves = new Map();
    // A fresh run reads the first page of entities waiting for their dependencies while those load.
    const ahead = fresh
      ? new ReadAhead(ctx.plan.entities, ctx.settings.entityConcurrency, (e) =>
          readPage(ctx, e, 1, { after: null }),
        )
      : undefined;
    try {
      await inDependencyOrder(ctx.plan.entities, ctx.settings.entityConcurrency, async (e, halt) => {
        await runEntity(ctx, e, 1, halt, ahead, behind);
        const moved = moveSequences(ctx, e);
        moved.catch(() => {});
        behind.push(moved);
      });
    } catch (error) {
      // Nothing of the run is written after it ends (a failed run releases its entities next).
      await Promise.allSettled(behind);
      throw error;
    } finally {
      ahead?.close();
    }
    const deferred = ctx.plan.entities.filter((e) => e.deferredFields.length > 0);
    await eachLimited(deferred, ctx.settings.entityConcurrency, (e, halt) => runEntity(ctx, e, 2, halt));
    await Promise.all(behind);
    await validatePostponed(ctx);
    if (checked.length > 0) {
      const failed = await qualityFailures(ctx);
      await ctx.journal.stage({
        processName: STAGES.dataQuality,
        state: "end",
        code: "end",
        description:
          failed === 0
            ? `Every row passed the ${rulesChecked} data-quality rules`
            : `${failed} row(s) failed data-quality rules and were skipped (error log, code data_quality)`,
      });
    }
    if (transformed.length > 0)
      await ctx.journal.stage({
        processName: STAGES.transformation,
        state: "end",
        code: "end",
        description: `Transformed ${fieldsTransformed} fields of ${transformed.length} entities`,
      });
    await ctx.journal.stage({
      processName: STAGE.runner,
      state: "end",
      code: "end",
      description: "Process completed",
    });
    return { status: "completed" };
  } catch (error) {
    const kind = abortKindOf(ctx.signal);
    if (kind === "lost" || kind === "shutdown") return { status: "lost" };
    const release = (why: string) =>
      releaseUnfinishedBatches(ctx.db, ctx, why).catch((e) =>
        ctx.logger.warn("could not release unfinished batches", { error: String(e) }),
      );
    if (kind === "cancel") {
      await release("not finished: the run was cancelled");
      return { status: "cancelled", reason: (ctx.signal.reason as RunAborted).message };
    }
    await release("not finished: the run failed");
    const e = DrayError.from(error);
    const reasonCode = reasonCodeOf(error);
    await ctx.journal
      .stage({ processName: STAGE.runner, state: "error", code: reasonCode, description: e.message })
      .catch(() => {});
    return { status: "failed", reasonCode, reason: e.message };
  } finally {
    if (snapshot) releaseRunSnapshot(ctx, await snapshot.catch(() => undefined));
  }
}
