/**
 * Fault: the control plane is killed (SIGKILL) mid-run of the 300k-row
 * dataset with default pipeline settings, and started again. Its lease
 * expires, the new process resumes the execution from its checkpoints, and
 * it completes exactly once.
 */
import { afterAll, beforeAll, describe, it } from "vitest";
import type { DrayStack, StackEnvironment } from "./support/dray-stack.js";
import { startRun } from "./support/executions.js";
import { FAULT_SCHEMA, slowWrites } from "./support/fault-dataset.js";
import {
  defaultPipeline,
  expectExactCopy,
  type FaultSource,
  startFaultSource,
  usedRecords,
  waitForCommitted,
} from "./support/fault-stack.js";

let stack: DrayStack;
let source: StackEnvironment;
let sourceDigests: FaultSource["sourceDigests"];

beforeAll(async () => {
  ({ stack, source, sourceDigests } = await startFaultSource());
}, 90_000);

afterAll(async () => stack?.close());

describe("kill -9 of the control plane mid-run, restarted", () => {
  it("the execution resumes and completes: target = source, no duplicate, usage = committed rows", async () => {
    const target = await stack.addEnvironment("shop-qa", `${FAULT_SCHEMA}${slowWrites(0.5)}`);
    const pipelineId = await defaultPipeline(stack.api, "fault-kill-control-plane", source, target);
    const usedBefore = await usedRecords(stack.api);
    const run = await startRun(stack.api, pipelineId);
    await waitForCommitted(stack.api, run.id, 30_000);
    await stack.restartControlPlane("SIGKILL");
    await expectExactCopy(stack, run.id, sourceDigests, target, usedBefore);
  }, 150_000);
});
