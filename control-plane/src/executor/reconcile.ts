/**
 * Reconcile of a continuous pipeline: source deletes are invisible to a
 * cursor, so the keys of each entity are compared range by range (a page of
 * source keys, then the target's keys of the same key range) and target rows
 * whose key the source no longer has are deleted. Only keys cross the
 * control plane, one range at a time. It runs between polls, when asked for
 * (`POST /pipelines/{id}/reconcile`) or every `reconcileEveryPolls` polls.
 */
import { DrayError } from "@dray/common";
import type { ReadRequest } from "./agent-port.js";
import type { EntityRunPlan, RunContext } from "./run-context.js";
import { withRetries } from "./task-retries.js";

/** Keys compared per range. */
const KEYS_PER_RANGE = 10_000;

/**
 * Deletes the target rows of one entity whose key is missing at the source.
 * Returns the number deleted; an entity with a transformed key field is left
 * alone (its target keys are not in the source's order), with a warning.
 */
export async function reconcileEntity(
  ctx: RunContext,
  entity: EntityRunPlan,
  stop: AbortSignal,
): Promise<number> {
  const keyFields = entity.keyFields;
  if ((entity.transforms ?? []).some((t) => keyFields.includes(t.field))) {
    await ctx.journal.error({
      severity: "warning",
      entity: entity.entity,
      code: "reconcile_skipped",
      message: `reconcile skipped ${entity.entity}: its key is transformed, so target keys cannot be compared range by range`,
    });
    return 0;
  }
  const address = { schema: entity.schema, name: entity.name };
  const read = (environmentId: string, after: readonly string[] | null, until: readonly string[] | null) => {
    const request: ReadRequest = {
      entity: address,
      fields: keyFields,
      keyFields,
      after,
      until,
      maxRows: KEYS_PER_RANGE,
      maxBytes: ctx.settings.batchBytes,
      transforms: [],
      qualityRules: [],
    };
    return withRetries(ctx, `reconciling ${entity.entity}`, () =>
      ctx.agents.readBatch(environmentId, request, {
        signal: ctx.signal,
        timeoutMs: ctx.options.taskTimeoutMs,
        maxResultBytes: ctx.settings.batchBytes + 1024 * 1024,
      }),
    ).then((r) => r.value);
  };
  const source = ctx.settings.sourceEnvironmentId;
  if (!source) throw new DrayError("internal", "reconcile needs a source environment");
  const target = ctx.settings.targetEnvironmentId;
  let after: readonly string[] | null = null;
  let deleted = 0;
  for (;;) {
    if (stop.aborted || ctx.signal.aborted) break;
    const page = await read(source, after, null);
    const sourceKeys = new Set(ctx.agents.rowValues(page.rows).map((k) => JSON.stringify(k)));
    const upper = page.done || !page.last ? null : page.last;
    let targetAfter = after;
    const missing: string[][] = [];
    for (;;) {
      const t = await read(target, targetAfter, upper);
      for (const key of ctx.agents.rowValues(t.rows))
        if (!sourceKeys.has(JSON.stringify(key))) missing.push(key);
      if (t.done || !t.last || t.rows.rowCount === 0) break;
      targetAfter = t.last;
    }
    if (missing.length > 0) {
      const r = await ctx.agents.deleteKeys(
        target,
        { entity: address, keyFields, keys: missing },
        { signal: ctx.signal, timeoutMs: ctx.options.taskTimeoutMs },
      );
      deleted += r.deleted;
    }
    if (!upper) break;
    after = upper;
  }
  await ctx.journal.stage({
    processName: "JobRunner",
    state: "processing",
    code: "reconcile",
    entity: entity.entity,
    description: `Reconcile of ${entity.entity}: ${deleted} target rows deleted (their key is gone from the source)`,
  });
  return deleted;
}
