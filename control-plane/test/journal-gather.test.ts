import { asc, eq, sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import type { EventBus } from "../src/events/event-bus.js";
import { executionErrorEvent, stageLogEvent } from "../src/executions/stage-log.js";
import {
  createJournal,
  DEFAULT_GATHER_MS,
  DEFAULT_MIN_INTERVAL_MS,
  type JournalOptions,
} from "../src/executor/journal.js";
import type { StageEntry } from "../src/executor/run-context.js";
import { executionErrors, executionEvents, executionLog, rowsOf } from "../src/store/index.js";
import { recordingLogger } from "./api-test-harness.js";
import { useCountingStore } from "./counting-store.js";
import { seedOrganisation, seedRunningExecution } from "./execution-fixtures.js";

const counting = useCountingStore();

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/** Lets every pending promise callback run, and nothing that waits on a timer. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Polls `check` (on the store's own client) until it is true or `timeoutMs` passed; says which. */
async function eventually(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (performance.now() > deadline) return false;
    await sleep(5);
  }
}

/** An in-progress execution of a new organisation and pipeline. */
async function seedExecution(): Promise<{ executionId: string; organisationId: string }> {
  const org = await seedOrganisation(counting.store.db);
  const { executionId } = await seedRunningExecution(counting.store.db, org);
  return { executionId, organisationId: org.organisationId };
}

/** A bus that keeps the msgIds it was given, in order, and acknowledges each. */
function recordingBus() {
  const published: (string | undefined)[] = [];
  const bus: EventBus = {
    async publish(_subject, _event, options) {
      published.push(options?.msgId);
      return true;
    },
    subscribe: () => ({ unsubscribe() {} }),
    close: async () => {},
  };
  return { bus, published };
}

/** A journal of a new execution that writes through the counting client, its statements cleared. */
async function countedJournal(options?: JournalOptions) {
  const target = await seedExecution();
  const { bus, published } = recordingBus();
  const logger = recordingLogger();
  const journal = createJournal({ db: counting.db, bus, logger }, target, options);
  counting.statements.length = 0;
  return { target, journal, published, logger };
}

const begins = () => counting.statements.filter((s) => s.query === "begin");

const stageEntry = (description: string): StageEntry => ({
  processName: "PostgresLoader",
  state: "processing",
  code: "processing",
  description,
  entity: "public.customers",
});

async function logRowsOf(executionId: string) {
  return counting.store.db
    .select()
    .from(executionLog)
    .where(eq(executionLog.executionId, executionId))
    .orderBy(asc(executionLog.id));
}

async function errorRowsOf(executionId: string) {
  return counting.store.db
    .select()
    .from(executionErrors)
    .where(eq(executionErrors.executionId, executionId))
    .orderBy(asc(executionErrors.id));
}

async function storedEvents(executionId: string) {
  return counting.store.db
    .select()
    .from(executionEvents)
    .where(eq(executionEvents.executionId, executionId))
    .orderBy(asc(executionEvents.seq));
}

/** How many transactions wrote the execution's stage-log and error rows (distinct xmin). */
async function writingTransactions(executionId: string): Promise<number | undefined> {
  const [row] = rowsOf<{ n: number }>(
    await counting.store.db.execute(sql`
      select count(distinct x)::int as n from (
        select xmin::text as x from execution_log where execution_id = ${executionId}
        union all select xmin::text from execution_errors where execution_id = ${executionId}) rows`),
  );
  return row?.n;
}

describe("the journal gathers entries for a short window before it writes", () => {
  it("writes entries queued a few ms apart within the window in one transaction, when the window ends, seqs in call order", async () => {
    const { target, journal, published, logger } = await countedJournal({ gatherMs: 200 });
    const { executionId } = target;

    const queuedAt = performance.now();
    void journal.stage(stageEntry("loading customers"));
    await sleep(20);
    void journal.error({ severity: "warning", entity: "public.customers", message: "truncated a value" });
    await sleep(20);
    void journal.status("in_progress", { step: 3 });
    // All three were queued inside the window, and nothing has been written yet.
    expect(performance.now() - queuedAt).toBeLessThan(200);
    expect(counting.statements).toEqual([]);

    // The window ends by itself (no flush): the three are written together.
    expect(await eventually(async () => (await storedEvents(executionId)).length === 3, 2_000)).toBe(true);
    await journal.flush();

    expect(begins()).toHaveLength(1);
    // The writer began after the window, not at the first entry (timers may fire a hair early).
    expect(begins()[0]!.at - queuedAt).toBeGreaterThanOrEqual(190);
    expect(await writingTransactions(executionId)).toBe(1);

    const [logRow] = await logRowsOf(executionId);
    const [errorRow] = await errorRowsOf(executionId);
    const events = await storedEvents(executionId);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(
      events.map((e) => {
        const { seq: _seq, executionId: _execution, at: _at, ...body } = e.payload as Record<string, unknown>;
        return { channel: e.channel, body };
      }),
    ).toEqual(
      JSON.parse(
        JSON.stringify([
          { channel: "log", body: stageLogEvent(logRow!) },
          { channel: "log", body: executionErrorEvent(errorRow!) },
          { channel: "status", body: { type: "execution.status", status: "in_progress", step: 3 } },
        ]),
      ),
    );
    expect(published).toEqual([1, 2, 3].map((seq) => `${executionId}:${seq}`));
    expect(logger.lines.filter((l) => l.level === "warn")).toEqual([]);
  });

  it("flush() ends a pending window at once, and the next entry waits for a window again", async () => {
    const { target, journal, logger } = await countedJournal({ gatherMs: 5_000 });
    const { executionId } = target;

    void journal.stage(stageEntry("first"));
    const started = performance.now();
    await journal.flush();
    expect(performance.now() - started).toBeLessThan(2_000);
    expect((await logRowsOf(executionId)).map((r) => r.description)).toEqual(["first"]);
    expect(begins()).toHaveLength(1);

    // The flush is over: an entry queued after it is gathered again, not written at once.
    void journal.stage(stageEntry("second"));
    await sleep(150);
    expect(begins()).toHaveLength(1);
    expect((await logRowsOf(executionId)).map((r) => r.description)).toEqual(["first"]);
    const again = performance.now();
    await journal.flush();
    expect(performance.now() - again).toBeLessThan(2_000);
    expect((await logRowsOf(executionId)).map((r) => r.description)).toEqual(["first", "second"]);
    expect(begins()).toHaveLength(2);
    expect(logger.lines.filter((l) => l.level === "warn")).toEqual([]);
  });

  it("with a window of 0 writes the first entry without waiting: entries 100 ms apart go in two transactions", async () => {
    const { target, journal, logger } = await countedJournal({ gatherMs: 0 });
    const { executionId } = target;

    void journal.stage(stageEntry("first"));
    await sleep(100);
    // Already stored, without a flush.
    expect((await logRowsOf(executionId)).map((r) => r.description)).toEqual(["first"]);
    void journal.error({ severity: "error", entity: "public.customers", message: "rejected a row" });
    await journal.flush();

    expect(begins()).toHaveLength(2);
    expect(await writingTransactions(executionId)).toBe(2);
    expect((await errorRowsOf(executionId)).map((r) => r.message)).toEqual(["rejected a row"]);
    expect((await storedEvents(executionId)).map((e) => e.seq)).toEqual([1, 2]);
    expect(logger.lines.filter((l) => l.level === "warn")).toEqual([]);
  });

  it("with a window of 0 the writer takes the queue before any timer could fire: an entry one event-loop turn later is written apart", async () => {
    const { target, journal } = await countedJournal({ gatherMs: 0 });
    const { executionId } = target;

    void journal.stage(stageEntry("first"));
    await nextTurn();
    void journal.stage(stageEntry("second"));
    await journal.flush();

    expect(begins()).toHaveLength(2);
    expect(await writingTransactions(executionId)).toBe(2);
    expect((await logRowsOf(executionId)).map((r) => r.description)).toEqual(["first", "second"]);
  });

  it("gathers for DEFAULT_GATHER_MS (15 ms) by default, then writes without a flush", async () => {
    expect(DEFAULT_GATHER_MS).toBe(15);
    const { target, journal, logger } = await countedJournal();
    const { executionId } = target;

    const queuedAt = performance.now();
    void journal.stage(stageEntry("first"));
    // One event-loop turn later is within the window (unlike with a window of 0): same transaction.
    await nextTurn();
    void journal.stage(stageEntry("second"));
    expect(await eventually(async () => (await logRowsOf(executionId)).length === 2, 1_000)).toBe(true);

    expect(begins()).toHaveLength(1);
    // The writer waited about the window before it began (timers may fire a little early).
    expect(begins()[0]!.at - queuedAt).toBeGreaterThanOrEqual(DEFAULT_GATHER_MS - 5);
    expect(await writingTransactions(executionId)).toBe(1);
    await journal.flush();
    expect(logger.lines.filter((l) => l.level === "warn")).toEqual([]);
  });

  it("writes a busy run's entries at most every minIntervalMs: the next write waits for the interval, not only the window", async () => {
    expect(DEFAULT_MIN_INTERVAL_MS).toBe(60);
    const { target, journal } = await countedJournal({ gatherMs: 5, minIntervalMs: 400 });
    const { executionId } = target;

    void journal.stage(stageEntry("first"));
    expect(await eventually(async () => (await logRowsOf(executionId)).length === 1, 2_000)).toBe(true);
    const firstBegan = begins()[0]!.at;
    void journal.stage(stageEntry("second"));
    void journal.stage(stageEntry("third"));
    expect(await eventually(async () => (await logRowsOf(executionId)).length === 3, 5_000)).toBe(true);

    // Two writes: the second one began the interval after the first, not the 5 ms window after its entry.
    expect(begins()).toHaveLength(2);
    expect(begins()[1]!.at - firstBegan).toBeGreaterThanOrEqual(390);
    await journal.flush();
  });

  it("stamps a stage-log or error row with the time its entry was made, not the time it was written", async () => {
    const { target, journal } = await countedJournal({ gatherMs: 300 });
    const { executionId } = target;

    const before = Date.now();
    void journal.stage(stageEntry("made now"));
    void journal.error({ severity: "warning", entity: "public.customers", message: "made now too" });
    const after = Date.now();
    await sleep(50);
    await journal.flush();

    const [logRow] = await logRowsOf(executionId);
    const [errorRow] = await errorRowsOf(executionId);
    for (const row of [logRow!, errorRow!]) {
      expect(row.at.getTime()).toBeGreaterThanOrEqual(before);
      expect(row.at.getTime()).toBeLessThanOrEqual(after);
    }
    // The write came at least 50 ms later; the live event carries the row's time.
    const events = await storedEvents(executionId);
    expect((events[0]!.payload as { dateTime: string }).dateTime).toBe(logRow!.at.toISOString());
  });
});
