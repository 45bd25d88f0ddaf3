/**
 * The writes of one entity in flight, settled strictly in the order they were
 * started, so the entity's checkpoint only ever moves over a contiguous run of
 * finished batches.
 */
import { DrayError } from "@dray/common";
import type { Pass } from "./batch-read.js";
import { type PendingBatch, type Predecessor, startWrite, type WriteOutcome } from "./batch-write.js";
import type { EntityRunPlan, RunContext } from "./run-context.js";
import { BatchFailed, handedOver } from "./run-errors.js";
import { settleWrite } from "./settle-batch.js";

/**
 * Up to `writesInFlight` writes of one entity at once, each committed by the
 * target only after the one before it. After the first batch that stops the
 * entity, later ones are still settled by their own outcome (a write that
 * committed is counted), except on a hand-over, where they stay in progress
 * for the next owner.
 */
export class WriteWindow {
  private readonly queue: { batch: PendingBatch; outcome: Promise<WriteOutcome> }[] = [];
  private last: (Predecessor & { ok?: boolean }) | undefined;
  /** Aborts the writes still in flight once a batch fails for good. */
  private readonly abort = new AbortController();
  private readonly signal: AbortSignal;
  /** The first error that stopped the entity. */
  stopped: DrayError | undefined;
  /** A batch could not be settled (e.g. the store failed): settle nothing after it. */
  private unsettled = false;

  constructor(
    private readonly ctx: RunContext,
    private readonly entity: EntityRunPlan,
    private readonly pass: Pass,
  ) {
    this.signal = AbortSignal.any([ctx.signal, this.abort.signal]);
  }

  /** Starts writing `batch` after the previous one; call {@link settleUntil} first to bound the window. */
  start(batch: PendingBatch): void {
    // A predecessor that committed needs no waiting for; nor one given up on when the run goes on after it.
    const settled = this.last?.ok === true || (this.last?.ok === false && !this.ctx.settings.stopOnError);
    const previous = settled ? undefined : this.last;
    const outcome = startWrite(this.ctx, this.entity, this.pass, batch, this.signal, previous);
    const started: Predecessor & { ok?: boolean } = { batchId: batch.batchId, seq: batch.seq, outcome };
    outcome.then((o) => {
      started.ok = o.ok;
    });
    this.last = started;
    this.queue.push({ batch, outcome });
  }

  /** Settles the oldest writes until at most `inFlight` remain. Never throws; see {@link stopped}. */
  async settleUntil(inFlight: number): Promise<void> {
    while (this.queue.length > inFlight) {
      const { batch, outcome } = this.queue.shift()!;
      const done = await outcome;
      // After a hand-over, or a batch that could not be settled, later batches stay in progress: settling
      // them would move the checkpoint past an unsettled one. The next owner, or the run's end, settles them.
      if (this.stopped && (handedOver(this.ctx.signal) || this.unsettled)) continue;
      try {
        await settleWrite(this.ctx, this.entity, this.pass, batch, done, this.signal);
      } catch (error) {
        if (error instanceof BatchFailed)
          this.abort.abort(new DrayError("cancelled", `an earlier batch of ${this.entity.entity} failed`));
        else if (!this.signal.aborted) this.unsettled = true;
        this.stop(error);
      }
    }
  }

  /** Records why the entity stops (the first reason wins). */
  stop(error: unknown): void {
    this.stopped ??= DrayError.from(error);
  }
}
