/**
 * Event streams share one store poll per execution, and open streams are
 * capped per token and per organisation (429 with Retry-After past a cap).
 */
import { silentLogger } from "@dray/common";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { followExecutionEvents, type StreamItem } from "../src/executions/event-stream.js";
import { ExecutionEventHub, type StoreReadKind } from "../src/executions/execution-event-hub.js";
import { appendExecutionEvent } from "../src/executions/execution-events.js";
import type { EventChannel } from "../src/executions/execution-vocabulary.js";
import { MAX_STREAMS_PER_ORGANISATION, MAX_STREAMS_PER_TOKEN } from "../src/executions/stream-slots.js";
import { executionEvents, executions } from "../src/store/index.js";
import {
  type ExecutionsHarness,
  insertExecution,
  insertPipeline,
  openExecutionsHarness,
  readSse,
} from "./api-executions-fixtures.js";
import { errorOf } from "./api-test-harness.js";

let x: ExecutionsHarness;
let org: { id: string; admin: string; operator: string; viewer: string };
beforeAll(async () => {
  x = await openExecutionsHarness();
  org = await x.h.tenant("sse-feed");
});
afterAll(async () => {
  await x?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const append = (
  executionId: string,
  channel: EventChannel,
  body: { type: string } & Record<string, unknown>,
) =>
  appendExecutionEvent(
    { db: x.db, bus: x.bus, logger: silentLogger },
    { executionId, organisationId: org.id },
    channel,
    body,
  );

/** An in-progress execution with `events` progress events stored (seq 1…events). */
async function runningExecution(name: string, events = 1) {
  const pipeline = await insertPipeline(x.db, org.id, name);
  const row = await insertExecution(x.db, pipeline, {
    status: "in_progress",
    startedAt: new Date(),
    eventSeq: events,
  });
  const payload = (seq: number) => ({ type: "execution.progress", seq, executionId: row.id });
  for (let from = 1; from <= events; from += 500) {
    const seqs = Array.from({ length: Math.min(500, events - from + 1) }, (_, k) => from + k);
    await x.db.insert(executionEvents).values(
      seqs.map((seq) => ({
        executionId: row.id,
        seq,
        channel: "progress" as const,
        payload: payload(seq),
      })),
    );
  }
  return row;
}

async function complete(id: string) {
  await x.db.update(executions).set({ status: "completed" }).where(eq(executions.id, id));
  await append(id, "status", { type: "execution.status", status: "completed" });
}

/** The seqs a follower yields; `into` sees them as they come. */
async function collect(items: AsyncGenerator<StreamItem>, into: number[] = []): Promise<number[]> {
  for await (const item of items) if (item.kind === "event") into.push(item.seq);
  return into;
}

async function newViewerToken(name: string): Promise<string> {
  const res = await x.call("POST", "/api/v1/tokens", {
    token: x.h.systemToken,
    json: { name, role: "viewer", organisationId: org.id },
  });
  expect(res.status).toBe(201);
  return res.body.token as string;
}

const open = (id: string, token: string) =>
  x.app.request(`/api/v1/executions/${id}/events`, { headers: { authorization: `Bearer ${token}` } });

describe("shared execution feed", () => {
  it("serves 40 followers of one execution from one poll, each in seq order from its own resume point", async () => {
    const row = await runningExecution("feed-many", 3);
    const reads: Record<StoreReadKind, number> = { state: 0, events: 0, "final-event": 0, "catch-up": 0 };
    const hub = new ExecutionEventHub({
      db: x.db,
      bus: x.bus,
      pollMs: 100,
      onStoreRead: (kind) => void reads[kind]++,
    });
    const subscriptionsBefore = x.subscriptions();
    const followers = Array.from({ length: 40 }, (_, i) =>
      collect(
        followExecutionEvents({
          hub,
          organisationId: org.id,
          executionId: row.id,
          afterSeq: i % 4, // resumes after 0, 1, 2 or 3
          signal: new AbortController().signal,
        }),
      ),
    );
    await sleep(50);
    expect(hub.activeFeeds).toBe(1);
    expect(x.subscriptions() - subscriptionsBefore).toBe(1);
    const started = Date.now();
    const before = { ...reads };
    await sleep(1_000);
    await append(row.id, "progress", { type: "execution.progress", i: 3 });
    await complete(row.id);
    const results = await Promise.all(followers);
    const elapsed = Date.now() - started;
    results.forEach((seqs, i) => {
      const from = (i % 4) + 1;
      expect(seqs).toEqual(Array.from({ length: 6 - from }, (_, k) => from + k));
    });
    // One feed polls at most once per 100 ms (plus nudges); 40 own polls would be 40 times that.
    const maxPolls = Math.ceil(elapsed / 100) + 4;
    expect(reads.state - before.state).toBeLessThanOrEqual(maxPolls);
    expect(reads.events - before.events).toBeLessThanOrEqual(maxPolls);
    expect(reads["catch-up"]).toBeLessThanOrEqual(40); // at most one replay read per follower behind the feed
    expect(hub.activeFeeds).toBe(0);
    expect(x.subscriptions()).toBe(subscriptionsBefore);
  });

  it("stops the feed and its bus subscription when the last follower leaves", async () => {
    const row = await runningExecution("feed-leave");
    const hub = new ExecutionEventHub({ db: x.db, bus: x.bus });
    const subscriptionsBefore = x.subscriptions();
    const aborts = [new AbortController(), new AbortController()];
    const seen: number[][] = [[], []];
    const runs = aborts.map((a, i) =>
      collect(
        followExecutionEvents({
          hub,
          organisationId: org.id,
          executionId: row.id,
          afterSeq: 0,
          signal: a.signal,
        }),
        seen[i],
      ),
    );
    for (let i = 0; i < 200 && seen.some((s) => s.length === 0); i++) await sleep(25);
    expect([hub.activeFeeds, x.subscriptions() - subscriptionsBefore]).toEqual([1, 1]);
    aborts[0]!.abort();
    expect(await runs[0]).toEqual([1]);
    expect(hub.activeFeeds).toBe(1);
    aborts[1]!.abort();
    expect(await runs[1]).toEqual([1]);
    expect([hub.activeFeeds, x.subscriptions()]).toEqual([0, subscriptionsBefore]);
  });

  it("serves a follower that joins a running feed from an older Last-Event-ID, and one that is far behind", async () => {
    const row = await runningExecution("feed-late", 1_200);
    const hub = new ExecutionEventHub({ db: x.db, bus: x.bus, pollMs: 50 });
    const signal = new AbortController().signal;
    const first = collect(
      followExecutionEvents({ hub, organisationId: org.id, executionId: row.id, afterSeq: 1_150, signal }),
    );
    await sleep(100);
    const late = collect(
      followExecutionEvents({ hub, organisationId: org.id, executionId: row.id, afterSeq: 0, signal }),
    );
    await sleep(50);
    await complete(row.id);
    const [a, b] = await Promise.all([first, late]);
    expect(a).toEqual(Array.from({ length: 51 }, (_, k) => 1_151 + k));
    expect(b).toEqual(Array.from({ length: 1_201 }, (_, k) => k + 1));
  });
});

describe("GET /api/v1/executions/:id/events: one poll, capped streams", () => {
  it("treats a Last-Event-ID beyond the stored events as 'from now', so it cannot stall the other streams", async () => {
    const row = await runningExecution("feed-future-id", 2);
    const future = await x.app.request(`/api/v1/executions/${row.id}/events`, {
      headers: { authorization: `Bearer ${org.viewer}`, "last-event-id": "999999999999999" },
    });
    expect(future.status).toBe(200);
    const futureRead = readSse(future, { timeoutMs: 5_000 });
    await sleep(100);
    const plain = await open(row.id, org.viewer);
    const plainRead = readSse(plain, { timeoutMs: 5_000 });
    await sleep(100);
    await append(row.id, "progress", { type: "execution.progress" });
    await complete(row.id);
    const [a, b] = await Promise.all([futureRead, plainRead]);
    // both streams see the new events and end on the final status well before the 5 s timeout
    expect(a.messages.map((m) => m.id)).toEqual(["3", "4"]);
    expect(b.messages.map((m) => m.id)).toEqual(["1", "2", "3", "4"]);
    expect([a.ended, b.ended]).toEqual([true, true]);
  });

  it(`answers 429 with Retry-After past ${MAX_STREAMS_PER_TOKEN} streams of one token, and frees a slot on disconnect`, async () => {
    const row = await runningExecution("cap-token");
    const token = await newViewerToken("cap-token viewer");
    const subscriptionsBefore = x.subscriptions();
    const streams = await Promise.all(
      Array.from({ length: MAX_STREAMS_PER_TOKEN }, () => open(row.id, token)),
    );
    expect(streams.map((r) => r.status)).toEqual(streams.map(() => 200));
    const first = await Promise.all(streams.map((res) => readSse(res, { count: 1 })));
    expect(first.map((r) => r.messages[0]?.id)).toEqual(streams.map(() => "1"));
    // all of them (cancelled readers aside) shared one feed: one bus subscription at most
    expect(x.subscriptions() - subscriptionsBefore).toBeLessThanOrEqual(1);

    // the readers above cancelled their streams: every slot comes back (the shared feed stops with the last)
    for (let i = 0; i < 80 && x.subscriptions() > subscriptionsBefore; i++) await sleep(25);
    expect(x.subscriptions()).toBe(subscriptionsBefore);
    await sleep(25);
    const held = await Promise.all(Array.from({ length: MAX_STREAMS_PER_TOKEN }, () => open(row.id, token)));
    expect(held.map((r) => r.status)).toEqual(held.map(() => 200));
    const refused = await open(row.id, token);
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toMatch(/^[1-9][0-9]*$/);
    const error = errorOf({ status: 429, headers: refused.headers, body: await refused.json() });
    expect(error.code).toBe("resource_exhausted");
    expect(error.message).toContain(`${MAX_STREAMS_PER_TOKEN} event streams`);
    // another token of the organisation is not affected
    const other = await open(row.id, org.viewer);
    expect(other.status).toBe(200);
    await other.body!.cancel();

    await held[0]!.body!.cancel();
    let again = 429;
    for (let i = 0; i < 40 && again === 429; i++) {
      await sleep(25);
      const res = await open(row.id, token);
      again = res.status;
      await res.body?.cancel();
    }
    expect(again).toBe(200);
    await Promise.all(held.slice(1).map((r) => r.body!.cancel()));
    await complete(row.id);
  });

  it(`answers 429 past ${MAX_STREAMS_PER_ORGANISATION} streams of one organisation`, async () => {
    const row = await runningExecution("cap-org");
    const subscriptionsBefore = x.subscriptions();
    const tokens = await Promise.all(
      Array.from({ length: MAX_STREAMS_PER_ORGANISATION / MAX_STREAMS_PER_TOKEN }, (_, i) =>
        newViewerToken(`cap-org viewer ${i}`),
      ),
    );
    const held = await Promise.all(
      tokens.flatMap((token) => Array.from({ length: MAX_STREAMS_PER_TOKEN }, () => open(row.id, token))),
    );
    expect(held.filter((r) => r.status === 200)).toHaveLength(MAX_STREAMS_PER_ORGANISATION);
    // 100 open streams of one execution: one shared feed, one bus subscription
    await Promise.all(held.map((res) => readFirst(res)));
    expect(x.subscriptions() - subscriptionsBefore).toBe(1);
    const refused = await open(row.id, await newViewerToken("cap-org late"));
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBeTruthy();
    expect(errorOf({ status: 429, headers: refused.headers, body: await refused.json() }).message).toContain(
      `organisation already has ${MAX_STREAMS_PER_ORGANISATION} event streams`,
    );
    // every held stream still gets the events, then ends with the final status
    await complete(row.id);
    const ends = await Promise.all(held.map((res) => readRest(res)));
    expect(ends.every((r) => r.ended && r.ids.join() === "2")).toBe(true);
    const after = await open(row.id, tokens[0]!);
    expect(after.status).toBe(200);
    await after.body!.cancel();
  });
});

const decoder = new TextDecoder();
const readers = new WeakMap<Response, ReadableStreamDefaultReader<Uint8Array>>();

/** Reads a stream until its first event arrived (the stream stays open). */
async function readFirst(res: Response): Promise<void> {
  const reader = res.body!.getReader();
  readers.set(res, reader);
  let text = "";
  while (!text.includes("\n\n")) {
    const { done, value } = await reader.read();
    if (done) throw new Error("stream ended before its first event");
    text += decoder.decode(value);
  }
}

/** Reads the rest of a stream opened with {@link readFirst}: the ids of the events after the first. */
async function readRest(res: Response): Promise<{ ids: string[]; ended: boolean }> {
  const reader = readers.get(res)!;
  let text = "";
  let timedOut = false;
  const timeout = setTimeout(() => {
    timedOut = true;
    void reader.cancel();
  }, 8_000);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value);
  }
  clearTimeout(timeout);
  const ended = !timedOut;
  const ids = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => m[1]!);
  return { ids, ended };
}
