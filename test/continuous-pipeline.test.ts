/**
 * Continuous pipelines end to end (control plane and agents as real
 * processes): START copies what is there and then new and changed rows poll
 * after poll, a transaction that commits late is not passed over, STOP ends
 * the execution `completed` at a batch boundary and a new START continues
 * from the positions reached, idle polls follow batchIntervalMs, reconcile
 * removes target rows deleted at the source, and bad requests are refused.
 */
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { eventually } from "./support/api-client.js";
import {
  continuousRows,
  continuousTable,
  createContinuousPipeline,
  polledRows,
  postReconcile,
  postStart,
  postStop,
  rowDifferences,
  sleep,
  stageLog,
  startContinuous,
  stopAndWait,
  stopQuietly,
  waitForPolls,
  waitForSameRows,
} from "./support/continuous.js";
import {
  type DrayStack,
  type StackEnvironment,
  startDrayStack,
  waitForExecution,
} from "./support/dray-stack.js";
import {
  allPages,
  countRows,
  createPipeline,
  executionOf,
  tableDigest,
  waitForAgentSleep,
} from "./support/executions.js";

/** Old enough that every row sharing it is under the high-water mark from the first poll. */
const PAST = "timestamptz '2024-03-01 12:00:00+00'";

/** Target: every statement writing `slow_items` sleeps 0.3 s, so a batch is in flight long enough to stop in. */
const SLOW_TARGET = `
  create function slow_write() returns trigger language plpgsql as $$
  begin
    perform pg_sleep(0.3);
    return null;
  end $$;
  create trigger slow_write after insert or update on slow_items for each statement execute function slow_write();
  alter table slow_items enable always trigger slow_write;
`;

const TABLES = ["items", "late_items", "slow_items", "idle_items", "recon_items", "misc_items"];
const SCHEMA = TABLES.map(continuousTable).join("\n");

const SOURCE_DATA = [
  continuousRows("items", 1, 10_000, PAST),
  continuousRows("late_items", 1, 10, PAST),
  continuousRows("slow_items", 1, 3_000, PAST),
  continuousRows("idle_items", 1, 20, PAST),
  continuousRows("recon_items", 1, 20_500, PAST),
  continuousRows("misc_items", 1, 10, PAST),
].join("\n");

let stack: DrayStack;
let source: StackEnvironment;
let target: StackEnvironment;
/** The pipeline of the running test, stopped after it whatever happens. */
let running: string | undefined;

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"));
  [source, target] = await Promise.all([
    stack.addEnvironment("cont-prod", `${SCHEMA}${SOURCE_DATA}`),
    stack.addEnvironment("cont-qa", `${SCHEMA}${SLOW_TARGET}`),
  ]);
}, 90_000);

afterEach(async () => {
  await stopQuietly(stack.api, running);
  running = undefined;
});

afterAll(async () => stack?.close());

function pipelineBody(name: string, table: string, settings: Record<string, unknown> = {}) {
  return {
    name,
    sourceEnvironmentId: source.id,
    targetEnvironmentId: target.id,
    entities: [`public.${table}`],
    batchSize: 1000,
    batchIntervalMs: 300,
    safetyLagMs: 500,
    ...settings,
  };
}

describe("a continuous pipeline by updated_at", () => {
  it("copies 10,000 rows sharing one updated_at, then inserts and updates; stop completes it; a new start continues", async () => {
    const pipelineId = await createContinuousPipeline(
      stack.api,
      pipelineBody("items-live", "items", { cursorField: "updated_at" }),
    );
    running = pipelineId;
    const started = await postStart(stack.api, pipelineId);
    expect(started.status).toBe(202);
    expect(started.body).toMatchObject({ status: "queued" });
    expect(typeof started.body.pipelineToken).toBe("string");
    const run = started.body as { id: string; pipelineToken: string };

    const first = await waitForSameRows(source.db.sql, target.db.sql, "items", 60_000);
    expect(first.digest.rows).toBe(10_000);
    // The counters follow each batch's commit in the target a moment later.
    const during = await eventually(async () => {
      const view = await executionOf(stack.api, run.id);
      return view.totals.created >= 10_000 ? view : undefined;
    }, 15_000);
    expect(during).toMatchObject({ kind: "continuous", status: "in_progress" });
    expect(during.continuous).toMatchObject({ stopRequested: false, stoppedBy: null });
    expect(during.totals).toMatchObject({ created: 10_000, updated: 0 });
    // Rows sharing one cursor value still span several batches (positions go on with the row key).
    const batches = await allPages(stack.api, `/api/v1/executions/${run.id}/batches`, "batches");
    expect(batches.length).toBeGreaterThanOrEqual(10);
    for (const b of batches) expect(b.rows).toBeLessThanOrEqual(1000);

    // A second start while it runs is refused.
    const again = await postStart(stack.api, pipelineId);
    expect(again.status).toBe(409);
    expect(again.body.error.details.executionId).toBe(run.id);

    await source.db.sql.unsafe(`
      insert into items (id, label, qty) select g, 'new ' || g, 1 from generate_series(10001, 10050) g;
      update items set qty = qty + 1000, updated_at = now() where id % 500 = 7;
    `);
    // batchIntervalMs 300 + safetyLagMs 500, with generous slack for a loaded machine.
    const caughtUp = await waitForSameRows(source.db.sql, target.db.sql, "items", 800 + 15_000);
    console.info(`continuous: 50 inserts + 20 updates reached the target in ${caughtUp.ms} ms`);
    expect(caughtUp.digest.rows).toBe(10_050);

    const stopped = await postStop(stack.api, pipelineId);
    expect(stopped.status).toBe(202);
    expect(stopped.body).toMatchObject({ id: run.id, continuous: { stopRequested: true } });
    const final = await waitForExecution(stack.api, run.id, 60_000);
    running = undefined;
    expect(final).toMatchObject({ status: "completed", reasonCode: null, kind: "continuous" });
    expect(final.continuous.stopRequested).toBe(true);
    expect(final.continuous.stoppedBy).toMatchObject({ tokenName: "stack-admin" });
    expect(final.continuous.polls).toBeGreaterThanOrEqual(2);
    expect(final.totals).toMatchObject({ created: 10_050, updated: 20, failed: 0 });

    const log = await stageLog(stack.api, run.pipelineToken);
    const codes = log.map((e) => e.code);
    expect(codes).toContain("stop_requested");
    expect(log.at(-1)).toMatchObject({ code: "stopped", state: "end" });
    const polls = log.filter((e) => e.code === "poll");
    expect(polls.length).toBeGreaterThanOrEqual(2);
    for (const p of polls) {
      expect(p.processName).toBe("PostgresLoader");
      expect(p.description).toMatch(/^Poll \d+: \d+ rows copied$/);
    }
    expect(polledRows(log).reduce((a, b) => a + b, 0)).toBe(10_070);
    const allBatches = await allPages(stack.api, `/api/v1/executions/${run.id}/batches`, "batches");
    expect(allBatches.filter((b) => b.state !== "Succeeded")).toEqual([]);

    // Stop again: nothing runs.
    const idleStop = await postStop(stack.api, pipelineId);
    expect(idleStop.status).toBe(409);

    // A new start continues from the positions reached: it copies only what changes from now on.
    const second = await startContinuous(stack.api, pipelineId);
    running = pipelineId;
    expect(second.id).not.toBe(run.id);
    const settled = await waitForPolls(stack.api, second.id, 3);
    expect(settled.totals).toMatchObject({ processed: 0, created: 0, updated: 0 });
    await source.db.sql.unsafe(`
      insert into items (id, label, qty) select g, 'later ' || g, 2 from generate_series(10051, 10055) g;
      update items set label = 'changed', updated_at = now() where id in (1, 5000, 10001);
    `);
    await waitForSameRows(source.db.sql, target.db.sql, "items", 15_000);
    const secondFinal = await stopAndWait(stack.api, pipelineId, second.id);
    running = undefined;
    expect(secondFinal).toMatchObject({ status: "completed", kind: "continuous" });
    expect(secondFinal.totals).toMatchObject({ created: 5, updated: 3, failed: 0 });
    const secondLog = await stageLog(stack.api, second.pipelineToken);
    expect(secondLog.map((e) => e.code)).toContain("resumed");
    expect(polledRows(secondLog).reduce((a, b) => a + b, 0)).toBe(8);
  }, 120_000);

  it("copies a row whose transaction commits late, after rows with later updated_at were committed and polled", async () => {
    const pipelineId = await createContinuousPipeline(
      stack.api,
      pipelineBody("late-commit", "late_items", { cursorField: "updated_at", batchIntervalMs: 200 }),
    );
    running = pipelineId;
    const run = await startContinuous(stack.api, pipelineId);
    await waitForSameRows(source.db.sql, target.db.sql, "late_items", 30_000);

    // The late transaction takes its updated_at (its start) now and commits ~2 s later.
    const conn = await source.db.sql.reserve();
    try {
      await conn.unsafe("begin");
      await conn.unsafe(
        "insert into late_items (id, label, qty, updated_at) values (1000, 'late', 1, now())",
      );
      const pollsBefore = (await executionOf(stack.api, run.id)).continuous.polls;
      // Meanwhile other transactions commit rows with later updated_at, and polls go on.
      for (let i = 0; i < 10; i++) {
        await source.db.sql`insert into late_items (id, label, qty) values (${2000 + i}, 'on time', ${i})`;
        await sleep(180);
      }
      const during = await executionOf(stack.api, run.id);
      expect(during.status).toBe("in_progress");
      expect(during.continuous.polls).toBeGreaterThan(pollsBefore);
      // The open transaction holds the high-water mark at its start: nothing after it was copied yet.
      const [ahead] = await target.db.sql<{ n: number }[]>`
        select count(*)::int as n from late_items where id >= 1000`;
      expect(ahead!.n).toBe(0);
      await conn.unsafe("commit");
    } finally {
      conn.release();
    }
    const { digest } = await waitForSameRows(source.db.sql, target.db.sql, "late_items", 20_000);
    expect(digest.rows).toBe(21);
    const [late] = await target.db.sql`select label from late_items where id = 1000`;
    expect(late).toEqual({ label: "late" });
    const final = await stopAndWait(stack.api, pipelineId, run.id);
    running = undefined;
    expect(final).toMatchObject({ status: "completed" });
    expect(final.totals).toMatchObject({ created: 21, updated: 0 });
  }, 60_000);

  it("stop while a batch is being written: the batch commits, the execution completes, a new start finishes the copy", async () => {
    const pipelineId = await createContinuousPipeline(
      stack.api,
      pipelineBody("slow-stop", "slow_items", {
        cursorField: "updated_at",
        batchSize: 250,
        targetTriggers: "fire",
      }),
    );
    running = pipelineId;
    const run = await startContinuous(stack.api, pipelineId);
    // Some batches committed, and one is in flight (its statement sleeps in the target).
    await waitForCreated(run.id, 500);
    await waitForAgentSleep(target.db.sql);
    const view = await stopAndWait(stack.api, pipelineId, run.id);
    running = undefined;
    expect(view).toMatchObject({ status: "completed", reasonCode: null });
    const batches = await allPages(stack.api, `/api/v1/executions/${run.id}/batches`, "batches");
    expect(batches.filter((b) => b.state !== "Succeeded")).toEqual([]);
    const committed = batches.reduce((n, b) => n + b.rows, 0);
    const inTarget = await countRows(target.db.sql, "slow_items");
    expect(inTarget).toBe(committed);
    expect(view.totals.created).toBe(committed);
    expect(inTarget).toBeGreaterThanOrEqual(500);
    expect(inTarget).toBeLessThan(3_000);
    // What was copied is exact: no row differs, none is extra; the rest is missing for now.
    const diff = await rowDifferences(source.db.sql, target.db.sql, "slow_items");
    expect({ extra: diff.extra, changed: diff.changed, duplicates: diff.duplicates }).toEqual({
      extra: [],
      changed: [],
      duplicates: 0,
    });
    expect(diff.missing.length).toBe(3_000 - inTarget);

    const second = await startContinuous(stack.api, pipelineId);
    running = pipelineId;
    await waitForSameRows(source.db.sql, target.db.sql, "slow_items", 60_000);
    const secondView = await stopAndWait(stack.api, pipelineId, second.id);
    running = undefined;
    expect(secondView).toMatchObject({ status: "completed" });
    expect(secondView.totals).toMatchObject({ created: 3_000 - inTarget, updated: 0 });
  }, 90_000);

  it("polls about every batchIntervalMs when nothing changes, without copying anything again (cursor = row key)", async () => {
    const pipelineId = await createContinuousPipeline(stack.api, pipelineBody("idle", "idle_items"));
    running = pipelineId;
    const run = await startContinuous(stack.api, pipelineId);
    await waitForSameRows(source.db.sql, target.db.sql, "idle_items", 30_000);
    const before = await waitForPolls(stack.api, run.id, 2);
    const t0 = Date.now();
    await sleep(3_000);
    const after = await executionOf(stack.api, run.id);
    const seconds = (Date.now() - t0) / 1000;
    const polls = after.continuous.polls - before.continuous.polls;
    console.info(`continuous: ${polls} idle polls in ${seconds.toFixed(1)} s (batchIntervalMs 300)`);
    expect(polls).toBeGreaterThanOrEqual(4);
    expect(polls).toBeLessThanOrEqual(20);
    expect(Date.parse(after.continuous.lastPollAt)).toBeGreaterThan(Date.parse(before.continuous.lastPollAt));
    expect(after.totals).toMatchObject({ processed: 20, created: 20, updated: 0 });

    // New keys are still picked up with the key as cursor.
    await source.db.sql.unsafe(
      "insert into idle_items (id, label, qty) select g, 'n', 0 from generate_series(21, 23) g",
    );
    await waitForSameRows(source.db.sql, target.db.sql, "idle_items", 15_000);
    const final = await stopAndWait(stack.api, pipelineId, run.id);
    running = undefined;
    expect(final.totals).toMatchObject({ created: 23, updated: 0 });
  }, 60_000);

  it("reconcile removes exactly the target rows deleted at the source, across key ranges", async () => {
    const pipelineId = await createContinuousPipeline(
      stack.api,
      pipelineBody("reconcile", "recon_items", { cursorField: "updated_at", batchSize: 5000 }),
    );
    running = pipelineId;
    const run = await startContinuous(stack.api, pipelineId);
    await waitForSameRows(source.db.sql, target.db.sql, "recon_items", 60_000);
    const gone = [1, 10_000, 10_001, 15_000, 20_500];
    await source.db.sql`delete from recon_items where id in ${source.db.sql(gone)}`;
    // Deletes are invisible to the cursor: without reconcile the target keeps the rows.
    await waitForPolls(stack.api, run.id, (await executionOf(stack.api, run.id)).continuous.polls + 2);
    expect(await countRows(target.db.sql, "recon_items")).toBe(20_500);

    const asked = await postReconcile(stack.api, pipelineId);
    expect(asked.status).toBe(202);
    const { digest } = await waitForSameRows(source.db.sql, target.db.sql, "recon_items", 30_000);
    expect(digest.rows).toBe(20_495);
    const left = await target.db.sql`select id from recon_items where id in ${target.db.sql(gone)}`;
    expect(left).toEqual([]);
    const final = await stopAndWait(stack.api, pipelineId, run.id);
    running = undefined;
    expect(final.status).toBe("completed");
    const log = await stageLog(stack.api, run.pipelineToken);
    const reconciled = log.filter((e) => e.code === "reconcile");
    expect(reconciled.length).toBe(1);
    expect(reconciled[0]!.description).toMatch(/: 5 target rows deleted/);
  }, 90_000);
});

describe("bad requests", () => {
  it("start of a once pipeline, stop or reconcile of one not running: 409; continuous with insert: 400", async () => {
    const onceId = await createPipeline(stack.api, {
      name: "once-misc",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "merge",
      entities: ["public.misc_items"],
    });
    const startOnce = await postStart(stack.api, onceId);
    expect(startOnce.status).toBe(409);
    expect(startOnce.body.error.code).toBe("failed_precondition");
    expect(startOnce.body.error.message).toMatch(/once/);
    const stopOnce = await postStop(stack.api, onceId);
    expect(stopOnce.status).toBe(409);

    const idleId = await createContinuousPipeline(stack.api, pipelineBody("never-started", "misc_items"));
    const stop = await postStop(stack.api, idleId);
    expect(stop.status).toBe(409);
    expect(stop.body.error.message).toMatch(/not running/);
    const reconcile = await postReconcile(stack.api, idleId);
    expect(reconcile.status).toBe(409);

    const insert = await stack.api.post("/api/v1/pipelines", {
      ...pipelineBody("continuous-insert", "misc_items"),
      mode: "continuous",
      writeStrategy: "insert",
    });
    expect(insert.status).toBe(400);
    expect(insert.body.error.message).toMatch(/merge/);
    expect(insert.body.error.details.issues).toEqual(
      expect.arrayContaining([expect.objectContaining({ path: "writeStrategy" })]),
    );

    const noField = await stack.api.post("/api/v1/pipelines", {
      ...pipelineBody("continuous-no-field", "misc_items", { cursorField: "changed_on" }),
      mode: "continuous",
      writeStrategy: "merge",
    });
    expect(noField.status).toBe(400);
    expect(noField.body.error.message).toMatch(/changed_on/);

    const onceCursor = await stack.api.post("/api/v1/pipelines", {
      name: "once-cursor",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "merge",
      entities: ["public.misc_items"],
      cursorField: "updated_at",
    });
    expect(onceCursor.status).toBe(400);

    // Nothing was written by the refused requests.
    expect((await tableDigest(target.db.sql, "misc_items")).rows).toBe(0);
  });
});

/** Waits until the execution has created at least `records` rows in the target. */
async function waitForCreated(id: string, records: number) {
  const until = Date.now() + 60_000;
  for (;;) {
    const view = await executionOf(stack.api, id);
    if (["completed", "failed", "cancelled"].includes(view.status))
      throw new Error(`execution ended (${view.status}: ${view.reason}) before ${records} rows`);
    if (view.totals.created >= records) return view;
    if (Date.now() > until) throw new Error(`execution did not create ${records} rows within 60 s`);
    await sleep(50);
  }
}
