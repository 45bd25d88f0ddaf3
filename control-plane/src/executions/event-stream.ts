/**
 * Following an execution's events for the SSE endpoint: replays the stored
 * events after a sequence number in order, then follows new ones. The table is
 * the truth (any replica can serve any client); the bus only nudges the
 * follower early, and the table is polled as a fallback. All streams of one
 * execution on this replica share one poll (see {@link ExecutionEventHub}).
 */
import type { EventBus } from "../events/event-bus.js";
import type { Db } from "../store/db.js";
import { createWaker, ExecutionEventHub, type StoredEvent } from "./execution-event-hub.js";

/** What {@link followExecutionEvents} yields: a stored event, or a keep-alive ping. */
export type StreamItem = { kind: "event"; seq: number; type: string; payload: unknown } | { kind: "ping" };

/** Options of {@link followExecutionEvents}. */
export interface FollowOptions {
  /** The replica's shared feeds; without it, a private hub over `db` and `bus` is used. */
  hub?: ExecutionEventHub | undefined;
  /** The store (when no `hub` is given). */
  db?: Db | undefined;
  /** Nudges the follower as soon as an event is published (when no `hub` is given). */
  bus?: EventBus | undefined;
  organisationId: string;
  executionId: string;
  /** Yield only events with a greater `seq` (the SSE `Last-Event-ID`); 0 replays all. */
  afterSeq: number;
  /** Ends the follow (client gone). */
  signal: AbortSignal;
  /** Table poll interval of a private hub. @default 1000 */
  pollMs?: number;
  /** Keep-alive ping interval. @default 15000 */
  pingMs?: number;
  /** Final-event grace of a private hub (see ExecutionEventHubOptions). @default 2000 */
  finalGraceMs?: number;
}

function toItem(row: StoredEvent): StreamItem {
  const type = (row.payload as { type?: unknown } | null)?.type;
  return {
    kind: "event",
    seq: row.seq,
    type: typeof type === "string" ? type : "message",
    payload: row.payload,
  };
}

/**
 * Yields the execution's events after `afterSeq` in `seq` order, then new ones
 * as they are stored, with a ping every `pingMs`. Ends when the signal aborts,
 * or once the execution is final and all its events (including the final
 * status event) were yielded.
 *
 * @example
 * for await (const item of followExecutionEvents({ hub, organisationId, executionId, afterSeq: 0, signal })) {
 *   if (item.kind === "event") send(item.seq, item.type, item.payload);
 * }
 */
export async function* followExecutionEvents(options: FollowOptions): AsyncGenerator<StreamItem> {
  const { executionId, signal } = options;
  const pingMs = options.pingMs ?? 15_000;
  const hub =
    options.hub ??
    new ExecutionEventHub({
      db: options.db as Db,
      bus: options.bus,
      ...(options.pollMs === undefined ? {} : { pollMs: options.pollMs }),
      ...(options.finalGraceMs === undefined ? {} : { finalGraceMs: options.finalGraceMs }),
    });
  if (signal.aborted) return;
  const feed = hub.acquire(options.organisationId, executionId, options.afterSeq);
  const waker = createWaker();
  const unlisten = feed.onChange(() => waker.nudge());
  try {
    let lastSeq = options.afterSeq;
    let lastPing = Date.now();
    while (!signal.aborted) {
      if (feed.error !== undefined) throw feed.error;
      const ended = feed.ended;
      let rows: StoredEvent[] = [];
      if (lastSeq < feed.lastSeq)
        rows = feed.bufferedAfter(lastSeq) ?? (await hub.catchUp(executionId, lastSeq));
      for (const row of rows) {
        if (signal.aborted) return;
        yield toItem(row);
        lastSeq = row.seq;
      }
      if (rows.length > 0) continue;
      if (ended && lastSeq >= feed.lastSeq) return;
      if (Date.now() - lastPing >= pingMs) {
        yield { kind: "ping" };
        lastPing = Date.now();
      }
      await waker.wait(Math.max(1, pingMs - (Date.now() - lastPing)), signal);
    }
  } finally {
    unlisten();
    feed.release();
  }
}
