/**
 * Reconcile of a continuous pipeline: source deletes are invisible to a
 * cursor, so the keys of each entity are compared and target rows whose key
 * the source no longer has are deleted. It runs between polls, when asked for
 * (`POST /pipelines/{id}/reconcile`) or every `reconcileEveryPolls` polls.
 *
 * Keys are compared by hash ranges: the source agent cuts the whole key range
 * into ranges of {@link TOP_SPLIT_EVERY} rows and digests each (count and a
 * sum of key hashes, computed where the rows are: DigestKeysTask); the target
 * agent digests the same ranges. Ranges that agree are done. A range that
 * differs is split again, finer, by the side with more rows in it
 * (reconcile-ranges.ts), until it holds at most {@link LEAF_KEYS} rows on
 * either side; then its keys are read from both sides, page by page, and the
 * target's keys missing at the source are deleted. Only the keys of differing
 * small ranges cross the control plane. An agent that cannot digest (older
 * than the task) gets the whole entity compared key by key.
 */
import { DrayError } from "@dray/common";
import type { DigestKeysResult, ReadRequest } from "./agent-port.js";
import {
  type KeyRange,
  LEAF_KEYS,
  nextStep,
  rangeDiffers,
  rangesOf,
  TOP_SPLIT_EVERY,
} from "./reconcile-ranges.js";
import type { EntityRunPlan, RunContext } from "./run-context.js";
import { withRetries } from "./task-retries.js";

/** Keys read per page when a range's keys are compared. */
const KEYS_PER_PAGE = LEAF_KEYS;

/**
 * Deadline of one digest at least: the first one reads the whole entity on
 * each side (about a million keys a second), within the agents' 10-minute
 * statement limit.
 */
const DIGEST_TIMEOUT_MS = 600_000;

/** What a reconcile of one entity did. */
interface ReconcileTally {
  deleted: number;
  /** Ranges whose digests were compared, at every split. */
  compared: number;
  /** Of those, the ranges whose count or digest differed. */
  differed: number;
}

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
  const source = ctx.settings.sourceEnvironmentId;
  if (!source) throw new DrayError("internal", "reconcile needs a source environment");
  const target = ctx.settings.targetEnvironmentId;
  const address = { schema: entity.schema, name: entity.name };
  const stopped = () => stop.aborted || ctx.signal.aborted;
  const tally: ReconcileTally = { deleted: 0, compared: 0, differed: 0 };

  const read = (environmentId: string, range: KeyRange) => {
    const request: ReadRequest = {
      entity: address,
      fields: keyFields,
      keyFields,
      after: range.after,
      until: range.until,
      maxRows: KEYS_PER_PAGE,
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

  const digest = (
    environmentId: string,
    range: KeyRange,
    split: { splitEvery: number } | { boundaries: readonly (readonly string[])[] },
  ): Promise<DigestKeysResult> =>
    withRetries(ctx, `reconciling ${entity.entity}`, () =>
      ctx.agents.digestKeys(
        environmentId,
        {
          entity: address,
          keyFields,
          after: range.after,
          until: range.until,
          splitEvery: "splitEvery" in split ? split.splitEvery : 0,
          boundaries: "boundaries" in split ? split.boundaries : [],
        },
        { signal: ctx.signal, timeoutMs: Math.max(ctx.options.taskTimeoutMs, DIGEST_TIMEOUT_MS) },
      ),
    ).then((r) => r.value);

  /**
   * Compares the keys of one range page by page (a page of source keys, then
   * the target's keys up to the page's last key) and deletes the target's
   * keys missing at the source.
   */
  const compareKeys = async (range: KeyRange): Promise<void> => {
    let after = range.after;
    for (;;) {
      if (stopped()) return;
      const page = await read(source, { after, until: range.until });
      const sourceKeys = new Set(ctx.agents.rowValues(page.rows).map((k) => JSON.stringify(k)));
      const more = !page.done && page.last !== null;
      const upper = more ? page.last : range.until;
      let targetAfter = after;
      const missing: string[][] = [];
      for (;;) {
        const t = await read(target, { after: targetAfter, until: upper });
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
        tally.deleted += r.deleted;
      }
      if (!more) return;
      after = page.last;
    }
  };

  /**
   * Splits `range` by the picker's boundaries every `splitEvery` rows, has the
   * other side digest the same ranges, and goes on with each range that differs.
   */
  const compareRange = async (
    range: KeyRange,
    splitEvery: number,
    picker: "source" | "target",
    depth: number,
  ): Promise<void> => {
    const [first, second] = picker === "source" ? [source, target] : [target, source];
    const picked = await digest(first, range, { splitEvery });
    if (stopped()) return;
    const other = await digest(second, range, { boundaries: picked.boundaries });
    const expected = picked.boundaries.length + 1;
    if (picked.ranges.length !== expected || other.ranges.length !== expected)
      throw new DrayError(
        "internal",
        `reconciling ${entity.entity}: the agents digested ${picked.ranges.length} and ${other.ranges.length} ranges of ${expected}`,
      );
    const [sourceRanges, targetRanges] =
      picker === "source" ? [picked.ranges, other.ranges] : [other.ranges, picked.ranges];
    // A split below the first that found no boundary made no progress: no further split then.
    const canSplit = depth === 0 || picked.boundaries.length > 0;
    const ranges = rangesOf(range, picked.boundaries);
    for (let i = 0; i < ranges.length; i++) {
      if (stopped()) return;
      const s = sourceRanges[i]!;
      const t = targetRanges[i]!;
      tally.compared += 1;
      if (rangeDiffers(s, t)) tally.differed += 1;
      const step = nextStep(s, t, depth, canSplit);
      if (step.kind === "keys") await compareKeys(ranges[i]!);
      else if (step.kind === "split") await compareRange(ranges[i]!, step.splitEvery, step.picker, depth + 1);
    }
  };

  const whole: KeyRange = { after: null, until: null };
  try {
    await compareRange(whole, TOP_SPLIT_EVERY, "source", 0);
  } catch (error) {
    // An agent older than DigestKeysTask: compare every key, as before digests.
    if (DrayError.from(error).code !== "unimplemented" || tally.compared > 0) throw error;
    ctx.logger.warn("an agent cannot digest keys; reconciling key by key", { entity: entity.entity });
    await compareKeys(whole);
  }
  await ctx.journal.stage({
    processName: "JobRunner",
    state: "processing",
    code: "reconcile",
    entity: entity.entity,
    description:
      `Reconcile of ${entity.entity}: ${tally.deleted} target rows deleted (their key is gone from the source; ` +
      `${tally.compared} key ranges compared, ${tally.differed} differed)`,
  });
  return tally.deleted;
}
