/**
 * Limits of a continuous pipeline end to end (control plane and agents as
 * real processes): polls that keep failing pause the pipeline after
 * maxFailedPolls (a new start resumes from its positions), the monthly record
 * limit stops it at a batch boundary, reconcileEveryPolls removes deleted
 * rows without being asked, and a row the target rejects is skipped with
 * stopOnError false but stops the pipeline with stopOnError true.
 */
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { eventually } from "./support/api-client.js";
import {
  continuousRows,
  continuousTable,
  createContinuousPipeline,
  stageLog,
  startContinuous,
  stopAndWait,
  stopQuietly,
  waitForSameRows,
} from "./support/continuous.js";
import {
  type DrayStack,
  type StackEnvironment,
  startDrayStack,
  waitForExecution,
} from "./support/dray-stack.js";
import { allPages, countRows, executionOf } from "./support/executions.js";
import { killAgent, startAgent, waitForAgents } from "./support/fault-stack.js";

/** Old enough that every row sharing it is under the high-water mark from the first poll. */
const PAST = "timestamptz '2024-03-01 12:00:00+00'";
const INITIAL_ROWS = 20;
/** A short heartbeat: an agent that is away marks its environment unhealthy after ~3 s, not ~30 s. */
const HEARTBEAT_MS = 1_000;
/** What the organisation may move a month outside the limit test. */
const ROOMY_LIMIT = 100_000_000;

const TABLES = [
  "paused_items",
  "away_lenient_items",
  "away_strict_items",
  "limit_items",
  "recon_items",
  "lenient_items",
  "strict_items",
];
const SCHEMA = TABLES.map(continuousTable).join("\n");
const SOURCE_DATA = TABLES.map((t) => continuousRows(t, 1, INITIAL_ROWS, PAST)).join("\n");
/** The target refuses rows labelled 'rejected' (the source allows them). */
const TARGET_CHECKS = ["lenient_items", "strict_items"]
  .map((t) => `alter table ${t} add constraint ${t}_not_rejected check (label <> 'rejected');`)
  .join("\n");

let stack: DrayStack;
let source: StackEnvironment;
let target: StackEnvironment;
/** The pipeline of the running test, stopped after it whatever happens. */
let running: string | undefined;

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"), { heartbeatMs: HEARTBEAT_MS });
  [source, target] = await Promise.all([
    stack.addEnvironment("limits-prod", `${SCHEMA}${SOURCE_DATA}`),
    stack.addEnvironment("limits-qa", `${SCHEMA}${TARGET_CHECKS}`),
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
    cursorField: "updated_at",
    batchSize: 1000,
    batchIntervalMs: 300,
    safetyLagMs: 0,
    ...settings,
  };
}

/** Creates and starts a pipeline over `table` and waits until the target holds its initial rows. */
async function startCaughtUp(name: string, table: string, settings: Record<string, unknown> = {}) {
  const pipelineId = await createContinuousPipeline(stack.api, pipelineBody(name, table, settings));
  running = pipelineId;
  const run = await startContinuous(stack.api, pipelineId);
  const { digest } = await waitForSameRows(source.db.sql, target.db.sql, table, 30_000);
  expect(digest.rows).toBe(INITIAL_ROWS);
  return { pipelineId, run };
}

/** The "Poll failed (n of m in a row)" descriptions of the stage log, in order. */
async function failedPollEntries(pipelineToken: string): Promise<string[]> {
  const log = await stageLog(stack.api, pipelineToken);
  return log.filter((e) => e.code === "poll_failed").map((e) => e.description);
}

const usage = async () => (await stack.api.get("/api/v1/usage")).body;

async function setLimit(monthlyRecordLimit: number) {
  const r = await stack.admin.patch(`/api/v1/organisations/${stack.organisationId}`, { monthlyRecordLimit });
  expect(r.status).toBe(200);
  expect(r.body.monthlyRecordLimit).toBe(monthlyRecordLimit);
}

describe("polls that keep failing", () => {
  it("pause the pipeline after maxFailedPolls in a row; once fixed, a new start resumes from its positions", async () => {
    const { pipelineId, run } = await startCaughtUp("paused", "paused_items", { maxFailedPolls: 3 });
    // A migration moves the source table away: every read of it fails (undefined table, not retried).
    await source.db.sql.unsafe("alter table paused_items rename to paused_items_moved");
    const view = await waitForExecution(stack.api, run.id, 30_000);
    running = undefined;
    expect(view).toMatchObject({
      kind: "continuous",
      status: "failed",
      reasonCode: "paused_after_failed_polls",
    });
    expect(view.reason).toMatch(
      /^paused after 3 failed polls in a row; the last one: reading public\.paused_items/,
    );
    expect(view.reason).toMatch(
      /Fix the cause, then start the pipeline again: it resumes from its positions/,
    );
    const failed = await failedPollEntries(run.pipelineToken);
    expect(failed.map((d) => d.slice(0, d.indexOf(":")))).toEqual([
      "Poll failed (1 of 3 in a row)",
      "Poll failed (2 of 3 in a row)",
      "Poll failed (3 of 3 in a row)",
    ]);
    expect(failed[2]).toMatch(/paused_items/);
    expect(view.totals).toMatchObject({ created: INITIAL_ROWS, updated: 0 });

    // Fixed, with changes made meanwhile: only those are copied by the new start.
    await source.db.sql.unsafe(`
      alter table paused_items_moved rename to paused_items;
      insert into paused_items (id, label, qty) select g, 'new ' || g, 1 from generate_series(21, 25) g;
      update paused_items set label = 'changed', updated_at = now() where id in (3, 7);
    `);
    const second = await startContinuous(stack.api, pipelineId);
    running = pipelineId;
    expect(second.id).not.toBe(run.id);
    const { digest } = await waitForSameRows(source.db.sql, target.db.sql, "paused_items", 30_000);
    expect(digest.rows).toBe(INITIAL_ROWS + 5);
    const secondView = await stopAndWait(stack.api, pipelineId, second.id);
    running = undefined;
    expect(secondView).toMatchObject({ status: "completed", reasonCode: null });
    expect(secondView.totals).toMatchObject({ created: 5, updated: 2, failed: 0 });
    const secondLog = await stageLog(stack.api, second.pipelineToken);
    expect(secondLog.map((e) => e.code)).toContain("resumed");
    expect(secondLog.filter((e) => e.code === "poll_failed")).toEqual([]);
  }, 90_000);

  // A source agent that stays away is a read that fails: a failed poll, whatever stopOnError says
  // (stopOnError is about batches the target gave up on).
  it.each([
    { stopOnError: false, table: "away_lenient_items" },
    { stopOnError: true, table: "away_strict_items" },
  ])(
    "count a source agent that stays away as failed polls and pause after maxFailedPolls (stopOnError $stopOnError)",
    async ({ stopOnError, table }) => {
      const { pipelineId, run } = await startCaughtUp(`agent-away-${stopOnError}`, table, {
        maxFailedPolls: 3,
        stopOnError,
      });
      await killAgent(source, "SIGKILL");
      let view: any;
      try {
        view = await waitForExecution(stack.api, run.id, 60_000);
      } finally {
        await startAgent(source);
        await waitForAgents(stack.api, [source]);
      }
      running = undefined;
      const failed = await failedPollEntries(run.pipelineToken);
      expect(
        { status: view.status, reasonCode: view.reasonCode, failedPolls: failed.length },
        `reason: ${view.reason}`,
      ).toEqual({
        status: "failed",
        reasonCode: "paused_after_failed_polls",
        failedPolls: 3,
      });
      expect(failed[2]).toMatch(/^Poll failed \(3 of 3 in a row\): .*source environment "limits-prod"/);
      expect(view.reason).toMatch(/start the pipeline again/);

      // The agent is back: a new start resumes and copies only what changed.
      await source.db.sql.unsafe(
        `insert into ${table} (id, label, qty) select g, 'back ' || g, 2 from generate_series(21, 23) g`,
      );
      const second = await startContinuous(stack.api, pipelineId);
      running = pipelineId;
      await waitForSameRows(source.db.sql, target.db.sql, table, 30_000);
      const secondView = await stopAndWait(stack.api, pipelineId, second.id);
      running = undefined;
      expect(secondView).toMatchObject({ status: "completed" });
      expect(secondView.totals).toMatchObject({ created: 3, updated: 0 });
    },
    120_000,
  );
});

describe("the monthly record limit", () => {
  it("stops a continuous pipeline at a batch boundary: the target holds the committed batches, usage stays within it", async () => {
    const { run } = await startCaughtUp("limited", "limit_items", { batchSize: 20 });
    await eventually(
      async () => ((await executionOf(stack.api, run.id)).totals.created >= INITIAL_ROWS ? true : undefined),
      15_000,
    );
    const usedBefore = (await usage()).used as number;
    const limit = usedBefore + 30;
    try {
      await setLimit(limit);
      await source.db.sql.unsafe(
        "insert into limit_items (id, label, qty) select g, 'more ' || g, 3 from generate_series(21, 120) g",
      );
      const view = await waitForExecution(stack.api, run.id, 30_000);
      running = undefined;
      expect(view).toMatchObject({
        kind: "continuous",
        status: "failed",
        reasonCode: "monthly_record_limit",
      });
      expect(view.reason).toMatch(/monthly record limit reached: \d+ of \d+ records used this month/);
      expect(view.reason).toMatch(/the next batch of public\.limit_items needs 20/);

      const batches = await allPages(stack.api, `/api/v1/executions/${run.id}/batches`, "batches");
      expect(batches.filter((b) => b.state !== "Succeeded")).toEqual([]);
      const committed = batches.reduce((n, b) => n + b.created, 0);
      // Whole batches only: the initial one, then 20-row batches of the new rows within the 30 left.
      const inTarget = await countRows(target.db.sql, "limit_items");
      expect(inTarget).toBe(committed);
      const added = inTarget - INITIAL_ROWS;
      expect(added).toBe(20);
      // The committed rows are the first ones in cursor order (updated_at, id): ids 21..40.
      const [range] = await target.db.sql<{ lo: string; hi: string }[]>`
        select min(id)::text as lo, max(id)::text as hi from limit_items where id > ${INITIAL_ROWS}`;
      expect(range).toEqual({ lo: "21", hi: "40" });
      const after = await usage();
      expect(after).toMatchObject({ used: usedBefore + added, reserved: 0, limit });
      expect(after.used).toBeLessThanOrEqual(limit);
      expect(view.totals).toMatchObject({ created: committed });
      const log = await stageLog(stack.api, run.pipelineToken);
      expect(log.at(-1)).toMatchObject({ state: "error", code: "monthly_record_limit" });
    } finally {
      await setLimit(ROOMY_LIMIT);
    }
  }, 60_000);
});

describe("reconcileEveryPolls", () => {
  it("removes target rows deleted at the source within a few polls, without a reconcile request", async () => {
    const { pipelineId, run } = await startCaughtUp("recon-every", "recon_items", { reconcileEveryPolls: 2 });
    // It reconciles on its own, poll after poll: once before the deletes (nothing to delete yet)…
    await eventually(async () => {
      const log = await stageLog(stack.api, run.pipelineToken);
      return log.some((e) => e.code === "reconcile") ? true : undefined;
    }, 15_000);
    const gone = [1, 7, 20];
    await source.db.sql`delete from recon_items where id in ${source.db.sql(gone)}`;
    const pollsAtDelete = (await executionOf(stack.api, run.id)).continuous.polls as number;
    const { digest } = await waitForSameRows(source.db.sql, target.db.sql, "recon_items", 20_000);
    expect(digest.rows).toBe(INITIAL_ROWS - gone.length);
    const left = await target.db.sql`select id from recon_items where id in ${target.db.sql(gone)}`;
    expect(left).toEqual([]);
    const view = await executionOf(stack.api, run.id);
    expect(view.continuous.polls - pollsAtDelete).toBeLessThanOrEqual(6);

    const final = await stopAndWait(stack.api, pipelineId, run.id);
    running = undefined;
    expect(final).toMatchObject({ status: "completed", reasonCode: null });
    const log = await stageLog(stack.api, run.pipelineToken);
    const reconciles = log.filter((e) => e.code === "reconcile");
    // …and again after them, which deleted exactly those rows.
    expect(reconciles.length).toBeGreaterThanOrEqual(2);
    expect(reconciles[0]!.description).toMatch(/: 0 target rows deleted/);
    const deleted = reconciles.map((e) => Number(/: (\d+) target rows deleted/.exec(e.description)?.[1]));
    expect(deleted.reduce((a, b) => a + b, 0)).toBe(gone.length);
  }, 60_000);
});

describe("a row the target rejects", () => {
  it("with stopOnError false is skipped and reported; later rows load and the pipeline keeps running", async () => {
    const { pipelineId, run } = await startCaughtUp("lenient", "lenient_items", { stopOnError: false });
    await source.db.sql.unsafe(`
      insert into lenient_items (id, label, qty)
        select g, case when g = 25 then 'rejected' else 'ok ' || g end, 4 from generate_series(21, 30) g;
    `);
    const errors = await eventually(async () => {
      const all = await allPages(stack.api, `/api/v1/executions/${run.id}/errors`, "errors");
      return all.some((e) => e.recordKey !== null) ? all : undefined;
    }, 20_000);
    const records = errors.filter((e) => e.recordKey !== null);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      severity: "error",
      entity: "public.lenient_items",
      recordKey: ["25"],
      code: "23514",
    });
    expect(records[0].message).toMatch(/lenient_items_not_rejected/);

    // Later rows still load, in the same execution.
    await source.db.sql.unsafe(
      "insert into lenient_items (id, label, qty) select g, 'later ' || g, 5 from generate_series(31, 35) g",
    );
    await eventually(
      async () => ((await countRows(target.db.sql, "lenient_items")) === 34 ? true : undefined),
      20_000,
    );
    const ids = await target.db.sql<{ id: number }[]>`select id::int as id from lenient_items`;
    expect(ids.map((r) => r.id).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 35 }, (_, i) => i + 1).filter((id) => id !== 25),
    );
    const during = await executionOf(stack.api, run.id);
    expect(during).toMatchObject({ status: "in_progress", kind: "continuous" });

    const final = await stopAndWait(stack.api, pipelineId, run.id);
    running = undefined;
    expect(final).toMatchObject({ status: "completed", reasonCode: null });
    expect(final.totals).toMatchObject({ created: 34, skipped: 1, failed: 0 });
    const batches = await allPages(stack.api, `/api/v1/executions/${run.id}/batches`, "batches");
    expect(batches.filter((b) => b.state !== "Succeeded")).toEqual([]);
    expect(batches.reduce((n, b) => n + b.rejected, 0)).toBe(1);
  }, 60_000);

  it("with stopOnError true (the default) fails the batch as a whole and stops the pipeline (batch_failed)", async () => {
    const { run } = await startCaughtUp("strict", "strict_items");
    await source.db.sql.unsafe(`
      insert into strict_items (id, label, qty)
        select g, case when g = 25 then 'rejected' else 'ok ' || g end, 4 from generate_series(21, 30) g;
    `);
    const view = await waitForExecution(stack.api, run.id, 30_000);
    running = undefined;
    expect(view).toMatchObject({ kind: "continuous", status: "failed", reasonCode: "batch_failed" });
    expect(view.reason).toMatch(
      /of public\.strict_items failed after \d+ attempt\(s\): .*strict_items_not_rejected/,
    );
    // The batch holding row 25 rolled back as a whole: nothing of 21..30 is in the target.
    expect(await countRows(target.db.sql, "strict_items")).toBe(INITIAL_ROWS);
    const batches = await allPages(stack.api, `/api/v1/executions/${run.id}/batches`, "batches");
    expect(batches.filter((b) => b.state === "Failed")).toHaveLength(1);
    expect(batches.filter((b) => b.state === "In Progress")).toEqual([]);
    // Not counted as a failed poll: the pipeline stopped at once.
    expect(await failedPollEntries(run.pipelineToken)).toEqual([]);
    expect(view.totals).toMatchObject({ created: INITIAL_ROWS });
  }, 60_000);
});
