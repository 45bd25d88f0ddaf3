/**
 * How a written batch changes the run: a pure decision of the batch's final
 * state, the counters and the checkpoint, and whether the entity goes on. No
 * I/O here: settle-batch.ts applies the decision to the store and the journal.
 */
import { DrayError } from "@dray/common";
import type { WriteOutcome } from "./batch-write.js";
import { AgentUnavailable } from "./run-errors.js";

/** What the decision needs to know besides the write's outcome. */
export interface SettlementInput {
  outcome: WriteOutcome;
  /** Rows in the batch. */
  rowCount: number;
  /** Rows of the batch's range the source left out for failing a data-quality rule. */
  qualityRejected: number;
  /** Attempts recorded by earlier owners of the run. */
  priorAttempts: number;
  /** Pass 1 counts records; the back-fill pass only updates them. */
  countRecords: boolean;
  stopOnError: boolean;
  /** The run (or the entity's window) was cancelled. */
  cancelled: boolean;
  /** The run is being handed over to another owner (shutdown, lost lease). */
  handedOver: boolean;
}

/** Counter changes of a settled batch. */
export interface CounterDelta {
  created: number;
  updated: number;
  skipped: number;
  failed: number;
}

/** What becomes of the entity after the batch. */
export type Continuation =
  /** Go on with the next batch. */
  | "next"
  /** The batch was given up and the run goes on after it (`stopOnError=false`). */
  | "skipped"
  /** The run was cancelled: stop, rethrowing the write's error. */
  | "cancelled"
  /** The agent stayed away: stop the run, rethrowing its AgentUnavailable. */
  | "agent_unavailable"
  /** The batch failed for good and `stopOnError` is set: stop the run. */
  | "failed";

export type Settlement =
  /** Leave the batch in progress: the next owner finishes it under its ledger id. */
  | { kind: "hand_over"; error: DrayError }
  | {
      kind: "settle";
      state: "succeeded" | "skipped" | "failed" | "cancelled";
      created: number;
      updated: number;
      /** Rows skipped: rejected by the target one by one, or left out by a data-quality rule. */
      rejected: number;
      /** Records of a batch given up on. */
      failedRecords: number;
      attempts: number;
      /** Move the entity's checkpoint over the batch. */
      advance: boolean;
      /** Error stored on the batch, if it failed. */
      error?: string;
      /** The entity's live counters change by this (pass 1 only). */
      counters?: CounterDelta;
      afterwards: Continuation;
      /** The write's error, when it did not succeed. */
      cause?: DrayError;
    };

/**
 * Decides how a written batch is settled. A write that succeeded moves the
 * checkpoint and counts its rows. A failed one is `cancelled` when the run
 * was, stops the run when its agent stayed away or `stopOnError` is set, and
 * is otherwise skipped: its records count as failed and the checkpoint moves
 * over it. Rows a rule left out are skipped whatever became of the others.
 *
 * @example settleDecision({ outcome: { ok: true, result, attempts: 1, durationMs: 3 }, ... }).afterwards // "next"
 */
export function settleDecision(input: SettlementInput): Settlement {
  const { outcome, countRecords } = input;
  if (outcome.ok) {
    const { result } = outcome;
    const rejected = result.rejected + input.qualityRejected;
    return {
      kind: "settle",
      state: "succeeded",
      created: result.created,
      updated: result.updated,
      rejected,
      failedRecords: 0,
      attempts: input.priorAttempts + outcome.attempts,
      advance: true,
      ...(countRecords
        ? { counters: { created: result.created, updated: result.updated, skipped: rejected, failed: 0 } }
        : {}),
      afterwards: "next",
    };
  }
  const e = DrayError.from(outcome.error);
  // Handed over: whatever happened to the write, the next owner finishes the batch under its id.
  if (input.handedOver) return { kind: "hand_over", error: e };
  const attempts = input.priorAttempts + ((e as { attempts?: number }).attempts ?? 1);
  // An agent that stayed away stops the run: skipping would give up every batch after it too.
  const away = e instanceof AgentUnavailable;
  const skip = !input.cancelled && !away && !input.stopOnError;
  const failedRecords = skip && countRecords ? input.rowCount : 0;
  const rejected = skip ? input.qualityRejected : 0;
  return {
    kind: "settle",
    state: input.cancelled ? "cancelled" : skip ? "skipped" : "failed",
    created: 0,
    updated: 0,
    rejected,
    failedRecords,
    attempts,
    advance: skip,
    error: away ? `${e.message} (whether this batch committed is unknown)` : e.message,
    ...(skip && countRecords
      ? { counters: { created: 0, updated: 0, skipped: rejected, failed: failedRecords } }
      : {}),
    afterwards: input.cancelled ? "cancelled" : away ? "agent_unavailable" : skip ? "skipped" : "failed",
    cause: e,
  };
}
