/**
 * Copying one entity (one pass) from its checkpoint to the end, finishing
 * first the batches a dead owner left in progress. The pieces: batch-read.ts
 * and batch-write.ts (I/O through the agent port), write-window.ts (the
 * writes in flight), batch-settlement.ts (the pure decision of how a batch
 * changes the run) and settle-batch.ts (applying it), copy-range.ts (the
 * batch loop).
 */
import { and, desc, eq } from "drizzle-orm";
import { executionBatches, executionEntities } from "../store/schema.js";
import type { ReadResult } from "./agent-port.js";
import { cancelBatch } from "./batch-bookkeeping.js";
import { chainOrder } from "./batch-chain.js";
import { type Pass, readPage } from "./batch-read.js";
import { batchSealed, type PendingBatch, startWrite } from "./batch-write.js";
import { copyRange, type RangeState } from "./copy-range.js";
import type { EntityRunPlan, RunContext } from "./run-context.js";
import { settleWrite } from "./settle-batch.js";

/** Where the entity's pass stands in the store: its checkpoint, last batch number and unfinished batches. */
async function resumePoint(ctx: RunContext, entity: EntityRunPlan, pass: Pass) {
  const [entityRow] = await ctx.db
    .select()
    .from(executionEntities)
    .where(
      and(eq(executionEntities.executionId, ctx.executionId), eq(executionEntities.entity, entity.entity)),
    );
  const checkpoint = entityRow?.pass === pass ? (entityRow.checkpoint ?? null) : null;
  const ofPass = and(
    eq(executionBatches.executionId, ctx.executionId),
    eq(executionBatches.entity, entity.entity),
    eq(executionBatches.pass, pass),
  );
  const [last] = await ctx.db
    .select({ seq: executionBatches.seq })
    .from(executionBatches)
    .where(ofPass)
    .orderBy(desc(executionBatches.seq))
    .limit(1);
  const unfinished = await ctx.db
    .select()
    .from(executionBatches)
    .where(and(ofPass, eq(executionBatches.state, "in_progress")));
  return { checkpoint, lastSeq: last?.seq ?? 0, unfinished };
}

/**
 * Copies one entity (one pass) from its checkpoint to the end. Batches left
 * in progress by a dead control plane are finished first, in key order and
 * exactly once thanks to the target ledger: each one's range is re-read
 * (bounded by its recorded end) and written under its ledger id; a range that
 * no longer fits one batch is completed by extra batches before going on.
 * `fresh`: the entity was pending (never started), so there is nothing to
 * look up first; `firstPage` is then its first page when it was read ahead.
 */
export async function copyEntity(
  ctx: RunContext,
  entity: EntityRunPlan,
  pass: Pass,
  halt?: AbortSignal,
  fresh = false,
  firstPage?: Promise<ReadResult>,
): Promise<void> {
  if (fresh) {
    // Never started before (it was pending): no checkpoint and no batch to finish.
    await copyRange(ctx, entity, pass, { seq: 0, cursor: null }, null, halt, firstPage);
    return;
  }
  const { checkpoint, lastSeq, unfinished } = await resumePoint(ctx, entity, pass);
  const state: RangeState = { seq: lastSeq, cursor: checkpoint };
  const at = (cursor: string[] | null) => JSON.stringify(cursor);
  for (const left of chainOrder(unfinished, checkpoint)) {
    if (left.cursorFrom && at(left.cursorFrom) !== at(state.cursor)) {
      // A gap before this batch (an earlier batch settled without being written): copy it first.
      await copyRange(ctx, entity, pass, state, left.cursorFrom, halt);
      state.cursor = left.cursorFrom;
    }
    const again = await readPage(ctx, entity, pass, {
      after: left.cursorFrom ?? null,
      until: left.cursorTo ?? null,
      resuming: true,
    });
    // A complete re-read covers the batch's whole recorded range, so its end stays the recorded one.
    const rereadTo = again.done || !again.last ? (left.cursorTo ?? null) : [...again.last];
    const pending: PendingBatch = {
      rowId: left.id,
      batchId: left.batchId,
      seq: left.seq,
      rows: again.rows,
      priorAttempts: left.attempts,
      reread: { cursorTo: rereadTo, rows: again.rows.rowCount, bytes: again.rows.byteLength },
      qualityRejected: again.qualityRejected,
      position: rereadTo,
    };
    const outcome = await startWrite(ctx, entity, pass, pending);
    if (!outcome.ok && batchSealed(outcome.error)) {
      // A cancel fence sealed this id before the write committed: its rows go in under new ids.
      await cancelBatch(
        ctx.db,
        { ...left, batchRowId: left.id, organisationId: ctx.organisationId, entity: entity.entity },
        "sealed before it committed; its range was written again as new batches",
      );
      if (left.cursorTo) await copyRange(ctx, entity, pass, state, left.cursorTo, halt);
      state.cursor = left.cursorTo ?? state.cursor;
      continue;
    }
    const result = await settleWrite(ctx, entity, pass, pending, outcome);
    const rewritten = result !== undefined && !result.alreadyCommitted;
    state.cursor = rewritten ? rereadTo : (left.cursorTo ?? null);
    if (rewritten && !again.done && left.cursorTo) {
      // The range grew since it was first read: copy the rest of it before going on.
      await copyRange(ctx, entity, pass, state, left.cursorTo, halt);
    }
    state.cursor = left.cursorTo ?? state.cursor;
  }
  await copyRange(ctx, entity, pass, state, null, halt);
}
