/**
 * Writing one batch to the target agent as one transaction under its ledger
 * id: retries, the ordering against the batch written just before, and the
 * fence that tells whether a cancelled write committed.
 */
import { DrayError } from "@dray/common";
import { TASK_ERROR_REASONS } from "@dray/proto";
import type { RejectedRow, RowPayload, WriteRequest, WriteResult } from "./agent-port.js";
import type { Pass } from "./batch-read.js";
import type { EntityRunPlan, RunContext } from "./run-context.js";
import { handedOver } from "./run-errors.js";
import { trustedNow } from "./run-snapshot.js";
import { withRetries } from "./task-retries.js";

/** A reserved batch to write. */
export interface PendingBatch {
  /** Its execution_batches row. */
  rowId: string;
  /** Its ledger id in the target. */
  batchId: string;
  seq: number;
  rows: RowPayload;
  /** Attempts recorded by earlier owners of the run. */
  priorAttempts: number;
  /** What a re-read of a resumed batch found, recorded when it is written now. */
  reread?: { cursorTo: string[] | null; rows: number; bytes: number };
  /** Rows of the batch's range the source left out for failing a data-quality rule (skipped). */
  qualityRejected?: readonly RejectedRow[];
  /** Continuous pipelines: the read position after this batch, kept in the target's ledger. */
  position?: readonly string[] | null;
  /** The entity's last batch of pass 1: the write moves its sequences too (RunContext.sequenceMoves). */
  moveSequences?: boolean;
}

/** How a write ended: its result, or the error it failed with for good. */
export type WriteOutcome =
  | { ok: true; result: WriteResult; attempts: number; durationMs: number }
  | { ok: false; error: unknown; durationMs: number };

/** The batch written just before, still in flight when the next one starts. */
export interface Predecessor {
  batchId: string;
  seq: number;
  outcome: Promise<WriteOutcome>;
}

/**
 * Thrown when a write was interrupted and its fence got no answer: the write
 * may still commit (e.g. it was in COMMIT), so the batch id must be finished,
 * not given up.
 */
export class WriteOutcomeUnknown extends DrayError {}

/** True for the agent's answer that a write's `previousBatchId` had not committed (see proto/README.md §6). */
function previousNotCommitted(error: unknown): boolean {
  const e = DrayError.from(error);
  return (
    e.code === "aborted" &&
    (e.details as { reason?: string } | undefined)?.reason === TASK_ERROR_REASONS.previousBatchNotCommitted
  );
}

/** True for the agent's answer that a batch id was sealed by a cancel fence before its rows committed. */
export function batchSealed(error: unknown): boolean {
  const reason = (DrayError.from(error).details as { reason?: string } | undefined)?.reason;
  return reason === TASK_ERROR_REASONS.batchSealed;
}

/** The write of one batch of one pass. */
export function writeRequest(
  ctx: RunContext,
  entity: EntityRunPlan,
  pass: Pass,
  batch: { batchId: string; rows: RowPayload; position?: readonly string[] | null; moveSequences?: boolean },
  previousBatchId = "",
  fence = false,
): WriteRequest {
  return {
    batchId: batch.batchId,
    entity: { schema: entity.schema, name: entity.name },
    mode: pass === 2 ? "update" : ctx.settings.writeStrategy === "merge" ? "merge" : "insert",
    keyFields: entity.keyFields,
    rows: batch.rows,
    fence,
    onRowError: ctx.settings.stopOnError ? "fail" : "isolate",
    previousBatchId,
    fireTriggers: ctx.settings.targetTriggers === "fire",
    // References the run's snapshot vouches for are not checked (run-snapshot.ts), nor postponed ones.
    uncheckedReferences: [...(entity.uncheckedReferences ?? []), ...trustedNow(ctx, entity)],
    ...(batch.position && entity.cursorKey ? { position: batch.position } : {}),
    ...(batch.moveSequences && !fence ? { moveSequences: true } : {}),
  };
}

/**
 * Writes a batch with retries. With a `previous` batch in flight, the agent
 * commits this one only after that one has committed; if it answers `aborted`
 * (the predecessor had not committed), this waits for the predecessor's
 * outcome and tries once more without it, uncounted — unless the predecessor
 * failed and `stopOnError` is set, when this batch is not written at all.
 *
 * When the run is cancelled mid-write, a fence (the same batch id with no rows)
 * tells whether it had committed: the ledger answers with the first commit's
 * counts, or seals the id. Without an answer, {@link WriteOutcomeUnknown} is
 * thrown. When the run is handed over, the batch is left in progress
 * ({@link WriteOutcomeUnknown}) for the next owner, which finishes it under the
 * same ledger id.
 */
async function write(
  ctx: RunContext,
  entity: EntityRunPlan,
  pass: Pass,
  batch: PendingBatch,
  signal: AbortSignal,
  previous?: Predecessor,
): Promise<{ result: WriteResult; attempts: number }> {
  const target = ctx.settings.targetEnvironmentId;
  let waitFor = previous;
  const send = () =>
    ctx.agents.writeBatch(target, writeRequest(ctx, entity, pass, batch, waitFor?.batchId), {
      signal,
      timeoutMs: ctx.options.taskTimeoutMs,
    });
  const attempt = async () => {
    try {
      return await send();
    } catch (error) {
      if (!waitFor || signal.aborted || !previousNotCommitted(error)) throw error;
      const before = await waitFor.outcome;
      if (!before.ok && ctx.settings.stopOnError)
        throw new DrayError("cancelled", `not written: batch ${waitFor.seq} before it failed`, {
          retryable: false,
        });
      waitFor = undefined;
      return send();
    }
  };
  try {
    const { value, attempts } = await withRetries(ctx, `writing ${entity.entity}`, attempt, signal);
    return { result: value, attempts };
  } catch (error) {
    if (!signal.aborted) throw error;
    const e = DrayError.from(error);
    // Handed over (shutdown, lost lease): no fence; the next owner finishes the batch under its id.
    if (handedOver(ctx.signal))
      throw new WriteOutcomeUnknown(e.code, `${e.message} (left to the next owner of the run)`, {
        details: e.details,
        cause: e,
      });
    const fence = await ctx.agents
      .writeBatch(target, writeRequest(ctx, entity, pass, batch, "", true), {
        timeoutMs: ctx.options.fenceTimeoutMs,
      })
      .catch(() => undefined);
    if (fence?.alreadyCommitted) return { result: fence, attempts: 1 };
    if (fence) throw error;
    throw new WriteOutcomeUnknown(e.code, `${e.message} (whether the write committed is unknown)`, {
      details: e.details,
      cause: e,
    });
  }
}

/** Starts writing a batch; the promise never rejects (the outcome says how it went). */
export function startWrite(
  ctx: RunContext,
  entity: EntityRunPlan,
  pass: Pass,
  batch: PendingBatch,
  signal: AbortSignal = ctx.signal,
  previous?: Predecessor,
): Promise<WriteOutcome> {
  const started = performance.now();
  const took = () => Math.round(performance.now() - started);
  return write(ctx, entity, pass, batch, signal, previous).then(
    ({ result, attempts }): WriteOutcome => ({ ok: true, result, attempts, durationMs: took() }),
    (error): WriteOutcome => ({ ok: false, error, durationMs: took() }),
  );
}
