/**
 * Applies the settlement of a written batch (batch-settlement.ts) to the
 * store, the journal and the run's live counters.
 */

import { STAGES } from "../executions/execution-vocabulary.js";
import { countRecords, observeWrite, startCommitTimer } from "../metrics/executor-metrics.js";
import type { RejectedRow, WriteResult } from "./agent-port.js";
import { finalizeBatch } from "./batch-bookkeeping.js";
import type { Pass } from "./batch-read.js";
import { settleDecision } from "./batch-settlement.js";
import type { PendingBatch, WriteOutcome } from "./batch-write.js";
import type { EntityRunPlan, ErrorEntry, RunContext } from "./run-context.js";
import { BatchFailed, handedOver } from "./run-errors.js";

/** Error-log entries of rejected rows: by key, field and code, never a value. */
function rejectedEntries(entity: string, rows: readonly RejectedRow[], code?: string): ErrorEntry[] {
  return rows.map((r) => ({
    severity: "error" as const,
    entity,
    recordKey: [...r.key],
    field: r.field || null,
    code: r.sqlState || code || null,
    message: r.message,
  }));
}

/** The DataQuality stage entry of a batch whose rows a rule left out, counted by rule. */
function qualityStage(entity: string, seq: number, quality: readonly RejectedRow[]) {
  // The agent's message names the rule, its options and the field: count the rows by it.
  const byRule = new Map<string, number>();
  for (const r of quality) byRule.set(r.message, (byRule.get(r.message) ?? 0) + 1);
  return {
    processName: STAGES.dataQuality,
    state: "processing" as const,
    code: "rows_skipped",
    entity,
    description:
      `batch ${seq} of ${entity}: ${quality.length} row(s) skipped, ` +
      [...byRule].map(([message, n]) => `${n} ${message}`).join("; "),
  };
}

/**
 * Settles a written batch in the store, once: succeeded (counters, checkpoint,
 * usage), skipped (stopOnError=false: the run goes on after it), failed or
 * cancelled. Its rejected rows and any failure go to the error log in one
 * journal entry. Returns the write's result, or undefined when skipped;
 * throws when the entity must stop. A write whose outcome is unknown while
 * the run is handed over stays in progress: the next owner finishes it under
 * the same ledger id.
 */
export async function settleWrite(
  ctx: RunContext,
  entity: EntityRunPlan,
  pass: Pass,
  batch: PendingBatch,
  outcome: WriteOutcome,
  signal: AbortSignal = ctx.signal,
): Promise<WriteResult | undefined> {
  const quality = batch.qualityRejected ?? [];
  const decision = settleDecision({
    outcome,
    rowCount: batch.rows.rowCount,
    qualityRejected: quality.length,
    priorAttempts: batch.priorAttempts,
    countRecords: pass === 1,
    stopOnError: ctx.settings.stopOnError,
    cancelled: signal.aborted,
    handedOver: handedOver(ctx.signal),
  });
  if (decision.kind === "hand_over") throw decision.error;
  const result = outcome.ok ? outcome.result : undefined;
  observeWrite(outcome.ok, outcome.durationMs);
  const committed = startCommitTimer();
  await finalizeBatch(ctx.db, {
    batchRowId: batch.rowId,
    executionId: ctx.executionId,
    organisationId: ctx.organisationId,
    entity: entity.entity,
    state: decision.state,
    created: decision.created,
    updated: decision.updated,
    rejected: decision.rejected,
    failedRecords: decision.failedRecords,
    attempts: decision.attempts,
    durationMs: outcome.durationMs,
    ...(decision.error !== undefined ? { error: decision.error } : {}),
    advance: decision.advance,
    countRecords: pass === 1,
    ...(batch.reread && result && !result.alreadyCommitted ? { reread: batch.reread } : {}),
  });
  committed();
  if (decision.afterwards === "cancelled") throw decision.cause;
  const failure: ErrorEntry[] = decision.cause
    ? [
        {
          severity: "error",
          entity: entity.entity,
          code: decision.cause.code,
          message: `batch ${batch.seq} of ${entity.entity} failed after ${decision.attempts} attempt(s): ${decision.cause.message}`,
        },
      ]
    : [];
  const stops = decision.afterwards === "agent_unavailable" || decision.afterwards === "failed";
  // One journal entry per batch: its failure, the rows a rule left out and the rows the target rejected.
  const entries = [
    ...failure,
    ...(stops ? [] : rejectedEntries(entity.entity, quality, "data_quality")),
    ...rejectedEntries(entity.entity, result?.rejectedRows ?? []),
  ];
  if (entries.length > 0) await ctx.journal.errors(entries);
  if (!stops && quality.length > 0) await ctx.journal.stage(qualityStage(entity.entity, batch.seq, quality));
  if (decision.afterwards === "agent_unavailable") throw decision.cause;
  if (decision.afterwards === "failed")
    throw new BatchFailed(decision.cause!.code, failure[0]!.message, {
      details: decision.cause!.details,
      cause: decision.cause,
    });
  if (decision.counters) bump(ctx, entity.entity, decision.counters);
  if (decision.counters) countRecords(ctx, decision.counters);
  if (result?.sequences && pass === 1) ctx.sequenceMoves?.set(entity.entity, result.sequences);
  return result;
}

function bump(
  ctx: RunContext,
  entity: string,
  d: { created: number; updated: number; skipped: number; failed: number },
) {
  const c = ctx.counters.get(entity);
  if (!c) return;
  c.created += d.created;
  c.updated += d.updated;
  c.skipped += d.skipped;
  c.failed += d.failed;
  c.processed += d.created + d.updated + d.skipped + d.failed;
  ctx.onProgress();
}
