/**
 * Fault: a continuous pipeline runs while writers insert and update source
 * rows without pause, and the target agent and the control plane are killed
 * (SIGKILL) and started again, alternately, at random moments. Once the
 * writers stop, the target catches up to exactly the source (row by row: no
 * gap, no stale row, no duplicate) and it is still the one continuous
 * execution, which a stop then ends `completed`.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  continuousRows,
  continuousTable,
  createContinuousPipeline,
  rowDifferences,
  seededRandom,
  sleep,
  stageLog,
  startContinuous,
  stopAndWait,
  waitForPolls,
  waitForSameRows,
} from "./support/continuous.js";
import { type DrayStack, type StackEnvironment, startDrayStack } from "./support/dray-stack.js";
import { allPages, executionOf } from "./support/executions.js";
import { restartAgent } from "./support/fault-stack.js";

/** Kills wanted in all, and the time they may take. */
const KILLS = 20;
const KILL_BUDGET_MS = 90_000;
const INITIAL_ROWS = 5_000;

let stack: DrayStack;
let source: StackEnvironment;
let target: StackEnvironment;

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"));
  [source, target] = await Promise.all([
    stack.addEnvironment(
      "live-prod",
      `${continuousTable("events")}${continuousRows("events", 1, INITIAL_ROWS, "timestamptz '2024-03-01 00:00:00+00'")}`,
    ),
    stack.addEnvironment("live-qa", continuousTable("events")),
  ]);
}, 90_000);

afterAll(async () => stack?.close());

/**
 * Writers that commit small transactions without pause: each inserts 5 new
 * rows and updates 3 existing ones (in key order, so two writers never
 * deadlock), every update setting updated_at = now().
 */
function startWriters(count: number, random: () => number) {
  let nextId = INITIAL_ROWS + 1;
  let running = true;
  let transactions = 0;
  const writer = async () => {
    while (running) {
      const first = nextId;
      nextId += 5;
      const top = nextId - 1;
      const updates = [...new Set([0, 1, 2].map(() => 1 + Math.floor(random() * (first - 1))))].sort(
        (a, b) => a - b,
      );
      await source.db.sql.begin(async (tx) => {
        await tx`insert into events (id, label, qty)
          select g, 'live ' || g, g % 13 from generate_series(${first}::bigint, ${top}::bigint) g`;
        for (const id of updates)
          await tx`update events set qty = qty + 1, label = 'updated', updated_at = now() where id = ${id}`;
      });
      transactions += 1;
      await sleep(10 + Math.floor(random() * 30));
    }
  };
  const all = Array.from({ length: count }, writer);
  return {
    async stop() {
      running = false;
      await Promise.all(all);
      return transactions;
    },
  };
}

describe("kill -9 of the target agent and of the control plane, alternately, while rows change", () => {
  it("the target ends equal to the source row by row, in the same continuous execution", async () => {
    const seed = Number(process.env.DRAY_FAULT_SEED ?? Date.now() % 1_000_000);
    console.info(`continuous faults: seed ${seed} (DRAY_FAULT_SEED to repeat)`);
    const random = seededRandom(seed);
    const pipelineId = await createContinuousPipeline(stack.api, {
      name: "events-live",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      entities: ["public.events"],
      cursorField: "updated_at",
      batchSize: 1000,
      batchIntervalMs: 300,
      safetyLagMs: 300,
    });
    const run = await startContinuous(stack.api, pipelineId);
    await waitForPolls(stack.api, run.id, 1, 60_000);
    const writers = startWriters(2, random);
    let kills = 0;
    const killLog: string[] = [];
    const started = Date.now();
    try {
      while (kills < KILLS && Date.now() - started < KILL_BUDGET_MS) {
        await sleep(500 + Math.floor(random() * 2500));
        const at = ((Date.now() - started) / 1000).toFixed(1);
        if (kills % 2 === 0) {
          await restartAgent(target, "SIGKILL");
          killLog.push(`${at}s agent`);
        } else {
          await stack.restartControlPlane("SIGKILL");
          killLog.push(`${at}s control plane`);
        }
        kills += 1;
      }
    } finally {
      const transactions = await writers.stop();
      console.info(
        `continuous faults: ${kills} kills in ${((Date.now() - started) / 1000).toFixed(1)} s ` +
          `(${killLog.join(", ")}); writers committed ${transactions} transactions`,
      );
    }

    const caughtUp = await waitForSameRows(source.db.sql, target.db.sql, "events", 120_000).catch(
      async (error) => {
        const diff = await rowDifferences(source.db.sql, target.db.sql, "events");
        const view = await executionOf(stack.api, run.id).catch(() => undefined);
        throw new Error(
          `${String(error)}\nmissing ${diff.missing.length} (${diff.missing.slice(0, 10)}), extra ${diff.extra.length}, ` +
            `changed ${diff.changed.length} (${diff.changed.slice(0, 10)})\nexecution: ${JSON.stringify(view)}`,
        );
      },
    );
    console.info(`continuous faults: caught up ${caughtUp.ms} ms after the writers stopped`);
    const diff = await rowDifferences(source.db.sql, target.db.sql, "events");
    expect(diff).toEqual({ missing: [], extra: [], changed: [], duplicates: 0 });

    // Still the one continuous execution, resumed by every new control plane.
    const view = await executionOf(stack.api, run.id);
    expect(view).toMatchObject({ kind: "continuous", status: "in_progress" });
    expect(view.attempts).toBeGreaterThanOrEqual(2);
    const history = await stack.api.get(`/api/v1/pipelines/${pipelineId}/executions`);
    expect(history.body.executions.map((e: { id: string }) => e.id)).toEqual([run.id]);

    const final = await stopAndWait(stack.api, pipelineId, run.id);
    expect(final).toMatchObject({ status: "completed", reasonCode: null });
    const batches = await allPages(stack.api, `/api/v1/executions/${run.id}/batches`, "batches");
    expect(batches.filter((b) => b.state !== "Succeeded")).toEqual([]);
    const log = await stageLog(stack.api, run.pipelineToken);
    const failedPolls = log.filter((e) => e.code === "poll_failed");
    console.info(
      `continuous faults: ${view.continuous.polls} polls, ${failedPolls.length} failed, ${batches.length} batches, ` +
        `${view.attempts} attempts`,
    );
    expect(log.at(-1)).toMatchObject({ code: "stopped", state: "end" });
    // Every kill this test could fit was made (fewer than KILLS only if the budget ran out).
    expect(kills).toBeGreaterThanOrEqual(10);
  }, 300_000);
});
