import type { Logger } from "@dray/common";
import { and, eq, sql } from "drizzle-orm";
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
  const event = await deps.db.transaction(async (tx) => {
    const [row] = await tx
      .update(executions)
      .set({ eventSeq: sql`${executions.eventSeq} + 1` })
      .where(eq(executions.id, target.executionId))
      .returning({ seq: executions.eventSeq });
    const seq = row?.seq ?? 0;
    const stored: ExecutionEvent = {
      ...body,
      seq,
      executionId: target.executionId,
      at: new Date().toISOString(),
    };
    await tx
      .insert(executionEvents)
      .values({ executionId: target.executionId, seq, channel, payload: stored });
    return stored;
  });
  const published = await deps.bus
    .publish(executionEventSubject(channel, target.organisationId, target.executionId), event, {
      msgId: executionEventMsgId(target.executionId, event.seq),
      stored: true,
    })
    .catch((error) => {
      deps.logger.warn("could not publish an execution event", { error: String(error) });
      return false;
    });
  if (published) {
    await deps.db
      .update(executionEvents)
      .set({ publishedAt: sql`now()` })
      .where(and(eq(executionEvents.executionId, target.executionId), eq(executionEvents.seq, event.seq)))
      .catch((error) =>
        // The republisher sends it again; JetStream drops the duplicate by msgId.
        deps.logger.warn("could not mark an execution event published", { error: String(error) }),
      );
  }
  return event;
}
