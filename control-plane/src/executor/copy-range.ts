/**
 * Copying one keyset range of an entity in batches: read, reserve against the
 * monthly limit, write, settle in order.
 */
import { randomUUID } from "node:crypto";
import { DrayError } from "@dray/common";
import { raiseLimitHint, utcMonth } from "../pipelines/record-limit.js";
import type { ReadResult } from "./agent-port.js";
import { reserveBatch } from "./batch-bookkeeping.js";
import { type Pass, readPage } from "./batch-read.js";
import type { EntityRunPlan, RunContext } from "./run-context.js";
import { RecordLimitReached } from "./run-errors.js";
import { WriteWindow } from "./write-window.js";

/** Where copying one range of an entity stands. */
export interface RangeState {
  /** The last batch number used. */
  seq: number;
  /** Key of the last row covered by a reserved batch; null before the first. */
  cursor: string[] | null;
}

/** The message of a batch the monthly limit refused. */
function limitMessage(
  entity: string,
  r: { used: number; limit: number; reserved: number; needed: number },
  organisationId: string,
) {
  return (
    `monthly record limit reached: ${r.used} of ${r.limit} records used this month` +
    `${r.reserved ? ` (${r.reserved} reserved by runs in flight)` : ""}, and the next batch of ` +
    `${entity} needs ${r.needed}. Committed batches stay in the target; ` +
    `${raiseLimitHint(organisationId)}, then run again to continue.`
  );
}

/**
 * Copies the keyset range (`state.cursor`, `until`] of one entity (to the end
 * when `until` is null) in batches: each batch is reserved against the monthly
 * limit, written as one target transaction with its ledger id, and settled in
 * order. The next read is in flight while writes commit, and up to
 * `writesInFlight` writes run at once. When `halt` fires (another entity of
 * the run failed), it stops at the next batch boundary. `firstPage`: the page
 * after `state.cursor`, already read (see read-ahead.ts).
 */
export async function copyRange(
  ctx: RunContext,
  entity: EntityRunPlan,
  pass: Pass,
  state: RangeState,
  until: string[] | null,
  halt?: AbortSignal,
  firstPage?: Promise<ReadResult>,
): Promise<void> {
  const window = new WriteWindow(ctx, entity, pass);
  const inFlight = Math.max(1, ctx.options.writesInFlight);
  const readAfter = (after: readonly string[] | null) => {
    const page = readPage(ctx, entity, pass, { after, until });
    page.catch(() => {});
    return page;
  };
  let next: Promise<ReadResult> | undefined = firstPage ?? readAfter(state.cursor);
  try {
    while (next && !window.stopped) {
      if (halt?.aborted) {
        throw new DrayError("aborted", `${entity.entity} stopped at a batch boundary: the run failed`);
      }
      const page = await next;
      next = undefined;
      const { rows, qualityRejected } = page;
      // A page whose every row failed a data-quality rule is still a batch: it moves the checkpoint over them.
      if (rows.rowCount === 0 && qualityRejected.length === 0) break;
      const cursorTo = page.last ? [...page.last] : null;
      // The next page is read while this one is reserved and waits for room in the window: the source
      // never idles on the store or the target (a read is side-effect free; one left unused is dropped).
      if (!page.done) next = readAfter(cursorTo);
      // Make room in the window before reserving, so a batch is never reserved after the entity stopped.
      await window.settleUntil(inFlight - 1);
      if (window.stopped) break;
      state.seq += 1;
      const seq = state.seq;
      const rowId = randomUUID();
      const batchId = `${ctx.executionId}:${entity.entity}:${pass}:${seq}`;
      const reserved = await reserveBatch(ctx.db, {
        id: rowId,
        executionId: ctx.executionId,
        organisationId: ctx.organisationId,
        entity: entity.entity,
        pass,
        seq,
        batchId,
        cursorFrom: state.cursor,
        cursorTo,
        rows: rows.rowCount,
        bytes: rows.byteLength,
        reserve: pass === 1 ? rows.rowCount : 0,
        month: utcMonth(new Date()),
      });
      if (!reserved.ok) {
        throw new RecordLimitReached(limitMessage(entity.entity, reserved, ctx.organisationId), {
          ...reserved,
          entity: entity.entity,
        });
      }
      state.cursor = cursorTo;
      // The entity's last batch (its range runs to the end) moves its sequences once the others committed.
      const moveSequences = pass === 1 && page.done && until === null && ctx.sequenceMoves !== undefined;
      window.start({
        rowId,
        batchId,
        seq,
        rows,
        priorAttempts: 0,
        qualityRejected,
        position: cursorTo,
        ...(moveSequences ? { moveSequences } : {}),
      });
    }
  } catch (error) {
    window.stop(error);
  }
  await window.settleUntil(0);
  if (window.stopped) throw window.stopped;
}
