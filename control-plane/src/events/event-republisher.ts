import type { Logger } from "@dray/common";
import { sql } from "drizzle-orm";
import type { Db } from "../store/db.js";
import { rowsOf } from "../store/raw-sql.js";
import type { DrayEvent, EventBus } from "./event-bus.js";
import { inOrderPrefix } from "./republish-order.js";
import { type ExecutionEventChannel, executionEventMsgId, executionEventSubject } from "./subjects.js";

/** Options of {@link createEventRepublisher}. */
export interface EventRepublisherOptions {
  db: Db;
  bus: EventBus;
  logger: Logger;
  /** Pause between passes when there is nothing (more) to do. @default 5000 */
  intervalMs?: number;
  /** Only events stored at least this long ago are taken, so the live publish goes first. @default 5000 */
  graceMs?: number;
  /** Events claimed by one pass. @default 500 */
  batchSize?: number;
}

/** A running republisher. */
export interface EventRepublisher {
  /** Starts the background loop (idempotent). */
  start(): void;
  /** Runs one pass now; resolves with the number of events published. For tests and the loop. */
  runOnce(): Promise<number>;
  /** Stops the loop and waits for the pass in progress; never waits for NATS. Idempotent. */
  stop(): Promise<void>;
}

interface ClaimedEvent {
  executionId: string;
  seq: number;
  channel: ExecutionEventChannel;
  payload: DrayEvent;
  organisationId: string;
}

/**
 * Publishes the execution events that NATS never acknowledged, from the store
 * (`execution_events.published_at is null`): events stored while NATS was
 * down, or by a control plane that died before its publish. One per replica.
 *
 * Each pass, in one transaction, claims a bounded batch of unpublished events
 * older than `graceMs` with `FOR UPDATE SKIP LOCKED` (so replicas share the
 * work), publishes them in `seq` order per execution with their msgId
 * `<executionId>:<seq>` (JetStream drops a duplicate within its two-minute
 * window) and marks those NATS acknowledged. It runs every `intervalMs`, at
 * once when the bus reconnects, and straight again after a full batch. When
 * NATS is away the bus answers at once, so a pass never waits for it and
 * `stop()` is prompt.
 */
export function createEventRepublisher(options: EventRepublisherOptions): EventRepublisher {
  const { db, bus, logger } = options;
  const intervalMs = options.intervalMs ?? 5_000;
  const graceMs = Math.max(0, Math.floor(options.graceMs ?? 5_000));
  const batchSize = Math.max(1, Math.floor(options.batchSize ?? 500));
  let stopped = false;
  let loop: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  let woken = false;
  let failing = false;
  let unlisten: (() => void) | undefined;

  function nudge() {
    woken = true;
    wake?.();
  }

  function pause(ms: number): Promise<void> {
    if (woken || stopped) {
      woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      timer.unref();
      function done() {
        clearTimeout(timer);
        wake = undefined;
        woken = false;
        resolve();
      }
      wake = done;
    });
  }

  /** One pass: claim, publish in order, mark. Returns [published, claimed]. */
  async function pass(): Promise<[number, number]> {
    return db.transaction(async (tx) => {
      const claimed = rowsOf<{
        execution_id: string;
        seq: string | number;
        channel: ExecutionEventChannel;
        payload: DrayEvent | string;
        organisation_id: string;
      }>(
        await tx.execute(sql`
          select e.execution_id, e.seq, e.channel, e.payload, x.organisation_id
          from execution_events e join executions x on x.id = e.execution_id
          where e.published_at is null and e.at <= now() - (${graceMs}::int * interval '1 millisecond')
          order by e.execution_id, e.seq
          limit ${batchSize}
          for update of e skip locked`),
      ).map(
        (r): ClaimedEvent => ({
          executionId: r.execution_id,
          seq: Number(r.seq),
          channel: r.channel,
          payload: typeof r.payload === "string" ? (JSON.parse(r.payload) as DrayEvent) : r.payload,
          organisationId: r.organisation_id,
        }),
      );
      if (claimed.length === 0 || stopped) return [0, claimed.length];
      const ids = [...new Set(claimed.map((c) => c.executionId))];
      const maxSeq = Math.max(...claimed.map((c) => c.seq));
      const unpublished = rowsOf<{ execution_id: string; seq: string | number }>(
        await tx.execute(sql`
          select execution_id, seq from execution_events
          where published_at is null and execution_id in ${ids} and seq <= ${maxSeq}`),
      ).map((r) => ({ executionId: r.execution_id, seq: Number(r.seq) }));
      const ready = inOrderPrefix(claimed, unpublished);
      // One at a time, in seq order: an event of an execution is sent only when every earlier
      // one was acknowledged, so a publish refused (e.g. JetStream not ready yet right after
      // NATS restarts) can never let a later event of that execution overtake it.
      const acked: typeof ready = [];
      const stalled = new Set<string>();
      for (const e of ready) {
        if (stalled.has(e.executionId)) continue;
        const ok = await bus.publish(
          executionEventSubject(e.channel, e.organisationId, e.executionId),
          e.payload,
          { msgId: executionEventMsgId(e.executionId, e.seq), stored: true },
        );
        if (ok) acked.push(e);
        else stalled.add(e.executionId);
      }
      if (acked.length > 0) {
        const keys = sql.join(
          acked.map((e) => sql`(${e.executionId}::uuid, ${e.seq}::bigint)`),
          sql`, `,
        );
        await tx.execute(sql`
          update execution_events set published_at = now()
          where (execution_id, seq) in (${keys})`);
      }
      return [acked.length, claimed.length];
    });
  }

  async function runOnce(): Promise<number> {
    const [published] = await pass();
    return published;
  }

  async function run() {
    while (!stopped) {
      let full = false;
      try {
        const [published, claimed] = await pass();
        if (failing) logger.info("event republisher: store reachable again");
        failing = false;
        if (published > 0) logger.info("republished stored events to nats", { published });
        // A full batch, all sent: there may be more. Anything less waits for the next tick.
        full = claimed === batchSize && published === claimed;
      } catch (error) {
        if (!failing) logger.warn("event republisher: pass failed; will retry", { error: String(error) });
        failing = true;
      }
      if (!full) await pause(intervalMs);
      else await new Promise((r) => setImmediate(r));
    }
  }

  return {
    start() {
      if (loop || stopped) return;
      unlisten = bus.onConnected?.(nudge);
      loop = run();
    },
    runOnce,
    async stop() {
      stopped = true;
      unlisten?.();
      wake?.();
      await loop;
    },
  };
}
