/**
 * Following an execution's events for the SSE endpoint: replays the stored
 * events after a sequence number in order, then follows new ones. The table is
 * the truth (any replica can serve any client); the bus only nudges the
 * follower early, and the table is polled as a fallback.
 */
import { and, asc, eq, gt, lte, sql } from "drizzle-orm";
import type { EventBus } from "../events/event-bus.js";
import type { Db } from "../store/db.js";
import { executionEvents, executions } from "../store/schema.js";
import { FINAL_STATUSES } from "./execution-vocabulary.js";

/** What {@link followExecutionEvents} yields: a stored event, or a keep-alive ping. */
export type StreamItem = { kind: "event"; seq: number; type: string; payload: unknown } | { kind: "ping" };

/** Options of {@link followExecutionEvents}. */
export interface FollowOptions {
  db: Db;
  /** Nudges the follower as soon as an event is published (`dray.<org>.executions.<id>.>`). */
  bus?: EventBus | undefined;
  organisationId: string;
  executionId: string;
  /** Yield only events with a greater `seq` (the SSE `Last-Event-ID`); 0 replays all. */
  afterSeq: number;
  /** Ends the follow (client gone). */
  signal: AbortSignal;
  /** Table poll interval. @default 1000 */
  pollMs?: number;
  /** Keep-alive ping interval. @default 15000 */
  pingMs?: number;
  /**
   * How long to wait, once the execution is final and every stored event was
   * yielded, for its final status event when none is stored yet. @default 2000
   */
  finalGraceMs?: number;
}

/** Events read per query. */
const READ_BATCH = 500;

/** A wait that a nudge (or abort) ends early; a nudge during no wait ends the next one at once. */
function createWaker() {
  let pending = false;
  let wake: (() => void) | undefined;
  return {
    nudge() {
      if (wake) wake();
      else pending = true;
    },
    wait(ms: number, signal: AbortSignal): Promise<void> {
      if (pending || signal.aborted) {
        pending = false;
        return Promise.resolve();
      }
      return new Promise((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          wake = undefined;
          resolve();
        };
        const timer = setTimeout(done, ms);
        signal.addEventListener("abort", done);
        wake = done;
      });
    },
  };
}

/**
 * True when a final status event with a seq up to `upToSeq` is stored: one the
 * follower has already passed. A later one (stored after the rows were read)
 * must still be yielded, so it does not count.
 */
async function hasFinalStatusEvent(db: Db, executionId: string, upToSeq: number): Promise<boolean> {
  const finals = [...FINAL_STATUSES];
  const [row] = await db
    .select({ seq: executionEvents.seq })
    .from(executionEvents)
    .where(
      and(
        eq(executionEvents.executionId, executionId),
        eq(executionEvents.channel, "status"),
        lte(executionEvents.seq, upToSeq),
        sql`${executionEvents.payload}->>'status' in (${sql.join(
          finals.map((s) => sql`${s}`),
          sql`, `,
        )})`,
      ),
    )
    .limit(1);
  return row !== undefined;
}

/**
 * Yields the execution's events after `afterSeq` in `seq` order, then new ones
 * as they are stored, with a ping every `pingMs`. Ends when the signal aborts,
 * or once the execution is final and all its events (including the final
 * status event) were yielded.
 *
 * @example
 * for await (const item of followExecutionEvents({ db, bus, organisationId, executionId, afterSeq: 0, signal })) {
 *   if (item.kind === "event") send(item.seq, item.type, item.payload);
 * }
 */
export async function* followExecutionEvents(options: FollowOptions): AsyncGenerator<StreamItem> {
  const { db, executionId, signal } = options;
  const pollMs = options.pollMs ?? 1_000;
  const pingMs = options.pingMs ?? 15_000;
  const graceMs = options.finalGraceMs ?? 2_000;
  const waker = createWaker();
  const subscription = options.bus?.subscribe(
    `dray.${options.organisationId}.executions.${executionId}.>`,
    () => waker.nudge(),
  );
  try {
    let lastSeq = options.afterSeq;
    let lastPing = Date.now();
    let finalSince: number | undefined;
    while (!signal.aborted) {
      const [state] = await db
        .select({ status: executions.status, eventSeq: executions.eventSeq })
        .from(executions)
        .where(eq(executions.id, executionId));
      if (!state) return;
      const rows = await db
        .select({ seq: executionEvents.seq, payload: executionEvents.payload })
        .from(executionEvents)
        .where(and(eq(executionEvents.executionId, executionId), gt(executionEvents.seq, lastSeq)))
        .orderBy(asc(executionEvents.seq))
        .limit(READ_BATCH);
      for (const row of rows) {
        if (signal.aborted) return;
        const type = (row.payload as { type?: unknown } | null)?.type;
        yield {
          kind: "event",
          seq: row.seq,
          type: typeof type === "string" ? type : "message",
          payload: row.payload,
        };
        lastSeq = row.seq;
      }
      if (rows.length === READ_BATCH) continue;
      if (FINAL_STATUSES.has(state.status) && lastSeq >= state.eventSeq) {
        if (await hasFinalStatusEvent(db, executionId, lastSeq)) return;
        finalSince ??= Date.now();
        if (Date.now() - finalSince >= graceMs) return;
      }
      if (Date.now() - lastPing >= pingMs) {
        yield { kind: "ping" };
        lastPing = Date.now();
      }
      await waker.wait(Math.max(1, Math.min(pollMs, pingMs - (Date.now() - lastPing))), signal);
    }
  } finally {
    subscription?.unsubscribe();
  }
}
