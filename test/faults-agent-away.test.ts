/**
 * An agent that stays away: a run with default pipeline settings waits for
 * it as long as it takes its environment to turn unhealthy (3 missed
 * heartbeats + a quarter interval), then fails with reason
 * `agent_unavailable`, naming it; a cancel ends the wait at once.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  type DrayStack,
  type StackEnvironment,
  startDrayStack,
  waitForExecution,
} from "./support/dray-stack.js";
import { startRun } from "./support/executions.js";
import { FAULT_DATA, FAULT_SCHEMA, slowWrites } from "./support/fault-dataset.js";
import {
  defaultPipeline,
  FAULT_HEARTBEAT_MS,
  killAgent,
  pause,
  startAgent,
  waitForCommitted,
} from "./support/fault-stack.js";

let stack: DrayStack;
let source: StackEnvironment;

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"), { heartbeatMs: FAULT_HEARTBEAT_MS });
  source = await stack.addEnvironment("shop-prod", `${FAULT_SCHEMA}${FAULT_DATA}`);
}, 90_000);

afterAll(async () => stack?.close());

describe("an agent that stays away", () => {
  it("fails the run with agent_unavailable, naming the environment, once its environment would turn unhealthy", async () => {
    const target = await stack.addEnvironment("shop-gone", `${FAULT_SCHEMA}${slowWrites(0.5)}`);
    const pipelineId = await defaultPipeline(stack.api, "fault-gone-target", source, target);
    const run = await startRun(stack.api, pipelineId);
    await waitForCommitted(stack.api, run.id, 30_000);
    const killedAt = Date.now();
    await killAgent(target, "SIGKILL");
    const view = await waitForExecution(stack.api, run.id, 90_000);
    const waited = Date.now() - killedAt;
    expect(view.status).toBe("failed");
    expect(view.reasonCode).toBe("agent_unavailable");
    expect(view.reason).toMatch(/target environment "shop-gone".* has been away for \d+ s/);
    // 3 missed heartbeats + a quarter interval (32.5 s at the default 10 s), not the ~4 s of spent retries.
    expect(waited).toBeGreaterThanOrEqual(32_000);
    await startAgent(target);
    await pause(100);
  }, 150_000);
});

describe("a cancel while the run waits for an away agent", () => {
  it("ends the run in cancelled within a few seconds", async () => {
    const target = await stack.addEnvironment("shop-cancel", `${FAULT_SCHEMA}${slowWrites(0.5)}`);
    const pipelineId = await defaultPipeline(stack.api, "fault-cancel-waiting", source, target);
    const run = await startRun(stack.api, pipelineId);
    await waitForCommitted(stack.api, run.id, 30_000);
    await killAgent(target, "SIGKILL");
    await pause(1_000);
    const cancelling = Date.now();
    const cancel = await stack.api.post(`/api/v1/executions/${run.id}/cancel`, { reason: "agent gone" });
    expect(cancel.status).toBe(202);
    const view = await waitForExecution(stack.api, run.id, 20_000);
    expect(view.status).toBe("cancelled");
    expect(Date.now() - cancelling).toBeLessThan(5_000);
    await startAgent(target);
  }, 90_000);
});
