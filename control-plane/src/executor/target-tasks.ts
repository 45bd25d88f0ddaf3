/**
 * The run's tasks on the target beyond batches: emptying entities first
 * (`clean`), moving sequences after a load, and validating the references
 * postponed to load NOT NULL cycles.
 */
import { DrayError } from "@dray/common";
import { STAGES } from "../executions/execution-vocabulary.js";
import type { CallOptions } from "./agent-port.js";
import type { EntityRunPlan, ExecutionPlan, RunContext } from "./run-context.js";
import { BatchFailed } from "./run-errors.js";
import { withRetries } from "./task-retries.js";

const loaderOf = (plan: ExecutionPlan) => STAGES.loader(plan.targetPlatform);

/**
 * Runs a task on the target's agent with the run's retry policy (see
 * {@link withRetries}): an agent that is away, e.g. restarting, is waited for.
 */
async function targetTask<T>(
  ctx: RunContext,
  what: string,
  task: (environmentId: string, options: CallOptions) => Promise<T>,
  timeoutMs = ctx.options.taskTimeoutMs,
): Promise<T> {
  const { value } = await withRetries(ctx, what, () =>
    task(ctx.settings.targetEnvironmentId, { signal: ctx.signal, timeoutMs }),
  );
  return value;
}

/**
 * The entities of cycles loaded with postponed references (both ends of each
 * postponed reference): no delete order can empty them one by one, so they
 * are cleaned with references suspended.
 */
export function suspendedForClean(plan: Pick<ExecutionPlan, "entities" | "postponed">): Set<string> {
  const out = new Set<string>();
  for (const p of plan.postponed ?? []) {
    out.add(p.entity);
    out.add(p.referencedEntity);
  }
  for (const e of plan.entities) if ((e.uncheckedReferences ?? []).length > 0) out.add(e.entity);
  return out;
}

export async function cleanTargets(ctx: RunContext) {
  const reversed = [...ctx.plan.entities].sort((a, b) => b.level - a.level);
  const suspended = suspendedForClean(ctx.plan);
  for (const e of reversed) {
    const suspendReferences = suspended.has(e.entity);
    let deleted: number;
    try {
      const r = await targetTask(
        ctx,
        `cleaning ${e.entity}`,
        (env, options) =>
          ctx.agents.clean(env, { entity: { schema: e.schema, name: e.name }, suspendReferences }, options),
        ctx.options.cleanTimeoutMs,
      );
      deleted = r.deleted;
    } catch (error) {
      if (ctx.signal.aborted) throw error;
      const cause = DrayError.from(error);
      const message = `cleaning ${e.entity} in target environment "${ctx.plan.targetName}" failed: ${cause.message}`;
      await ctx.journal.error({ severity: "error", entity: e.entity, code: cause.code, message });
      throw new BatchFailed(cause.code, message, { details: cause.details, cause, retryable: false });
    }
    await ctx.journal.stage({
      processName: loaderOf(ctx.plan),
      state: "processing",
      code: "clean",
      entity: e.entity,
      description:
        `Deleted ${deleted} rows of ${e.entity} in ${ctx.plan.targetName}` +
        (suspendReferences ? " (references suspended: it is part of a NOT NULL cycle)" : ""),
    });
  }
}

/**
 * Moves the target sequences an entity's fields use up to their maximum, as
 * pg_restore does, and logs each move. When the entity's last write already
 * moved them (RunContext.sequenceMoves), only the log is left to do;
 * otherwise (no rows, a replayed or resumed last batch, an agent that
 * predates it) a finish task moves them.
 */
export async function moveSequences(ctx: RunContext, entity: EntityRunPlan) {
  const sequences =
    ctx.sequenceMoves?.get(entity.entity) ??
    (
      await targetTask(ctx, `moving the sequences of ${entity.entity}`, (env, options) =>
        ctx.agents.finish(
          env,
          {
            entity: { schema: entity.schema, name: entity.name },
            moveSequences: true,
            checkReferences: [],
            keyFields: entity.keyFields,
          },
          options,
        ),
      )
    ).sequences;
  const moved = sequences.filter((q) => q.moved);
  if (sequences.length === 0) return;
  await ctx.journal.stage({
    processName: loaderOf(ctx.plan),
    state: "processing",
    code: "sequences",
    entity: entity.entity,
    description:
      moved.length > 0
        ? `Moved ${moved.map((q) => `${q.sequence} (${q.field}) from ${q.before} to ${q.after}`).join(", ")}`
        : `Sequences already at or above their fields' maximum: ${sequences.map((q) => `${q.sequence} (${q.after})`).join(", ")}`,
  });
}

/** Most violations listed in the error log per reference; the count covers them all. */
const LOGGED_VIOLATIONS = 100;

/**
 * Validates the references postponed to load NOT NULL cycles, once every
 * entity is loaded: each violation is logged by key, and any fails the run.
 */
export async function validatePostponed(ctx: RunContext) {
  const toCheck = ctx.plan.entities.filter((e) => (e.uncheckedReferences ?? []).length > 0);
  const counts = await Promise.all(
    toCheck.map(async (e) => {
      const references = e.uncheckedReferences ?? [];
      const r = await targetTask(ctx, `checking the references of ${e.entity}`, (env, options) =>
        ctx.agents.finish(
          env,
          {
            entity: { schema: e.schema, name: e.name },
            moveSequences: false,
            checkReferences: references,
            keyFields: e.keyFields,
          },
          options,
        ),
      );
      const count = r.violationCount;
      await ctx.journal.errors(
        r.violations.slice(0, LOGGED_VIOLATIONS).map((v) => ({
          severity: "error" as const,
          entity: e.entity,
          recordKey: [...v.key],
          code: "23503",
          message: v.message,
        })),
      );
      await ctx.journal.stage({
        processName: loaderOf(ctx.plan),
        state: count > 0 ? "error" : "processing",
        code: "references_checked",
        entity: e.entity,
        description:
          count > 0
            ? `${count} rows of ${e.entity} break ${references.join(", ")} (checked once every entity was loaded)`
            : `References ${references.join(", ")} of ${e.entity} hold for every row (checked once every entity was loaded)`,
      });
      return count;
    }),
  );
  const total = counts.reduce((a, b) => a + b, 0);
  if (total > 0)
    throw new BatchFailed(
      "failed_precondition",
      `${total} rows break references that were checked once every entity was loaded; they stay in the ` +
        "target and are listed in the error log: fix them in the source and run again",
      { retryable: false },
    );
}
