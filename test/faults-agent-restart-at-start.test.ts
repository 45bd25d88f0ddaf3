/**
 * Fault: the target agent is away just as a run starts (killed with SIGKILL,
 * or drained with SIGTERM, right before the run is queued). Preflight waits
 * for it, as the copier does mid-run, until its environment would turn
 * unhealthy: restarted ~3 s later, the run completes exactly once; away for
 * longer, the run fails with `agent_unavailable`, naming the environment and
 * the agent. The heartbeat is 3 s here (limit 3 × 3 s + ¼ interval = 9.75 s)
 * and the dataset a fifth of the fault suite's, to keep the file short.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  type DrayStack,
  type StackEnvironment,
  startDrayStack,
  waitForExecution,
} from "./support/dray-stack.js";
import { startRun, tableDigest, tableDigests } from "./support/executions.js";
import { FAULT_DATA, FAULT_SCHEMA, FAULT_SIZE, FAULT_TABLES, FAULT_TOTAL } from "./support/fault-dataset.js";
import {
  defaultPipeline,
  expectExactCopy,
  expectWaitedForAgent,
  killAgent,
  pause,
  startAgent,
  usedRecords,
} from "./support/fault-stack.js";

const HEARTBEAT_MS = 3_000;
/** 3 missed heartbeats + a quarter interval: when the environment turns unhealthy. */
const AWAY_LIMIT_MS = 3 * HEARTBEAT_MS + HEARTBEAT_MS / 4;
/** The fault dataset at a fifth of its size (60,000 rows): the fault is at the start, not mid-run. */
const SCALE = 5;
const SMALL_DATA = (["order_lines", "orders", "customers"] as const).reduce(
  (text, t) => text.replaceAll(String(FAULT_SIZE[t]), String(FAULT_SIZE[t] / SCALE)),
  FAULT_DATA,
);
const SMALL_TOTAL = FAULT_TOTAL / SCALE;

let stack: DrayStack;
let source: StackEnvironment;
let sourceDigests: Awaited<ReturnType<typeof tableDigests>>;

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"), { heartbeatMs: HEARTBEAT_MS });
  source = await stack.addEnvironment("shop-prod", `${FAULT_SCHEMA}${SMALL_DATA}`);
  sourceDigests = await tableDigests(source.db.sql, FAULT_TABLES);
  expect(Object.values(sourceDigests).reduce((n, d) => n + d.rows, 0)).toBe(SMALL_TOTAL);
}, 90_000);

afterAll(async () => stack?.close());

describe("the target agent killed (SIGKILL) right before the run starts, restarted 3 s later", () => {
  it("preflight waits for it and the run completes: target = source, no duplicate, usage = committed rows", async () => {
    const target = await stack.addEnvironment("shop-restart", FAULT_SCHEMA);
    const pipelineId = await defaultPipeline(stack.api, "fault-restart-at-start", source, target);
    const usedBefore = await usedRecords(stack.api);
    await killAgent(target, "SIGKILL");
    const run = await startRun(stack.api, pipelineId);
    await pause(3_000);
    await startAgent(target);
    await expectExactCopy(stack, run.id, sourceDigests, target, usedBefore, 60_000, SMALL_TOTAL);
    await expectWaitedForAgent(stack.api, run.id, "shop-restart");
    const stages = await stack.api.get(`/api/v1/pipeline/status?pipelinetoken=${run.pipelineToken}`);
    expect(stages.body.some((s: any) => s.code === "waiting" && /shop-restart/.test(s.description))).toBe(
      true,
    );
  }, 120_000);
});

describe("the target agent drained (SIGTERM) right before the run starts, restarted 3 s later", () => {
  it("preflight waits for it (through the drain's unhealthy mark) and the run completes exactly", async () => {
    const target = await stack.addEnvironment("shop-drained", FAULT_SCHEMA);
    const pipelineId = await defaultPipeline(stack.api, "fault-drain-at-start", source, target);
    const usedBefore = await usedRecords(stack.api);
    expect(await killAgent(target, "SIGTERM")).toBe(0);
    const run = await startRun(stack.api, pipelineId);
    await pause(3_000);
    await startAgent(target);
    await expectExactCopy(stack, run.id, sourceDigests, target, usedBefore, 60_000, SMALL_TOTAL);
    await expectWaitedForAgent(stack.api, run.id, "shop-drained");
  }, 120_000);
});

describe("the target agent killed right before the run starts and not restarted", () => {
  it("fails the run with agent_unavailable, naming the environment and agent, once the limit passes", async () => {
    const target = await stack.addEnvironment("shop-gone", FAULT_SCHEMA);
    const pipelineId = await defaultPipeline(stack.api, "fault-gone-at-start", source, target);
    const killedAt = Date.now();
    await killAgent(target, "SIGKILL");
    const run = await startRun(stack.api, pipelineId);
    const view = await waitForExecution(stack.api, run.id, 30_000);
    const waited = Date.now() - killedAt;
    expect({ status: view.status, reasonCode: view.reasonCode }).toEqual({
      status: "failed",
      reasonCode: "agent_unavailable",
    });
    expect(view.reason).toMatch(
      /^the agent of target environment "shop-gone" \(agent [\w-]+\) has been away for \d+ s, which marks its environment unhealthy: start it again/,
    );
    // Counted from its last heartbeat (at most one interval before the kill), as the health monitor does.
    expect(waited).toBeGreaterThanOrEqual(AWAY_LIMIT_MS - HEARTBEAT_MS);
    expect(waited).toBeLessThan(AWAY_LIMIT_MS + 5_000);
    expect(view.totals.processed).toBe(0);
    expect(await tableDigest(target.db.sql, "customers")).toEqual({ rows: 0, md5: null });
    const stages = await stack.api.get(`/api/v1/pipeline/status?pipelinetoken=${run.pipelineToken}`);
    expect(stages.body.at(-1)).toMatchObject({
      processName: "JobRunner",
      state: "error",
      code: "agent_unavailable",
    });
    await startAgent(target);
    await pause(100);
  }, 60_000);
});

describe("a cancel while preflight waits for an away agent", () => {
  it("ends the run in cancelled at once, before any record moves", async () => {
    const target = await stack.addEnvironment("shop-cancel", FAULT_SCHEMA);
    const pipelineId = await defaultPipeline(stack.api, "fault-cancel-at-start", source, target);
    await killAgent(target, "SIGKILL");
    const run = await startRun(stack.api, pipelineId);
    await pause(1_000);
    const cancelling = Date.now();
    const cancel = await stack.api.post(`/api/v1/executions/${run.id}/cancel`, { reason: "agent gone" });
    expect(cancel.status).toBe(202);
    const view = await waitForExecution(stack.api, run.id, 10_000);
    expect(view.status).toBe("cancelled");
    expect(Date.now() - cancelling).toBeLessThan(3_000);
    expect(view.totals.processed).toBe(0);
    await startAgent(target);
    await pause(100);
  }, 30_000);
});
