/**
 * Reading one keyset page of an entity from the source agent, with the run's
 * retries, the transformations and the data-quality rules of the fields read.
 */
import { DrayError } from "@dray/common";
import { startReadTimer } from "../metrics/executor-metrics.js";
import { requireSourceEnvironment } from "../pipelines/pipeline-validation.js";
import type { QualityRuleSpec, ReadResult, TransformSpec } from "./agent-port.js";
import type { EntityRunPlan, RunContext } from "./run-context.js";
import { AgentUnavailable, BatchFailed } from "./run-errors.js";
import { isSnapshotGone, liveSnapshotId, noteSnapshotGone } from "./run-snapshot.js";
import { withRetries } from "./task-retries.js";

/** Pass 1 loads rows; pass 2 back-fills the references deferred to break a cycle. */
export type Pass = 1 | 2;

/**
 * Fields of one pass over an entity. Pass 1 leaves deferred references out
 * altogether: a new row gets them NULL (their default), an existing row keeps
 * its value, so a re-run never blanks a good reference. Pass 2 writes them.
 */
export function passShape(
  entity: Pick<EntityRunPlan, "fields" | "keyFields" | "deferredFields">,
  pass: Pass,
): { fields: string[] } {
  if (pass === 1) {
    const deferred = new Set(entity.deferredFields);
    return { fields: entity.fields.filter((f) => !deferred.has(f)) };
  }
  return { fields: [...entity.keyFields, ...entity.deferredFields] };
}

/**
 * The transformations of a read (action "transform"): those of the fields it
 * reads. The source agent applies them before the rows leave it.
 */
export function readTransforms(entity: EntityRunPlan, fields: readonly string[]): TransformSpec[] {
  return (entity.transforms ?? [])
    .filter((t) => fields.includes(t.field))
    .map((t) => ({ field: t.field, transformer: t.transformer, options: t.options ?? {} }));
}

/** The data-quality rules of a read: those of the fields it reads, checked by the source agent on raw values. */
export function readQualityRules(entity: EntityRunPlan, fields: readonly string[]): QualityRuleSpec[] {
  return (entity.qualityRules ?? [])
    .filter((r) => fields.includes(r.field))
    .map((r) => ({ field: r.field, rule: r.rule, options: r.options ?? {} }));
}

/** Runs whose transform key id has been logged (once per run). */
const keyLogged = new WeakSet<RunContext>();

/** Logs, once per run, the id of the source agent's transform key (never the key). */
function noteTransformKey(ctx: RunContext, keyId: string) {
  if (!keyId || keyLogged.has(ctx)) return;
  keyLogged.add(ctx);
  void ctx.journal.stage({
    processName: "Transformation",
    state: "processing",
    code: "key",
    description: `Fields transformed on the source agent with its transform key ${keyId}`,
  });
}

/** Errors a read failed with (the source side), as opposed to a write's. */
const readFailures = new WeakSet<object>();

/** True when `error` is how a read failed (its source agent away, or the read itself failing for good). */
export function isReadFailure(error: unknown): boolean {
  return typeof error === "object" && error !== null && readFailures.has(error);
}

function asReadFailure<E extends object>(error: E): E {
  readFailures.add(error);
  return error;
}

/** Where a read starts and stops, and whether it re-reads a resumed batch. */
export interface ReadRange {
  after: readonly string[] | null;
  until?: readonly string[] | null;
  /** A resumed batch is re-read in one piece when it can be: twice the usual row budget. */
  resuming?: boolean;
}

/**
 * Reads the page after `range.after`, with retries, in the run's source
 * snapshot while it is held (run-snapshot.ts). A read that fails for
 * good fails the run (`BatchFailed`): without it the batch's range is unknown,
 * so it cannot be skipped.
 */
export async function readPage(
  ctx: RunContext,
  entity: EntityRunPlan,
  pass: Pass,
  range: ReadRange,
): Promise<ReadResult> {
  const { fields } = passShape(entity, pass);
  const request = {
    entity: { schema: entity.schema, name: entity.name },
    fields,
    keyFields: entity.cursorKey ?? entity.keyFields,
    after: range.after,
    until: range.until ?? null,
    maxRows: range.resuming ? ctx.settings.batchSize * 2 : ctx.settings.batchSize,
    maxBytes: ctx.settings.batchBytes,
    transforms: readTransforms(entity, fields),
    // Rows that fail a rule are left out on the first pass; the back-fill pass finds nothing to update for them.
    qualityRules: pass === 1 ? readQualityRules(entity, fields) : [],
    ...(entity.cursorKey
      ? { continuous: { cursorField: entity.cursorKey[0]!, safetyLagMs: ctx.settings.safetyLagMs ?? 0 } }
      : {}),
  };
  const options = {
    signal: ctx.signal,
    timeoutMs: ctx.options.taskTimeoutMs,
    maxResultBytes: ctx.settings.batchBytes + 1024 * 1024,
  };
  try {
    const read = startReadTimer(ctx);
    const source = requireSourceEnvironment(ctx.settings, "cannot be read");
    const { value } = await withRetries(ctx, `reading ${entity.entity}`, async () => {
      // A continuous read goes by its high-water mark instead (the agent ignores a snapshot there).
      const snapshotId = entity.cursorKey ? undefined : liveSnapshotId(ctx);
      if (!snapshotId) return ctx.agents.readBatch(source, request, options);
      try {
        return await ctx.agents.readBatch(source, { ...request, snapshotId }, options);
      } catch (error) {
        if (!isSnapshotGone(error)) throw error;
        await noteSnapshotGone(ctx);
        return ctx.agents.readBatch(source, request, options);
      }
    });
    read(value.rows.rowCount + value.qualityRejected.length, pass === 1);
    noteTransformKey(ctx, value.transformKeyId);
    return value;
  } catch (error) {
    const e = DrayError.from(error);
    if (ctx.signal.aborted) throw e;
    if (e instanceof AgentUnavailable) throw asReadFailure(e);
    const attempts = (e as { attempts?: number }).attempts ?? 1;
    throw asReadFailure(
      new BatchFailed(
        e.code,
        `reading ${entity.entity} from source environment "${ctx.plan.sourceName}" failed after ${attempts} attempt(s): ${e.message}`,
        { details: e.details, cause: e },
      ),
    );
  }
}
