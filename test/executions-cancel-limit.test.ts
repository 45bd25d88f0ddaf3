/**
 * Stopping a run end to end: the monthly record limit refuses a run before any
 * record moves, or stops it at a batch boundary when crossed mid-run (usage
 * then equals the committed rows); a cancel mid-run ends in `cancelled` within
 * 2 s, keeps what was committed and leaves no transaction open in the target.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { eventually } from "./support/api-client.js";
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
  openAgentWork,
  startRun,
  waitForAgentSleep,
  waitForProgress,
} from "./support/executions.js";

const SCHEMA = `
  create table ledger_entries (id bigint primary key, account text not null, amount numeric(12,2), memo text);
  create table events (id bigint primary key, kind text not null, payload text, at timestamptz not null);
`;
const LEDGER_ROWS = 60_000;
const EVENT_ROWS = 60_000;
const EVENT_BATCH = 10_000;
/** In the target: writing event 25000 (third batch) sleeps, so the cancel lands inside that write. */
const SLOW_EVENT = `
  create function slow_event() returns trigger language plpgsql as $$
  begin
    if new.id = 25000 then perform pg_sleep(30); end if;
    return new;
  end $$;
  create trigger slow_event before insert on events for each row execute function slow_event();
  -- Loads run with triggers off (session_replication_role = replica); this test trigger fires anyway.
  alter table events enable always trigger slow_event;
`;
const DATA = `
  insert into ledger_entries select g, 'acct-' || (g % 500), g * 0.01, repeat('m', 40) from generate_series(1, ${LEDGER_ROWS}) g;
  insert into events select g, (array['click', 'view', 'buy'])[g % 3 + 1], repeat(md5(g::text), 2),
    timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second'
  from generate_series(1, ${EVENT_ROWS}) g;
  analyze;
`;

let stack: DrayStack;
let source: StackEnvironment;
let target: StackEnvironment;

const usage = async () => (await stack.api.get("/api/v1/usage")).body;
const setLimit = async (monthlyRecordLimit: number) => {
  const r = await stack.admin.patch(`/api/v1/organisations/${stack.organisationId}`, { monthlyRecordLimit });
  expect(r.status).toBe(200);
  expect(r.body.monthlyRecordLimit).toBe(monthlyRecordLimit);
};

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"));
  [source, target] = await Promise.all([
    stack.addEnvironment("src", `${SCHEMA}${DATA}`),
    stack.addEnvironment("dst", `${SCHEMA}${SLOW_EVENT}`),
  ]);
}, 90_000);

afterAll(async () => stack?.close());

describe("the monthly record limit", () => {
  it("fails a run whose estimate exceeds the remaining records before any record is written", async () => {
    const before = await usage();
    expect(before.used).toBe(0);
    await setLimit(LEDGER_ROWS - 1);
    const pipelineId = await createPipeline(stack.api, {
      name: "ledger-over-limit",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "insert",
      entities: ["public.ledger_entries"],
    });
    const run = await startRun(stack.api, pipelineId);
    const view = await waitForExecution(stack.api, run.id, 20_000);
    expect(view).toMatchObject({ status: "failed", reasonCode: "monthly_record_limit" });
    const month = new Date().toISOString().slice(0, 7);
    expect(view.reason).toContain(`0 of ${LEDGER_ROWS - 1} records used in ${month}`);
    expect(view.reason).toContain(`this run needs ${LEDGER_ROWS}`);
    expect(view.reason).toMatch(
      /Select fewer entities, or ask the Dray system administrator to raise the limit/,
    );
    expect(await countRows(target.db.sql, "ledger_entries")).toBe(0);
    expect(await allPages(stack.api, `/api/v1/executions/${run.id}/batches`, "batches")).toEqual([]);
    expect(view.totals).toMatchObject({ processed: 0, created: 0 });
    expect(await usage()).toMatchObject({ used: 0, reserved: 0, limit: LEDGER_ROWS - 1 });
  });

  it("stops a run that crosses it mid-run at a batch boundary; usage equals the committed rows", async () => {
    await setLimit(10_000_000);
    const pipelineId = await createPipeline(stack.api, {
      name: "ledger-limit-mid-run",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "insert",
      entities: ["public.ledger_entries"],
      batchSize: 500,
    });
    const run = await startRun(stack.api, pipelineId);
    await waitForProgress(stack.api, run.id, 3_000);
    const limit = (await usage()).used + 6_250;
    await setLimit(limit);
    const view = await waitForExecution(stack.api, run.id, 60_000);
    expect(view).toMatchObject({ status: "failed", reasonCode: "monthly_record_limit" });
    expect(view.reason).toMatch(/monthly record limit reached: \d+ of \d+ records used this month/);
    expect(view.reason).toMatch(/the next batch of public\.ledger_entries needs 500/);

    const committed = await countRows(target.db.sql, "ledger_entries");
    expect(committed).toBeGreaterThan(0);
    expect(committed).toBeLessThan(LEDGER_ROWS);
    expect(committed % 500).toBe(0);
    expect(committed).toBeLessThanOrEqual(limit);
    expect(committed).toBeGreaterThan(limit - 500);
    const after = await usage();
    expect(after).toMatchObject({ used: committed, reserved: 0, limit });
    expect(view.totals).toMatchObject({ created: committed, processed: committed });

    const batches = await allPages(stack.api, `/api/v1/executions/${run.id}/batches`, "batches");
    expect(batches.every((b) => b.state === "Succeeded")).toBe(true);
    expect(batches.reduce((n, b) => n + b.created, 0)).toBe(committed);
    // The checkpoint is kept at the last committed batch.
    expect(batches.at(-1).cursorTo).toEqual([String(committed)]);
    const stages = await stack.api.get(`/api/v1/pipeline/status?pipelinetoken=${run.pipelineToken}`);
    expect(stages.body.at(-1)).toMatchObject({ state: "error", code: "monthly_record_limit" });
  });
});

describe("cancelling a run", () => {
  it("ends in cancelled within 2 s, keeps the committed rows and leaves no transaction open", async () => {
    await setLimit(100_000_000);
    const usedBefore = (await usage()).used;
    const pipelineId = await createPipeline(stack.api, {
      name: "events-cancelled",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "insert",
      entities: ["public.events"],
      batchSize: EVENT_BATCH,
    });
    const run = await startRun(stack.api, pipelineId);
    await waitForAgentSleep(target.db.sql);
    const during = await executionOf(stack.api, run.id);
    expect(during).toMatchObject({ status: "in_progress", cancelRequested: false });
    expect(during.entities[0].percent).toBeGreaterThan(0);
    expect(during.entities[0].percent).toBeLessThan(100);
    const asked = Date.now();
    const cancel = await stack.api.post(`/api/v1/executions/${run.id}/cancel`, { reason: "wrong target" });
    expect(cancel.status).toBe(202);
    expect(cancel.body).toMatchObject({ id: run.id, cancelRequested: true });
    const view = await eventually(
      async () => {
        const v = await executionOf(stack.api, run.id);
        return v.status === "in_progress" ? undefined : v;
      },
      5_000,
      20,
    );
    const latency = Date.now() - asked;
    console.info(`cancel latency: ${latency} ms`);
    expect(view.status).toBe("cancelled");
    expect(latency).toBeLessThanOrEqual(2_000);
    expect(view).toMatchObject({
      reasonCode: "cancelled_by_user",
      reason: "cancelled by stack-admin: wrong target",
    });
    expect(view.cancelledBy).toMatchObject({ tokenName: "stack-admin" });

    // Nothing is left running or idle in a transaction in the target.
    await eventually(
      async () => ((await openAgentWork(target.db.sql)).length === 0 ? true : undefined),
      1_000,
      50,
    );

    // The two batches before the sleeping one committed; the sleeping one rolled back.
    const committed = await countRows(target.db.sql, "events");
    expect(committed).toBe(2 * EVENT_BATCH);
    expect(committed).toBe(view.totals.created);
    expect(committed).toBe(view.entities[0].created);
    // Later, still nothing more arrives and nothing is left open.
    await new Promise((r) => setTimeout(r, 500));
    expect(await countRows(target.db.sql, "events")).toBe(committed);
    expect(await openAgentWork(target.db.sql)).toEqual([]);
    expect(await usage()).toMatchObject({ used: usedBefore + committed, reserved: 0 });

    const batches = await allPages(stack.api, `/api/v1/executions/${run.id}/batches`, "batches");
    // With two writes in flight, the batch sent behind the sleeping one waited for it and is cancelled with it.
    expect(batches.slice(0, 3).map((b) => [b.seq, b.state, b.created])).toEqual([
      [1, "Succeeded", EVENT_BATCH],
      [2, "Succeeded", EVENT_BATCH],
      [3, "Cancelled", 0],
    ]);
    expect(batches.slice(3).map((b) => [b.state, b.created])).toEqual(
      batches.slice(3).map(() => ["Cancelled", 0]),
    );
    expect(batches.length).toBeLessThanOrEqual(4);
    expect(batches[2].cursorFrom).toEqual([String(2 * EVENT_BATCH)]);

    const stages = await stack.api.get(`/api/v1/pipeline/status?pipelinetoken=${run.pipelineToken}`);
    expect(stages.body.at(-1)).toMatchObject({ processName: "JobRunner", state: "end", code: "cancelled" });
    const again = await stack.api.post(`/api/v1/executions/${run.id}/cancel`);
    expect(again.status).toBe(409);
  });
});
