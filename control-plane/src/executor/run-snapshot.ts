/**
 * A fresh run reads every entity in one snapshot of the source database, as
 * pg_dump does (ExportSnapshotTask, then ReadBatchTask.snapshot_id): the
 * target then holds the source as of one moment, and references the source
 * enforces need no check once what they reference was copied whole from the
 * same snapshot (trusted-references.ts).
 *
 * The snapshot is exported once the plan is known and held by the source
 * agent until the run lets it go (or for 15 minutes without a read). A read
 * that finds it gone (the agent restarted) is made again without it; from then
 * on the run checks every reference, as a run without a snapshot does. A
 * resumed run, a continuous run and a files load read without one.
 */
import { DrayError } from "@dray/common";
import { TASK_ERROR_REASONS } from "@dray/proto";
import { STAGES } from "../executions/execution-vocabulary.js";
import { requireSourceEnvironment } from "../pipelines/pipeline-validation.js";
import type { EntityRunPlan, RunContext, RunSnapshot } from "./run-context.js";

/**
 * Longest wait for the export (one connection and two statements): a source
 * that cannot give the snapshot a session of its own must not hold the run up.
 */
const EXPORT_TIMEOUT_MS = 15_000;

/**
 * Exports the run's snapshot on the source agent. Never throws for the
 * agent's sake: a source agent that cannot export one (older than snapshots,
 * or its database refused) leaves the run reading without, as before, which
 * the stage log says.
 */
export async function openRunSnapshot(ctx: RunContext): Promise<RunSnapshot | undefined> {
  const source = requireSourceEnvironment(ctx.settings, "cannot be read");
  try {
    const id = await ctx.agents.exportSnapshot(source, {
      signal: ctx.signal,
      timeoutMs: Math.min(ctx.options.taskTimeoutMs, EXPORT_TIMEOUT_MS),
    });
    return { id, lost: false, loadedWhole: new Set() };
  } catch (error) {
    if (ctx.signal.aborted) throw error;
    const e = DrayError.from(error);
    await ctx.journal.stage({
      processName: STAGES.intake,
      state: "processing",
      code: "snapshot",
      description:
        `Reading each entity in a snapshot of its own: the source agent could not hold one for the run ` +
        `(${e.message}); every reference is checked`,
    });
    return undefined;
  }
}

/** Lets the run's snapshot go, without waiting (the agent lets it go anyway after 15 minutes without a read). */
export function releaseRunSnapshot(ctx: RunContext, snapshot: RunSnapshot | undefined): void {
  if (!snapshot || snapshot.lost) return;
  const source = ctx.settings.sourceEnvironmentId;
  if (!source) return;
  ctx.agents.releaseSnapshot(source, snapshot.id, { timeoutMs: ctx.options.taskTimeoutMs }).catch((error) => {
    ctx.logger.debug("could not let the run's source snapshot go", {
      executionId: ctx.executionId,
      error: String(error),
    });
  });
}

/** The snapshot id a read of the run goes with, while it is held. */
export function liveSnapshotId(ctx: RunContext): string | undefined {
  return ctx.snapshot && !ctx.snapshot.lost ? ctx.snapshot.id : undefined;
}

/** True for the source agent's answer that a read's snapshot is no longer held. */
export function isSnapshotGone(error: unknown): boolean {
  const reason = (DrayError.from(error).details as { reason?: string } | undefined)?.reason;
  return reason === TASK_ERROR_REASONS.snapshotGone;
}

/** Records that the snapshot is gone: later reads go without it, and no reference is trusted again. */
export async function noteSnapshotGone(ctx: RunContext): Promise<void> {
  const snapshot = ctx.snapshot;
  if (!snapshot || snapshot.lost) return;
  snapshot.lost = true;
  await ctx.journal.stage({
    processName: STAGES.intake,
    state: "processing",
    code: "snapshot_lost",
    description:
      `The source snapshot ${snapshot.id} is no longer held (the source agent restarted): the rest of the run ` +
      "reads each entity in a snapshot of its own and checks every reference",
  });
}

/**
 * Notes, once an entity's first pass has ended, whether it was copied whole
 * in the snapshot: every row read in it, none skipped or failed.
 */
export function noteEntityLoaded(ctx: RunContext, entity: string): void {
  const snapshot = ctx.snapshot;
  const c = ctx.counters.get(entity);
  if (!snapshot || snapshot.lost || !c) return;
  if (c.skipped === 0 && c.failed === 0) snapshot.loadedWhole.add(entity);
}

/**
 * The references of `entity` a write may leave unchecked now: those planned
 * as trustable whose referenced entity was copied whole in the snapshot,
 * while the snapshot is still held (so every row the write carries was read
 * in it).
 */
export function trustedNow(ctx: RunContext, entity: Pick<EntityRunPlan, "trustedReferences">): string[] {
  const snapshot = ctx.snapshot;
  if (!snapshot || snapshot.lost) return [];
  return (entity.trustedReferences ?? [])
    .filter((r) => snapshot.loadedWhole.has(r.referencedEntity))
    .map((r) => r.name);
}
