import type { Logger } from "@dray/common";
import { and, eq, inArray, sql } from "drizzle-orm";
import type { DrayEvent, EventBus } from "../events/event-bus.js";
import { executionEventMsgId, executionEventSubject } from "../events/subjects.js";
import type { Db } from "../store/db.js";
import { executionEvents, executions } from "../store/schema.js";
import type { EventChannel } from "./execution-vocabulary.js";

/** The execution an event belongs to. */
export interface EventTarget {
  executionId: string;
  organisationId: string;
}

/** An execution event as stored, served over SSE and published on NATS. */
export interface ExecutionEvent extends DrayEvent {
  seq: number;
  executionId: string;
}

/** One event to append: its channel and body (`seq`, `executionId` and `at` are added). */
export interface ExecutionEventItem {
  channel: EventChannel;
  body: { type: string } & Record<string, unknown>;
}

/** An event as stored, with the channel it is published on. */
export interface StoredExecutionEvent {
  channel: EventChannel;
  event: ExecutionEvent;
}

/** Rows per INSERT of {@link storeExecutionEvents} (5 parameters a row, far below Postgres' 65,535). */
const EVENTS_PER_INSERT = 1_000;

/**
 * Appends an event: takes the next `seq` of the execution, stores the event
 * (the SSE endpoint replays from the store), then publishes it on
 * `dray.<orgId>.executions.<id>.<channel>` with msgId `<executionId>:<seq>`,
 * so a retried publish is deduplicated by JetStream. The store is the outbox:
 * the row is marked published once NATS acknowledged it; otherwise (NATS
 * away, or this process dies first) the republisher sends it later
 * (events/event-republisher.ts).
 */
export async function appendExecutionEvent(
  deps: { db: Db; bus: EventBus; logger: Logger },
  target: EventTarget,
  channel: EventChannel,
  body: { type: string } & Record<string, unknown>,
): Promise<ExecutionEvent> {
  const [event] = await appendExecutionEvents(deps, target, [{ channel, body }]);
  return event!;
}

/**
 * Appends many events of one execution at once, in order: one transaction
 * takes their consecutive `seq`s and stores them
 * ({@link storeExecutionEvents}), then they are published in order and the
 * published ones marked in one statement ({@link publishExecutionEvents}).
 * Returns the events in the order given.
 *
 * @example
 * await appendExecutionEvents(deps, { executionId, organisationId }, [
 *   { channel: "status", body: { type: "execution.status", status: "in_progress" } },
 *   { channel: "log", body: stageLogEvent(entry) },
 * ]);
 */
export async function appendExecutionEvents(
  deps: { db: Db; bus: EventBus; logger: Logger },
  target: EventTarget,
  items: readonly ExecutionEventItem[],
): Promise<ExecutionEvent[]> {
  if (items.length === 0) return [];
  const stored = await deps.db.transaction((tx) => storeExecutionEvents(tx, target, items));
  await publishExecutionEvents(deps, target, stored);
  return stored.map((s) => s.event);
}

/**
 * Stores events of one execution with consecutive `seq`s in the order given,
 * in the caller's transaction: one `UPDATE … RETURNING` takes the `seq`s (the
 * execution's row stays locked until the transaction ends, so concurrent
 * appends never interleave), one multi-row INSERT stores the events (a few
 * for thousands). Unpublished until {@link publishExecutionEvents} marks them.
 */
export async function storeExecutionEvents(
  tx: Db,
  target: EventTarget,
  items: readonly ExecutionEventItem[],
): Promise<StoredExecutionEvent[]> {
  if (items.length === 0) return [];
  const [row] = await tx
    .update(executions)
    .set({ eventSeq: sql`${executions.eventSeq} + ${items.length}` })
    .where(eq(executions.id, target.executionId))
    .returning({ seq: executions.eventSeq });
  // The last seq taken; an unknown execution gives 0 (and the insert fails on its foreign key).
  const first = (row?.seq ?? 0) - items.length + 1;
  const at = new Date().toISOString();
  const stored = items.map(
    ({ channel, body }, i): StoredExecutionEvent => ({
      channel,
      event: { ...body, seq: first + i, executionId: target.executionId, at },
    }),
  );
  for (let from = 0; from < stored.length; from += EVENTS_PER_INSERT)
    await tx.insert(executionEvents).values(
      stored.slice(from, from + EVENTS_PER_INSERT).map(({ channel, event }) => ({
        executionId: target.executionId,
        seq: event.seq,
        channel,
        payload: event,
      })),
    );
  return stored;
}

/**
 * Publishes stored events of one execution in order, each with msgId
 * `<executionId>:<seq>`, stopping at the first NATS did not acknowledge (the
 * republisher sends it and the rest later, in order), then marks the
 * acknowledged ones published in one UPDATE. Never throws: failures are logged.
 */
export async function publishExecutionEvents(
  deps: { db: Db; bus: EventBus; logger: Logger },
  target: EventTarget,
  stored: readonly StoredExecutionEvent[],
): Promise<number[]> {
  const published: number[] = [];
  for (const { channel, event } of stored) {
    const acknowledged = await deps.bus
      .publish(executionEventSubject(channel, target.organisationId, target.executionId), event, {
        msgId: executionEventMsgId(target.executionId, event.seq),
        stored: true,
      })
      .catch((error) => {
        deps.logger.warn("could not publish an execution event", { error: String(error) });
        return false;
      });
    if (!acknowledged) break;
    published.push(event.seq);
  }
  if (published.length > 0) {
    await deps.db
      .update(executionEvents)
      .set({ publishedAt: sql`now()` })
      .where(
        and(eq(executionEvents.executionId, target.executionId), inArray(executionEvents.seq, published)),
      )
      .catch((error) =>
        // The republisher sends them again; JetStream drops the duplicates by msgId.
        deps.logger.warn("could not mark execution events published", { error: String(error) }),
      );
  }
  return published;
}
