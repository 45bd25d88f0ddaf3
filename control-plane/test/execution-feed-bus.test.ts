/**
 * An execution's shared event feed takes the next event straight from the bus:
 * Dray stores an execution event before it publishes it, so an event whose seq
 * directly follows the last one the feed holds is appended as it came, without
 * reading the store. A gap, an old or repeated seq, and a final status event are
 * not taken from the bus: a gap and a final status make the feed read the store
 * (which ends it once the execution is final), and an old seq is ignored.
 * Real Postgres, an in-process bus; feeds poll once a minute, so every store
 * read in these tests comes from the feed's first read or from a nudge.
 */
import { silentLogger } from "@dray/common";
import { eq, sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { EventBus } from "../src/events/event-bus.js";
import { createMemoryEventBus } from "../src/events/memory-event-bus.js";
import { executionEventMsgId, executionEventSubject } from "../src/events/subjects.js";
import { followExecutionEvents, type StreamItem } from "../src/executions/event-stream.js";
import {
  ExecutionEventHub,
  type ExecutionFeed,
  inJsonbKeyOrder,
  type StoredEvent,
  type StoreReadKind,
} from "../src/executions/execution-event-hub.js";
import {
  appendExecutionEvent,
  appendExecutionEvents,
  type ExecutionEvent,
  type StoredExecutionEvent,
  storeExecutionEvents,
} from "../src/executions/execution-events.js";
import { executions, rowsOf } from "../src/store/index.js";
import { useTestStore } from "./api-test-harness.js";
import { type SeededOrganisation, seedOrganisation, seedRunningExecution } from "./execution-fixtures.js";

const store = useTestStore();
let org: SeededOrganisation;
let bus: EventBus;

beforeAll(async () => {
  org = await seedOrganisation(store.db);
  bus = createMemoryEventBus();
});
/** Stops what a test left running when it failed half-way (feeds, streams). */
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});
afterAll(async () => {
  await bus?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `check` holds, failing after `ms`. */
async function until(check: () => boolean, what: string, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

type Reads = Record<StoreReadKind, number>;
type Target = { executionId: string; organisationId: string };

/**
 * A running execution of its own, followed by a feed of a new hub whose poll
 * interval is a minute (so only nudges read the store), and a listener that
 * records every event the feed delivers, in order.
 */
async function followed(
  options: { before?: (target: Target) => Promise<unknown>; onRead?: (kind: StoreReadKind) => void } = {},
) {
  const { executionId } = await seedRunningExecution(store.db, org);
  const target = { executionId, organisationId: org.organisationId };
  await options.before?.(target);
  const reads: Reads = { state: 0, events: 0, "final-event": 0, "catch-up": 0 };
  const hub = new ExecutionEventHub({
    db: store.db,
    bus,
    pollMs: 60_000,
    onStoreRead: (kind, id) => {
      if (id !== executionId) return;
      reads[kind]++;
      options.onRead?.(kind);
    },
  });
  const feed = hub.acquire(org.organisationId, executionId, 0);
  cleanups.push(() => {
    if (hub.activeFeeds > 0) feed.release();
  });
  const delivered: StoredEvent[] = [];
  let notifications = 0;
  feed.onChange(() => {
    notifications++;
    const after = delivered.at(-1)?.seq ?? 0;
    delivered.push(...(feed.bufferedAfter(after) ?? []));
  });
  await until(() => reads.events >= 1, "the feed's first read");
  await sleep(50); // the first read's rows are in, the poll now waits
  return {
    executionId,
    target,
    hub,
    feed,
    reads,
    delivered,
    notifications: () => notifications,
  };
}

const deps = () => ({ db: store.db, bus, logger: silentLogger });

/** Publishes a stored event as publishExecutionEvents does (same subject, payload and msgId). */
function publishStored(
  target: Target,
  channel: "status" | "progress" | "log",
  event: ExecutionEvent,
  msgId = executionEventMsgId(target.executionId, event.seq),
) {
  return bus.publish(executionEventSubject(channel, target.organisationId, target.executionId), event, {
    msgId,
    stored: true,
  });
}

const seqsOf = (events: readonly { seq: number }[]) => events.map((e) => e.seq);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, k) => from + k);
const bufferOf = (feed: ExecutionFeed) => feed.bufferedAfter(0) ?? [];

/** The events a follower yields, pushed into `into` as they come. */
async function collect(items: AsyncGenerator<StreamItem>, into: StreamItem[] = []): Promise<StreamItem[]> {
  for await (const item of items) if (item.kind === "event") into.push(item);
  return into;
}

/** A stream following the execution from its first event (stopped after the test); what it yields so far, and its end. */
function followFromStart(f: { hub: ExecutionEventHub; executionId: string }) {
  const stop = new AbortController();
  cleanups.push(() => stop.abort());
  const streamed: StreamItem[] = [];
  const stream = collect(
    followExecutionEvents({
      hub: f.hub,
      organisationId: org.organisationId,
      executionId: f.executionId,
      afterSeq: 0,
      signal: stop.signal,
    }),
    streamed,
  );
  return { streamed, stream, stop: () => stop.abort() };
}

describe("execution feed and the bus", () => {
  it("takes 20 events appended one at a time from the bus, in order, without reading the store for each", async () => {
    const f = await followed();
    const { streamed, stream, stop } = followFromStart(f);
    const appended: ExecutionEvent[] = [];
    for (let i = 0; i < 20; i++) {
      const [event] = await appendExecutionEvents(deps(), f.target, [
        { channel: "progress", body: { type: "execution.progress", i } },
      ]);
      appended.push(event!);
      // Taken as it was published: the feed holds it before the append returns.
      expect(f.feed.lastSeq).toBe(event!.seq);
    }
    expect(seqsOf(appended)).toEqual(range(1, 20));

    expect(seqsOf(f.delivered)).toEqual(range(1, 20));
    expect(f.delivered.map((e) => e.payload)).toEqual(appended);
    expect(f.notifications()).toBe(20);
    await until(() => streamed.length === 20, "the stream to yield 20 events");
    expect(streamed).toEqual(
      appended.map((event) => ({
        kind: "event",
        seq: event.seq,
        type: "execution.progress",
        payload: event,
      })),
    );

    // The feed's first read only; a read per published event would be 20 more.
    expect(f.reads.events).toBeLessThanOrEqual(2);
    expect(f.reads.state).toBeLessThanOrEqual(2);
    expect(f.reads["catch-up"]).toBe(0);

    stop();
    await stream;
    f.feed.release();
    expect(f.hub.activeFeeds).toBe(0);
  });

  it("reads the store when the bus skips a seq, and holds both events once, in order", async () => {
    const f = await followed();
    const [first] = await appendExecutionEvents(deps(), f.target, [
      { channel: "progress", body: { type: "execution.progress", step: "first" } },
    ]);
    expect(f.feed.lastSeq).toBe(1);
    const readsBefore = { ...f.reads };

    // Seqs 2 and 3 are stored; only 3 reaches the bus (2 is late, e.g. left to the republisher).
    const stored = await store.db.transaction((tx) =>
      storeExecutionEvents(tx, f.target, [
        { channel: "log", body: { type: "execution.log", message: "two" } },
        { channel: "progress", body: { type: "execution.progress", step: "three" } },
      ]),
    );
    expect(stored.map((s) => s.event.seq)).toEqual([2, 3]);
    expect(await publishStored(f.target, "progress", stored[1]!.event)).toBe(true);
    // Seq 3 is not taken from the bus over the gap.
    expect(f.feed.lastSeq).toBe(1);
    expect(seqsOf(bufferOf(f.feed))).toEqual([1]);

    await until(() => f.feed.lastSeq === 3, "the feed to read the gap from the store");
    expect(f.reads.events).toBeGreaterThan(readsBefore.events);
    expect(seqsOf(bufferOf(f.feed))).toEqual([1, 2, 3]);
    expect(bufferOf(f.feed).map((e) => e.payload)).toEqual([first, stored[0]!.event, stored[1]!.event]);
    expect(seqsOf(f.delivered)).toEqual([1, 2, 3]);

    // Seq 2 arriving late changes nothing; seq 4 then follows from the bus again, without a read.
    const readsAfterGap = { ...f.reads };
    await publishStored(f.target, "log", stored[0]!.event);
    const [fourth] = await appendExecutionEvents(deps(), f.target, [
      { channel: "progress", body: { type: "execution.progress", step: "four" } },
    ]);
    expect(f.feed.lastSeq).toBe(4);
    await sleep(100);
    expect(f.reads).toEqual(readsAfterGap);
    expect(seqsOf(bufferOf(f.feed))).toEqual([1, 2, 3, 4]);
    expect(bufferOf(f.feed)[3]!.payload).toEqual(fourth);
    expect(seqsOf(f.delivered)).toEqual([1, 2, 3, 4]);

    f.feed.release();
    expect(f.hub.activeFeeds).toBe(0);
  });

  it("ignores an event on the bus whose seq it already holds, without reading the store", async () => {
    const f = await followed();
    const appended = await appendExecutionEvents(
      deps(),
      f.target,
      range(1, 3).map((i) => ({ channel: "progress" as const, body: { type: "execution.progress", i } })),
    );
    expect(f.feed.lastSeq).toBe(3);
    expect(seqsOf(f.delivered)).toEqual([1, 2, 3]);
    const readsBefore = { ...f.reads };
    const notificationsBefore = f.notifications();

    // The same events again (a republish under other msgIds, so the bus does not drop them),
    // and a different payload under an old seq.
    for (const event of appended)
      await publishStored(f.target, "progress", event, `again:${f.executionId}:${event.seq}`);
    await publishStored(f.target, "progress", { ...appended[0]!, forged: true }, `forged:${f.executionId}`);
    await sleep(100);

    expect(seqsOf(bufferOf(f.feed))).toEqual([1, 2, 3]);
    expect(bufferOf(f.feed).map((e) => e.payload)).toEqual(appended);
    expect(f.feed.lastSeq).toBe(3);
    expect(f.notifications()).toBe(notificationsBefore);
    expect(seqsOf(f.delivered)).toEqual([1, 2, 3]);
    expect(f.reads).toEqual(readsBefore);

    f.feed.release();
    expect(f.hub.activeFeeds).toBe(0);
  });

  it("holds an event once when the bus delivers it while the store read that returns it is under way", async () => {
    // Seqs 1 and 2 are stored but not yet published when the feed starts; seq 1 is published
    // just after the feed's first read was sent (from 0), so it arrives before that read's rows.
    let stored: StoredExecutionEvent[] = [];
    let target: Target | undefined;
    let published: Promise<boolean> | undefined;
    let scheduled = false;
    const f = await followed({
      before: async (t) => {
        target = t;
        stored = await store.db.transaction((tx) =>
          storeExecutionEvents(
            tx,
            t,
            range(1, 2).map((i) => ({
              channel: "progress" as const,
              body: { type: "execution.progress", i },
            })),
          ),
        );
      },
      onRead: (kind) => {
        if (kind !== "events" || scheduled) return;
        scheduled = true;
        queueMicrotask(() => {
          published = publishStored(target!, "progress", stored[0]!.event);
        });
      },
    });
    expect(await published).toBe(true);
    expect(f.feed.lastSeq).toBe(2);
    expect(seqsOf(bufferOf(f.feed))).toEqual([1, 2]);
    expect(bufferOf(f.feed).map((e) => e.payload)).toEqual(stored.map((s) => s.event));
    expect(seqsOf(f.delivered)).toEqual([1, 2]);
    // Two changes: seq 1 from the bus, then seq 2 (not 1 again) from the read's rows.
    expect(f.notifications()).toBe(2);
    // Seq 1 was taken from the bus, so it did not ask for another read.
    await sleep(100);
    expect(f.reads.events).toBe(1);

    f.feed.release();
    expect(f.hub.activeFeeds).toBe(0);
  });

  it("reads the store for a final status event from the bus, delivers it and ends", async () => {
    const f = await followed();
    const { streamed, stream } = followFromStart(f);
    const progress = await appendExecutionEvents(
      deps(),
      f.target,
      range(1, 2).map((i) => ({ channel: "progress" as const, body: { type: "execution.progress", i } })),
    );
    expect(f.feed.lastSeq).toBe(2);
    expect(f.reads.events).toBe(1); // taken from the bus
    const readsBefore = { ...f.reads };

    await store.db.update(executions).set({ status: "completed" }).where(eq(executions.id, f.executionId));
    const final = await appendExecutionEvent(deps(), f.target, "status", {
      type: "execution.status",
      status: "completed",
    });
    expect(final.seq).toBe(3);

    await until(() => f.feed.ended, "the feed to end");
    expect(f.feed.error).toBeUndefined();
    expect(f.reads.state).toBeGreaterThan(readsBefore.state);
    expect(f.reads.events).toBeGreaterThan(readsBefore.events);
    expect(f.reads["final-event"]).toBeGreaterThan(0);
    expect(seqsOf(bufferOf(f.feed))).toEqual([1, 2, 3]);
    expect(bufferOf(f.feed)[2]!.payload).toEqual(final);
    expect(seqsOf(f.delivered)).toEqual([1, 2, 3]);

    // The stream ends by itself after the final event.
    expect(seqsOf((await stream) as { seq: number }[])).toEqual([1, 2, 3]);
    expect(streamed.map((item) => (item.kind === "event" ? item.payload : undefined))).toEqual([
      ...progress,
      final,
    ]);
    f.feed.release();
    expect(f.hub.activeFeeds).toBe(0);
  });
});

describe("inJsonbKeyOrder", () => {
  it("orders keys as the store's jsonb gives them back, nested objects and arrays included", async () => {
    const event = {
      type: "execution.progress",
      seq: 12,
      at: "2026-12-07T18:20:19.485Z",
      entities: [{ entity: "public.a", total: 20, processed: 20, é: 1, zz: { b: 1, a: [{ yy: 2, x: 1 }] } }],
      executionId: "b57bf3e1-ab5e-48c6-a3d7-69060e78c0e7",
      final: true,
      ratio: 0.30000000000000004,
      none: null,
    };
    const rows = rowsOf<{ payload: unknown }>(
      await store.db.execute(sql`select ${JSON.stringify(event)}::jsonb as payload`),
    );
    expect(JSON.stringify(inJsonbKeyOrder(event))).toBe(JSON.stringify(rows[0]!.payload));
    // What the store gives back is already in that order.
    expect(inJsonbKeyOrder(rows[0]!.payload)).toEqual(rows[0]!.payload);
    expect(JSON.stringify(inJsonbKeyOrder(rows[0]!.payload))).toBe(JSON.stringify(rows[0]!.payload));
  });
});
