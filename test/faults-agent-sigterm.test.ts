/**
 * Fault: an agent is stopped with SIGTERM mid-run (it drains: finishes its
 * tasks in flight, takes no new ones, and exits), then started again. The run
 * waits for it rather than spending batch retries, and completes exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DrayStack, StackEnvironment } from "./support/dray-stack.js";
import { startRun } from "./support/executions.js";
import { FAULT_SCHEMA, slowWrites } from "./support/fault-dataset.js";
import {
  defaultPipeline,
  expectExactCopy,
  expectWaitedForAgent,
  type FaultSource,
  killAgent,
  startAgent,
  startFaultSource,
  usedRecords,
  waitForAwayWarning,
  waitForCommitted,
} from "./support/fault-stack.js";

let stack: DrayStack;
let source: StackEnvironment;
let sourceDigests: FaultSource["sourceDigests"];

beforeAll(async () => {
  ({ stack, source, sourceDigests } = await startFaultSource());
}, 90_000);

afterAll(async () => stack?.close());

describe("SIGTERM of an agent mid-run, then a restart", () => {
  it("the target agent drains and exits; the run waits for its return and completes exactly once", async () => {
    const target = await stack.addEnvironment("shop-qa", `${FAULT_SCHEMA}${slowWrites(0.5)}`);
    const pipelineId = await defaultPipeline(stack.api, "fault-sigterm-target", source, target);
    const usedBefore = await usedRecords(stack.api);
    const run = await startRun(stack.api, pipelineId);
    await waitForCommitted(stack.api, run.id, 30_000);
    const exit = await killAgent(target, "SIGTERM");
    expect(exit).toBe(0);
    // Restart only once the run is waiting for it: a restart before the run next needs the agent is no fault.
    await waitForAwayWarning(stack.api, run.id, "shop-qa");
    await startAgent(target);
    await expectExactCopy(stack, run.id, sourceDigests, target, usedBefore);
    await expectWaitedForAgent(stack.api, run.id, "shop-qa");
  }, 150_000);

  it("the source agent drains and exits; the run waits for its return and completes exactly once", async () => {
    const target = await stack.addEnvironment("shop-staging", `${FAULT_SCHEMA}${slowWrites(0.5)}`);
    const pipelineId = await defaultPipeline(stack.api, "fault-sigterm-source", source, target);
    const usedBefore = await usedRecords(stack.api);
    const run = await startRun(stack.api, pipelineId);
    await waitForCommitted(stack.api, run.id, 30_000);
    const exit = await killAgent(source, "SIGTERM");
    expect(exit).toBe(0);
    await waitForAwayWarning(stack.api, run.id, "shop-prod");
    await startAgent(source);
    await expectExactCopy(stack, run.id, sourceDigests, target, usedBefore);
    await expectWaitedForAgent(stack.api, run.id, "shop-prod");
  }, 150_000);
});
