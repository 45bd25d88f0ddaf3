/**
 * The executor's journal writes what was queued in batches (issue 10 item 9):
 * every entry queued when the writer runs goes to the store in one
 * transaction, its events take consecutive seqs in call order, bodies are
 * built from the stored rows, events are published in order and marked in one
 * statement, a refused publish leaves the rest to the republisher, and one
 * entry the store refuses does not take the others with it. Real Postgres.
 */
import { silentLogger } from "@dray/common";
import { asc, eq, sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import type { DrayEvent, EventBus } from "../src/events/event-bus.js";
import { createEventRepublisher } from "../src/events/event-republisher.js";
import { executionErrorEvent, stageLogEvent } from "../src/executions/stage-log.js";
import { createJournal } from "../src/executor/journal.js";
import type { Journal } from "../src/executor/run-context.js";
import { executionErrors, executionEvents, executionLog, executions, rowsOf } from "../src/store/index.js";
import { recordingLogger } from "./api-test-harness.js";
import { useCountingStore } from "./counting-store.js";
import { seedOrganisation, seedRunningExecution } from "./execution-fixtures.js";

const counting = useCountingStore();

/** An in-progress execution of a new organisation and pipeline. */
async function seedExecution(): Promise<{ executionId: string; organisationId: string }> {
  const org = await seedOrganisation(counting.store.db);
  const { executionId } = await seedRunningExecution(counting.store.db, org);
  return { executionId, organisationId: org.organisationId };
}

interface Published {
  subject: string;
  msgId: string | undefined;
  event: DrayEvent;
}

/** A bus that keeps what it was given; `answer` says whether NATS acknowledged (default: yes). */
function recordingBus(answer: (msgId: string) => boolean | Promise<boolean> = () => true) {
  const published: Published[] = [];
  const bus: EventBus = {
    async publish(subject, event, options) {
      const msgId = options?.msgId;
      const acknowledged = await answer(msgId ?? "");
      if (acknowledged) published.push({ subject, msgId, event });
      return acknowledged;
    },
    subscribe: () => ({ unsubscribe() {} }),
    close: async () => {},
  };
  return { bus, published };
}

async function storedEvents(executionId: string) {
  return counting.store.db
    .select()
    .from(executionEvents)
    .where(eq(executionEvents.executionId, executionId))
    .orderBy(asc(executionEvents.seq));
}

/** A stored payload without what the outbox adds (seq, executionId, at), after checking those. */
function bodyOf(payload: unknown, executionId: string, seq: number): Record<string, unknown> {
  const { seq: s, executionId: e, at, ...body } = payload as Record<string, unknown>;
  expect([s, e, typeof at]).toEqual([seq, executionId, "string"]);
  return body;
}

describe("the journal writes what is queued in batches", () => {
  it("writes 100 calls queued at once in one transaction, events in call order with consecutive seqs, all published and marked", async () => {
    const target = await seedExecution();
    const { executionId } = target;
    const { bus, published } = recordingBus();
    const journal = createJournal({ db: counting.db, bus, logger: silentLogger }, target);
    // One event already taken (e.g. the queued status): the batch continues from seq 2.
    await counting.store.db.update(executions).set({ eventSeq: 1 }).where(eq(executions.id, executionId));

    type Call = "stage" | "error" | "progress" | "status" | "errors";
    const calls: Call[] = [];
    counting.statements.length = 0;
    for (let i = 0; i < 99; i++) {
      const call = (["stage", "error", "progress", "status"] as const)[i % 4]!;
      calls.push(call);
      if (call === "stage")
        void journal.stage({
          processName: "PostgresLoader",
          state: "processing",
          code: "processing",
          description: `entry ${i}`,
          entity: `public.t${i}`,
        });
      else if (call === "error")
        void journal.error({
          severity: "warning",
          entity: `public.t${i}`,
          message: `warning ${i}`,
          code: "W1",
        });
      else if (call === "progress") void journal.progress({ processed: i });
      else void journal.status("in_progress", { n: i });
    }
    calls.push("errors");
    void journal.errors(
      Array.from({ length: 25 }, (_, k) => ({
        severity: "error" as const,
        entity: "public.orders",
        recordKey: [String(k)],
        field: "total",
        code: "23514",
        message: `rejected ${k}`,
      })),
    );
    await journal.flush();

    // One transaction: the rows, the seqs and the events; then one statement marks the published.
    const sent = counting.statements.map((s) => s.query).filter((s) => s !== "begin" && s !== "commit");
    expect(counting.statements.filter((s) => s.query === "begin")).toHaveLength(1);
    expect(sent.map((s) => s.split(/\s+/).slice(0, 3).join(" "))).toEqual([
      'insert into "execution_log"',
      'insert into "execution_errors"',
      'update "executions" set',
      'insert into "execution_events"',
      'update "execution_events" set',
    ]);
    const [xmins] = rowsOf<{ n: number }>(
      await counting.store.db.execute(sql`
      select count(distinct x)::int as n from (
        select xmin::text as x from execution_log where execution_id = ${executionId}
        union all select xmin::text from execution_errors where execution_id = ${executionId}) rows`),
    );
    expect(xmins?.n).toBe(1);

    const logRows = await counting.store.db
      .select()
      .from(executionLog)
      .where(eq(executionLog.executionId, executionId))
      .orderBy(asc(executionLog.id));
    const errorRows = await counting.store.db
      .select()
      .from(executionErrors)
      .where(eq(executionErrors.executionId, executionId))
      .orderBy(asc(executionErrors.id));
    expect(logRows.map((r) => r.description)).toEqual(
      calls.flatMap((c, i) => (c === "stage" ? [`entry ${i}`] : [])),
    );
    expect(errorRows.map((r) => r.message)).toEqual([
      ...calls.flatMap((c, i) => (c === "error" ? [`warning ${i}`] : [])),
      ...Array.from({ length: 25 }, (_, k) => `rejected ${k}`),
    ]);

    // The events, as the calls were made, bodies built from the stored rows.
    const expected: { channel: string; body: Record<string, unknown> }[] = [];
    let [nextLog, nextError] = [0, 0];
    calls.forEach((call, i) => {
      if (call === "stage") expected.push({ channel: "log", body: stageLogEvent(logRows[nextLog++]!) });
      else if (call === "error")
        expected.push({ channel: "log", body: executionErrorEvent(errorRows[nextError++]!) });
      else if (call === "progress")
        expected.push({ channel: "progress", body: { type: "execution.progress", processed: i } });
      else if (call === "status")
        expected.push({ channel: "status", body: { type: "execution.status", status: "in_progress", n: i } });
      else {
        const rows = errorRows.slice(nextError);
        for (const row of rows.slice(0, 20))
          expected.push({ channel: "log", body: executionErrorEvent(row) });
        expected.push({
          channel: "log",
          body: {
            ...executionErrorEvent(rows.at(-1)!),
            recordKey: null,
            field: null,
            message: "… and 5 more like these in public.orders: every one is in the error log",
          },
        });
      }
    });
    const events = await storedEvents(executionId);
    expect(events).toHaveLength(99 + 21);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 2));
    expect(events.map((e) => ({ channel: e.channel, body: bodyOf(e.payload, executionId, e.seq) }))).toEqual(
      JSON.parse(JSON.stringify(expected)),
    );
    const [execution] = await counting.store.db
      .select({ eventSeq: executions.eventSeq })
      .from(executions)
      .where(eq(executions.id, executionId));
    expect(execution?.eventSeq).toBe(events.at(-1)!.seq);

    // Published in order with msgId <executionId>:<seq> on the channel's subject, each marked.
    expect(published.map((p) => p.msgId)).toEqual(events.map((e) => `${executionId}:${e.seq}`));
    expect(published.map((p) => p.subject)).toEqual(
      events.map((e) => `dray.${target.organisationId}.executions.${executionId}.${e.channel}`),
    );
    expect(published.map((p) => p.event)).toEqual(events.map((e) => e.payload));
    expect(events.every((e) => e.publishedAt instanceof Date)).toBe(true);
  });

  it("stops publishing at the first event NATS refuses, marks only those before it, and the republisher sends the rest in order", async () => {
    const target = await seedExecution();
    const { executionId } = target;
    const { bus, published } = recordingBus((msgId) => msgId !== `${executionId}:3`);
    const journal = createJournal({ db: counting.store.db, bus, logger: silentLogger }, target);
    for (let n = 0; n < 6; n++) void journal.progress({ n });
    await journal.flush();
    expect(published.map((p) => p.msgId)).toEqual([`${executionId}:1`, `${executionId}:2`]);
    const events = await storedEvents(executionId);
    expect(events.map((e) => [e.seq, e.publishedAt !== null])).toEqual([
      [1, true],
      [2, true],
      [3, false],
      [4, false],
      [5, false],
      [6, false],
    ]);

    const later = recordingBus();
    const republisher = createEventRepublisher({
      db: counting.store.db,
      bus: later.bus,
      logger: silentLogger,
      graceMs: 0,
    });
    await republisher.runOnce();
    expect(later.published.map((p) => p.msgId)).toEqual([3, 4, 5, 6].map((seq) => `${executionId}:${seq}`));
    expect((await storedEvents(executionId)).every((e) => e.publishedAt !== null)).toBe(true);
  });

  it("logs an entry the store refuses and still writes the others of its batch, in order", async () => {
    const target = await seedExecution();
    const { executionId } = target;
    const { bus, published } = recordingBus();
    const logger = recordingLogger();
    const journal = createJournal({ db: counting.store.db, bus, logger }, target);
    void journal.stage({
      processName: "JobRunner",
      state: "begin",
      code: "begin",
      description: "Process started",
    });
    // Postgres text cannot hold a NUL character: this entry cannot be stored.
    void journal.error({ severity: "error", message: "bad \u0000 byte" });
    void journal.status("in_progress");
    await expect(journal.flush()).resolves.toBeUndefined();

    expect(logger.lines.filter((l) => l.level === "warn").map((l) => l.message)).toEqual([
      "could not record an execution error",
    ]);
    const [logRow] = await counting.store.db
      .select()
      .from(executionLog)
      .where(eq(executionLog.executionId, executionId));
    const errors = await counting.store.db
      .select()
      .from(executionErrors)
      .where(eq(executionErrors.executionId, executionId));
    expect(errors).toHaveLength(0);
    const events = await storedEvents(executionId);
    expect(events.map((e) => ({ seq: e.seq, body: bodyOf(e.payload, executionId, e.seq) }))).toEqual([
      { seq: 1, body: JSON.parse(JSON.stringify(stageLogEvent(logRow!))) },
      { seq: 2, body: { type: "execution.status", status: "in_progress" } },
    ]);
    expect(published.map((p) => p.msgId)).toEqual([`${executionId}:1`, `${executionId}:2`]);
  });

  it("flush waits for entries queued while a write is under way, and keeps their order", async () => {
    const target = await seedExecution();
    const { executionId } = target;
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let publishing!: () => void;
    const firstPublish = new Promise<void>((resolve) => {
      publishing = resolve;
    });
    // NATS holds the first publish until the test releases it.
    const { bus, published } = recordingBus(async (msgId) => {
      if (msgId === `${executionId}:1`) {
        publishing();
        await released;
      }
      return true;
    });
    const journal: Journal = createJournal({ db: counting.store.db, bus, logger: silentLogger }, target);
    await journal.progress({ n: 0 });
    await firstPublish;
    // The writer is busy with the first entry: these wait for the next write, together.
    for (let n = 1; n <= 5; n++) await journal.progress({ n });
    const flushed = journal.flush();
    release();
    await flushed;
    const events = await storedEvents(executionId);
    expect(events.map((e) => [e.seq, (e.payload as { n: number }).n, e.publishedAt !== null])).toEqual(
      [0, 1, 2, 3, 4, 5].map((n) => [n + 1, n, true]),
    );
    expect(published.map((p) => p.msgId)).toEqual([1, 2, 3, 4, 5, 6].map((seq) => `${executionId}:${seq}`));
    const [xmins] = rowsOf<{ n: number }>(
      await counting.store.db.execute(sql`
      select count(distinct xmin::text)::int as n from execution_events
      where execution_id = ${executionId} and seq > 1`),
    );
    // Seqs 2..6 were marked published by one statement (their rows carry its transaction's id).
    expect(xmins?.n).toBe(1);
  });
});
