import { randomUUID } from "node:crypto";
import { DrayError, sleep } from "@dray/common";
import type { ReadBatchResult, RowBatch, WriteBatchResult } from "@dray/proto";
import { RejectPolicy, WriteStrategy } from "@dray/proto";
import { and, desc, eq } from "drizzle-orm";
import { utcMonth } from "../pipelines/record-limit.js";
import { executionBatches, executionEntities } from "../store/schema.js";
import { type BatchOutcome, finalizeBatch, reserveBatch, updatePendingBatch } from "./batch-bookkeeping.js";
import { retryDecision } from "./retry-policy.js";
import type { EntityRunPlan, RunContext } from "./run-context.js";

/** Thrown when the monthly record limit stops the run at a batch boundary. */
export class RecordLimitReached extends DrayError {
  constructor(message: string, details: unknown) {
    super("resource_exhausted", message, { details, retryable: false });
  }
}

/** Thrown when a batch failed for good and `stopOnError` is set. */
export class BatchFailed extends DrayError {}

type Pass = 1 | 2;

/** Fields and options of one pass over an entity. */
function passShape(entity: EntityRunPlan, pass: Pass) {
  if (pass === 1) return { fields: entity.fields, nullFields: entity.deferredFields };
  return { fields: [...entity.keyFields, ...entity.deferredFields], nullFields: [] as string[] };
}

async function withRetries<T>(
  ctx: RunContext,
  what: string,
  attempt: (n: number) => Promise<T>,
): Promise<{ value: T; attempts: number }> {
  for (let n = 0; ; n++) {
    try {
      return { value: await attempt(n), attempts: n + 1 };
    } catch (error) {
      const e = DrayError.from(error);
      if (ctx.signal.aborted) throw e;
      const decision = retryDecision(e, n, ctx.settings.maxRetriesPerBatch);
      if (!decision.retry) throw Object.assign(e, { attempts: n + 1 });
      ctx.logger.warn("retrying", { what, attempt: n + 1, inMs: decision.delayMs, error: e.message });
      await ctx.journal.error({
        severity: "warning",
        message: `${what} failed (attempt ${n + 1}), retrying: ${e.message}`,
      });
      await sleep(decision.delayMs, ctx.signal);
    }
  }
}

/**
 * Reads the batch after `after`, with retries. A read that fails for good
 * fails the run (`BatchFailed`): without it the batch's range is unknown, so
 * it cannot be skipped.
 */
function read(
  ctx: RunContext,
  entity: EntityRunPlan,
  pass: Pass,
  after: string[] | null,
): Promise<ReadBatchResult> {
  const shape = passShape(entity, pass);
  return withRetries(ctx, `reading ${entity.entity}`, () =>
    ctx.sessions.dispatch(
      ctx.settings.sourceEnvironmentId,
      "readBatch",
      {
        entity: { schema: entity.schema, name: entity.name },
        fields: shape.fields,
        keyFields: entity.keyFields,
        ...(after ? { after: { values: after } } : {}),
        maxRows: ctx.settings.batchSize,
        maxBytes: BigInt(ctx.settings.batchBytes),
        nullFields: shape.nullFields,
      },
      {
        signal: ctx.signal,
        timeoutMs: ctx.taskTimeoutMs,
        maxResultBytes: ctx.settings.batchBytes + 1024 * 1024,
      },
    ),
  ).then(
    (r) => r.value,
    (error) => {
      const e = DrayError.from(error);
      if (ctx.signal.aborted) throw e;
      const attempts = (e as { attempts?: number }).attempts ?? 1;
      throw new BatchFailed(
        e.code,
        `reading ${entity.entity} from source environment "${ctx.plan.sourceName}" failed after ${attempts} attempt(s): ${e.message}`,
        { details: e.details, cause: e },
      );
    },
  );
}

function writeTask(ctx: RunContext, entity: EntityRunPlan, pass: Pass, batchId: string, rows: RowBatch) {
  const strategy =
    pass === 2
      ? WriteStrategy.UPDATE
      : ctx.settings.writeStrategy === "merge"
        ? WriteStrategy.MERGE
        : WriteStrategy.INSERT;
  return {
    batchId,
    entity: { schema: entity.schema, name: entity.name },
    strategy,
    keyFields: entity.keyFields,
    rows,
    rejectPolicy: ctx.settings.stopOnError ? RejectPolicy.FAIL : RejectPolicy.ISOLATE,
  };
}

/**
 * Thrown by {@link write} when a write was interrupted and its fence got no
 * answer: the write may still commit (e.g. it was in COMMIT), so the batch id
 * must be finished, not given up.
 */
class WriteOutcomeUnknown extends DrayError {}

/**
 * Writes a batch with retries. When the run is cancelled mid-write, a fence
 * (the same batch id with no rows) tells whether the write had committed:
 * the ledger answers with the first commit's counts, or seals the id. Without
 * an answer, {@link WriteOutcomeUnknown} is thrown.
 */
async function write(
  ctx: RunContext,
  entity: EntityRunPlan,
  pass: Pass,
  batchId: string,
  rows: RowBatch,
): Promise<{ result: WriteBatchResult; attempts: number }> {
  try {
    const { value, attempts } = await withRetries(ctx, `writing ${entity.entity}`, () =>
      ctx.sessions.dispatch(
        ctx.settings.targetEnvironmentId,
        "writeBatch",
        writeTask(ctx, entity, pass, batchId, rows),
        {
          signal: ctx.signal,
          timeoutMs: ctx.taskTimeoutMs,
        },
      ),
    );
    return { result: value, attempts };
  } catch (error) {
    if (!ctx.signal.aborted) throw error;
    const empty: RowBatch = { ...rows, rowCount: 0, data: new Uint8Array() } as RowBatch;
    const fence = await ctx.sessions
      .dispatch(
        ctx.settings.targetEnvironmentId,
        "writeBatch",
        writeTask(ctx, entity, pass, batchId, empty),
        {
          timeoutMs: 5_000,
        },
      )
      .catch(() => undefined);
    if (fence?.alreadyCommitted) return { result: fence, attempts: 1 };
    if (fence) throw error;
    const e = DrayError.from(error);
    throw new WriteOutcomeUnknown(e.code, `${e.message} (whether the write committed is unknown)`, {
      details: e.details,
      cause: e,
    });
  }
}

async function recordRejected(ctx: RunContext, entity: EntityRunPlan, result: WriteBatchResult) {
  for (const r of result.rejectedRecords) {
    await ctx.journal.error({
      severity: "error",
      entity: entity.entity,
      recordKey: [...r.key],
      field: r.field || null,
      code: r.sqlState || null,
      message: r.message,
    });
  }
}

function bump(
  ctx: RunContext,
  entity: string,
  d: { created: number; updated: number; rejected: number; failed: number },
) {
  const c = ctx.counters.get(entity);
  if (!c) return;
  c.created += d.created;
  c.updated += d.updated;
  c.skipped += d.rejected;
  c.failed += d.failed;
  c.processed += d.created + d.updated + d.rejected + d.failed;
  ctx.onProgress();
}

/** True when the run is being handed over to another owner (shutdown, lost lease), not ended. */
function handedOver(ctx: RunContext): boolean {
  const kind = (ctx.signal.reason as { kind?: string } | undefined)?.kind;
  return ctx.signal.aborted && (kind === "shutdown" || kind === "lost");
}

/** A reserved batch to write. */
interface PendingBatch {
  /** Its execution_batches row. */
  rowId: string;
  /** Its ledger id in the target. */
  batchId: string;
  seq: number;
  rows: RowBatch;
  /** Attempts recorded by earlier owners of the run. */
  priorAttempts: number;
  /** What a re-read of a resumed batch found, recorded when it is written now. */
  reread?: { cursorTo: string[] | null; rows: number; bytes: number };
}

/**
 * Writes a reserved batch and settles it in the store, once: succeeded
 * (counters, checkpoint, usage), skipped (stopOnError=false: the run goes on
 * after it), failed or cancelled. Returns the write's result, or undefined
 * when skipped; throws when the entity must stop. A write whose outcome is
 * unknown while the run is handed over stays in progress: the next owner
 * finishes it under the same ledger id.
 */
async function writeAndSettle(
  ctx: RunContext,
  entity: EntityRunPlan,
  pass: Pass,
  batch: PendingBatch,
): Promise<WriteBatchResult | undefined> {
  const countRecords = pass === 1;
  const started = performance.now();
  const settle = (outcome: Omit<BatchOutcome, "batchRowId" | "executionId" | "organisationId" | "entity">) =>
    finalizeBatch(ctx.db, {
      batchRowId: batch.rowId,
      executionId: ctx.executionId,
      organisationId: ctx.organisationId,
      entity: entity.entity,
      ...outcome,
    });
  try {
    const { result, attempts } = await write(ctx, entity, pass, batch.batchId, batch.rows);
    if (batch.reread && !result.alreadyCommitted) await updatePendingBatch(ctx.db, batch.rowId, batch.reread);
    await settle({
      state: "succeeded",
      created: result.created,
      updated: result.updated,
      rejected: result.rejected,
      failedRecords: 0,
      attempts: batch.priorAttempts + attempts,
      durationMs: Math.round(performance.now() - started),
      advance: true,
      countRecords,
    });
    await recordRejected(ctx, entity, result);
    if (countRecords) bump(ctx, entity.entity, { ...result, failed: 0 });
    return result;
  } catch (error) {
    const e = DrayError.from(error);
    if (error instanceof WriteOutcomeUnknown && handedOver(ctx)) throw e;
    const attempts = batch.priorAttempts + ((e as { attempts?: number }).attempts ?? 1);
    const cancelled = ctx.signal.aborted;
    const skip = !cancelled && !ctx.settings.stopOnError;
    await settle({
      state: cancelled ? "cancelled" : skip ? "skipped" : "failed",
      created: 0,
      updated: 0,
      rejected: 0,
      failedRecords: skip && countRecords ? batch.rows.rowCount : 0,
      attempts,
      durationMs: Math.round(performance.now() - started),
      error: e.message,
      advance: skip,
      countRecords,
    });
    if (cancelled) throw e;
    const message = `batch ${batch.seq} of ${entity.entity} failed after ${attempts} attempt(s): ${e.message}`;
    await ctx.journal.error({ severity: "error", entity: entity.entity, code: e.code, message });
    if (!skip) throw new BatchFailed(e.code, message, { details: e.details, cause: e });
    if (countRecords)
      bump(ctx, entity.entity, { created: 0, updated: 0, rejected: 0, failed: batch.rows.rowCount });
    return undefined;
  }
}

/**
 * Copies one entity (one pass) from its checkpoint to the end, in keyset
 * batches: each batch is reserved against the monthly limit, written as one
 * target transaction with its ledger id, and checkpointed. The next read is in
 * flight while the current write commits. A batch left in progress by a dead
 * control plane is finished first, exactly once, thanks to the target ledger.
 * When `halt` fires (another entity of the run failed), it stops at the next
 * batch boundary.
 */
export async function copyEntity(
  ctx: RunContext,
  entity: EntityRunPlan,
  pass: Pass,
  halt?: AbortSignal,
): Promise<void> {
  const where = and(
    eq(executionEntities.executionId, ctx.executionId),
    eq(executionEntities.entity, entity.entity),
  );
  const [state] = await ctx.db.select().from(executionEntities).where(where);
  let cursor: string[] | null = state?.pass === pass ? (state.checkpoint ?? null) : null;
  const [last] = await ctx.db
    .select()
    .from(executionBatches)
    .where(
      and(
        eq(executionBatches.executionId, ctx.executionId),
        eq(executionBatches.entity, entity.entity),
        eq(executionBatches.pass, pass),
      ),
    )
    .orderBy(desc(executionBatches.seq))
    .limit(1);
  let seq = last?.seq ?? 0;
  const countRecords = pass === 1;

  if (last?.state === "in_progress") {
    // Resume: re-read the batch's range and write it under the same id (the ledger answers if it committed).
    const again = await read(ctx, entity, pass, last.cursorFrom ?? null);
    const rows = again.rows!;
    const rereadTo = again.last ? [...again.last.values] : (last.cursorTo ?? null);
    const result = await writeAndSettle(ctx, entity, pass, {
      rowId: last.id,
      batchId: last.batchId,
      seq: last.seq,
      rows,
      priorAttempts: last.attempts,
      reread: { cursorTo: rereadTo, rows: rows.rowCount, bytes: rows.data.byteLength },
    });
    const written = result !== undefined && !result.alreadyCommitted;
    cursor = written ? rereadTo : (last.cursorTo ?? null);
    if (written && again.done) return;
  }

  let next: Promise<ReadBatchResult> | undefined = read(ctx, entity, pass, cursor);
  next.catch(() => {});
  while (next) {
    if (halt?.aborted) {
      throw new DrayError("aborted", `${entity.entity} stopped at a batch boundary: the run failed`);
    }
    const batch = await next;
    next = undefined;
    const rows = batch.rows;
    if (!rows || rows.rowCount === 0) return;
    const cursorTo = batch.last?.values ? [...batch.last.values] : null;
    seq += 1;
    const batchRowId = randomUUID();
    const batchId = `${ctx.executionId}:${entity.entity}:${pass}:${seq}`;
    const reserved = await reserveBatch(ctx.db, {
      id: batchRowId,
      executionId: ctx.executionId,
      organisationId: ctx.organisationId,
      entity: entity.entity,
      pass,
      seq,
      batchId,
      cursorFrom: cursor,
      cursorTo,
      rows: rows.rowCount,
      bytes: rows.data.byteLength,
      reserve: countRecords ? rows.rowCount : 0,
      month: utcMonth(new Date()),
    });
    if (!reserved.ok) {
      throw new RecordLimitReached(
        `monthly record limit reached: ${reserved.used} of ${reserved.limit} records used this month` +
          `${reserved.reserved ? ` (${reserved.reserved} reserved by runs in flight)` : ""}, and the next batch of ` +
          `${entity.entity} needs ${reserved.needed}. Committed batches stay in the target; raise the limit ` +
          "(PATCH /api/v1/organisations/:id) and run again to continue.",
        { ...reserved, entity: entity.entity },
      );
    }
    if (!batch.done) next = read(ctx, entity, pass, cursorTo);
    next?.catch(() => {});
    await writeAndSettle(ctx, entity, pass, { rowId: batchRowId, batchId, seq, rows, priorAttempts: 0 });
    cursor = cursorTo;
  }
}
