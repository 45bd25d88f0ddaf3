import { silentLogger } from "@dray/common";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { followExecutionEvents } from "../src/executions/event-stream.js";
import { appendExecutionEvent } from "../src/executions/execution-events.js";
import type { EventChannel } from "../src/executions/execution-vocabulary.js";
import { executionEvents, executions } from "../src/store/index.js";
import {
  type ExecutionsHarness,
  insertExecution,
  insertPipeline,
  openExecutionsHarness,
  readSse,
  type SseMessage,
} from "./api-executions-fixtures.js";
import { errorOf } from "./api-test-harness.js";

let x: ExecutionsHarness;
let org: { id: string; admin: string; operator: string; viewer: string };
let other: typeof org;
beforeAll(async () => {
  x = await openExecutionsHarness();
  org = await x.h.tenant("sse");
  other = await x.h.tenant("sse-other");
});
afterAll(async () => {
  await x?.close();
});

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

const connect = (
  id: string,
  options: { token?: string; query?: string; headers?: Record<string, string> } = {},
) =>
  x.app.request(`/api/v1/executions/${id}/events${options.query ?? ""}`, {
    headers: {
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...options.headers,
    },
  });

/** A finished execution with five events: queued, stage, in_progress, progress, completed. */
async function finishedExecution(name: string) {
  const pipeline = await insertPipeline(x.db, org.id, name);
  const row = await insertExecution(x.db, pipeline, { status: "queued" });
  await append(row.id, "status", { type: "execution.status", status: "queued" });
  await append(row.id, "log", { type: "execution.stage", processName: "StreamNotifier" });
  await append(row.id, "status", { type: "execution.status", status: "in_progress" });
  await append(row.id, "progress", { type: "execution.progress", processed: 10 });
  await x.db.update(executions).set({ status: "completed" }).where(eq(executions.id, row.id));
  await append(row.id, "status", { type: "execution.status", status: "completed" });
  return row;
}

const summary = (messages: SseMessage[]) =>
  messages.map((m) => [m.id, m.event, (JSON.parse(m.data) as { seq: number }).seq]);

describe("GET /api/v1/executions/:id/events", () => {
  it("replays every stored event in seq order and ends once the execution is final", async () => {
    const row = await finishedExecution("sse-replay");
    const res = await connect(row.id, { token: org.viewer });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const { messages, ended } = await readSse(res);
    expect(ended).toBe(true);
    expect(summary(messages)).toEqual([
      ["1", "execution.status", 1],
      ["2", "execution.stage", 2],
      ["3", "execution.status", 3],
      ["4", "execution.progress", 4],
      ["5", "execution.status", 5],
    ]);
    const stored = await x.db.select().from(executionEvents).where(eq(executionEvents.executionId, row.id));
    expect(messages.map((m) => JSON.parse(m.data))).toEqual(
      stored.sort((a, b) => a.seq - b.seq).map((e) => e.payload),
    );
  });

  it("resumes after Last-Event-ID (header, or ?lastEventId= for a first EventSource connect)", async () => {
    const row = await finishedExecution("sse-resume");
    const byHeader = await readSse(
      await connect(row.id, { token: org.viewer, headers: { "last-event-id": "3" } }),
    );
    expect(summary(byHeader.messages)).toEqual([
      ["4", "execution.progress", 4],
      ["5", "execution.status", 5],
    ]);
    const byQuery = await readSse(await connect(row.id, { token: org.viewer, query: "?lastEventId=4" }));
    expect(summary(byQuery.messages)).toEqual([["5", "execution.status", 5]]);
    // A reconnecting EventSource sends the header; it wins over the URL's original value.
    const both = await readSse(
      await connect(row.id, {
        token: org.viewer,
        query: "?lastEventId=1",
        headers: { "last-event-id": "4" },
      }),
    );
    expect(summary(both.messages)).toEqual([["5", "execution.status", 5]]);
    const caughtUp = await readSse(
      await connect(row.id, { token: org.viewer, headers: { "last-event-id": "5" } }),
    );
    expect(caughtUp).toMatchObject({ messages: [], ended: true });
    const bad = await connect(row.id, { token: org.viewer, headers: { "last-event-id": "abc" } });
    expect(bad.status).toBe(400);
  });

  it("delivers events appended after connecting, via the bus or the table poll, and ends on the final status", async () => {
    const pipeline = await insertPipeline(x.db, org.id, "sse-live");
    const row = await insertExecution(x.db, pipeline, { status: "in_progress", startedAt: new Date() });
    await append(row.id, "status", { type: "execution.status", status: "in_progress" });
    const res = await connect(row.id, { token: org.viewer });
    expect(res.status).toBe(200);
    const seen: SseMessage[] = [];
    const waitFor = async (n: number) => {
      for (let i = 0; i < 100 && seen.length < n; i++) await new Promise((r) => setTimeout(r, 25));
      expect(seen.length).toBeGreaterThanOrEqual(n);
    };
    const reading = readSse(res, { onMessage: (m) => seen.push(m), timeoutMs: 8_000 });
    await waitFor(1);
    const published = Date.now();
    await append(row.id, "progress", { type: "execution.progress", processed: 5 });
    await waitFor(2);
    expect(Date.now() - published).toBeLessThan(900); // nudged by the bus, not the 1 s poll
    // An event stored without a publish (another replica, bus down) arrives through the poll.
    await x.db.transaction(async (tx) => {
      await tx.update(executions).set({ eventSeq: 3 }).where(eq(executions.id, row.id));
      await tx.insert(executionEvents).values({
        executionId: row.id,
        seq: 3,
        channel: "log",
        payload: { type: "execution.stage", seq: 3, executionId: row.id },
      });
    });
    await waitFor(3);
    await x.db.update(executions).set({ status: "completed" }).where(eq(executions.id, row.id));
    await append(row.id, "status", { type: "execution.status", status: "completed" });
    const { messages, ended } = await reading;
    expect(ended).toBe(true);
    expect(summary(messages)).toEqual([
      ["1", "execution.status", 1],
      ["2", "execution.progress", 2],
      ["3", "execution.stage", 3],
      ["4", "execution.status", 4],
    ]);
  });

  it("lets go of its bus subscription when the client disconnects, and pings while idle", async () => {
    const pipeline = await insertPipeline(x.db, org.id, "sse-leave");
    const row = await insertExecution(x.db, pipeline, { status: "in_progress" });
    await append(row.id, "status", { type: "execution.status", status: "in_progress" });
    const before = x.subscriptions();
    const res = await connect(row.id, { token: org.viewer });
    const { messages, ended } = await readSse(res, { count: 1 });
    expect([messages.length, ended]).toEqual([1, false]);
    for (let i = 0; i < 40 && x.subscriptions() > before; i++) await new Promise((r) => setTimeout(r, 25));
    expect(x.subscriptions()).toBe(before);

    const abort = new AbortController();
    const items = [];
    for await (const item of followExecutionEvents({
      db: x.db,
      bus: x.bus,
      organisationId: org.id,
      executionId: row.id,
      afterSeq: 1,
      signal: abort.signal,
      pingMs: 30,
    })) {
      items.push(item);
      if (items.length === 2) abort.abort();
    }
    expect(items).toEqual([{ kind: "ping" }, { kind: "ping" }]);
    expect(x.subscriptions()).toBe(before);
  });

  it("ends a final execution that has no final status event after a short grace", async () => {
    const pipeline = await insertPipeline(x.db, org.id, "sse-grace");
    const row = await insertExecution(x.db, pipeline, { status: "failed" });
    await append(row.id, "log", { type: "execution.stage", processName: "JobRunner" });
    const startedAt = Date.now();
    const { messages, ended } = await readSse(await connect(row.id, { token: org.viewer }), {
      timeoutMs: 6_000,
    });
    expect(ended).toBe(true);
    expect(messages).toHaveLength(1);
    expect(Date.now() - startedAt).toBeLessThan(4_500);
  });

  it("accepts the token as ?token= (EventSource) and refuses a missing, invalid or foreign one", async () => {
    const row = await finishedExecution("sse-auth");
    const viaQuery = await connect(row.id, { query: `?token=${encodeURIComponent(org.viewer)}` });
    expect(viaQuery.status).toBe(200);
    expect((await readSse(viaQuery)).messages).toHaveLength(5);

    const missing = await connect(row.id);
    expect(missing.status).toBe(401);
    expect(missing.headers.get("www-authenticate")).toContain("Bearer");
    expect(errorOf({ status: 401, headers: missing.headers, body: await missing.json() }).code).toBe(
      "unauthenticated",
    );
    expect((await connect(row.id, { query: "?token=dray_nope" })).status).toBe(401);
    expect((await connect(row.id, { token: "dray_nope", query: `?token=${org.viewer}` })).status).toBe(401);
    expect((await connect(row.id, { token: other.admin })).status).toBe(404);
    expect((await connect("not-a-uuid", { token: org.viewer })).status).toBe(404);
    expect((await connect(row.id, { token: x.h.systemToken })).status).toBe(403);
    // The query token is accepted on this route only.
    const elsewhere = await x.call("GET", `/api/v1/executions/${row.id}?token=${org.viewer}`);
    expect(elsewhere.status).toBe(401);
  });
});
