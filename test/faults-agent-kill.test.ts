/**
 * Fault: the target agent is killed (SIGKILL) mid-run and started again 5 s
 * later. A run with default pipeline settings waits for the agent instead of
 * spending its batch retries, then completes exactly once (an agent that
 * stays away: faults-agent-away.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "./support/api-client.js";
import { stageLog } from "./support/continuous.js";
import type { DrayStack, StackEnvironment } from "./support/dray-stack.js";
import { countRows, startRun, waitForAgentSleep } from "./support/executions.js";
import { FAULT_SCHEMA, FAULT_SIZE, slowWrites } from "./support/fault-dataset.js";
import {
  defaultPipeline,
  expectExactCopy,
  expectWaitedForAgent,
  type FaultSource,
  killAgent,
  pause,
  restartAgent,
  startAgent,
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

describe("kill -9 of the target agent, restarted 5 s later", () => {
  it("the run waits for the agent and completes: target = source, no duplicate, usage = committed rows", async () => {
    const target = await stack.addEnvironment("shop-qa", `${FAULT_SCHEMA}${slowWrites(0.5)}`);
    const pipelineId = await defaultPipeline(stack.api, "fault-kill-target", source, target);
    const usedBefore = await usedRecords(stack.api);
    const run = await startRun(stack.api, pipelineId);
    await waitForCommitted(stack.api, run.id, 30_000);
    await restartAgent(target, "SIGKILL", 5_000);
    await expectExactCopy(stack, run.id, sourceDigests, target, usedBefore);
    await expectWaitedForAgent(stack.api, run.id, "shop-qa");
  }, 150_000);
});

describe("kill -9 of the source agent, restarted 2 s later", () => {
  it("the run reads on without its lost snapshot, checks every reference again and completes exactly once", async () => {
    const target = await stack.addEnvironment("shop-src-kill", `${FAULT_SCHEMA}${slowWrites(0.5)}`);
    const pipelineId = await defaultPipeline(stack.api, "fault-kill-source", source, target);
    const usedBefore = await usedRecords(stack.api);
    const run = await startRun(stack.api, pipelineId);
    await waitForCommitted(stack.api, run.id, 30_000);
    await restartAgent(source, "SIGKILL", 2_000);
    await expectExactCopy(stack, run.id, sourceDigests, target, usedBefore);
    const log = await stageLog(stack.api, run.pipelineToken);
    const lost = log.findIndex((e) => e.code === "snapshot_lost");
    expect(lost, JSON.stringify(log.map((e) => e.description))).toBeGreaterThan(0);
    expect(log.filter((e) => e.code === "snapshot_lost")).toHaveLength(1);
    expect(log[lost]!.description).toContain("checks every reference");
    // No entity that began after the loss trusts a reference.
    const later = log.slice(lost).filter((e) => e.state === "begin" && e.description.startsWith("Loading"));
    for (const e of later) expect(e.description).not.toContain("not checked again");
  }, 150_000);
});

/** In the target: committing the batch that holds order 60000 (the second of orders) sleeps 4 s. */
const SLOW_COMMIT = `
  create function fault_slow_commit() returns trigger language plpgsql as $$
  begin
    perform pg_sleep(4);
    return null;
  end $$;
  create constraint trigger fault_slow_commit after insert or update on orders deferrable initially deferred
    for each row when (new.id = 60000) execute function fault_slow_commit();
  -- Loads run with triggers off (session_replication_role = replica); this test trigger fires anyway.
  alter table orders enable always trigger fault_slow_commit;
`;

describe("kill -9 of the target agent while its write commits", () => {
  it("the batch that committed without an answer is resolved once by the ledger when the agent is back", async () => {
    const target = await stack.addEnvironment("shop-commit", `${FAULT_SCHEMA}${SLOW_COMMIT}`);
    const pipelineId = await defaultPipeline(stack.api, "fault-kill-in-commit", source, target);
    const usedBefore = await usedRecords(stack.api);
    const run = await startRun(stack.api, pipelineId);
    await waitForAgentSleep(target.db.sql, 90_000);
    await killAgent(target, "SIGKILL");
    // The server finishes the COMMIT on its own: the rows are in, the control plane was never told.
    const committed = await eventually(async () => {
      const n = await countRows(target.db.sql, "orders");
      return n === FAULT_SIZE.orders ? n : undefined;
    }, 15_000);
    expect(committed).toBe(FAULT_SIZE.orders);
    await pause(3_000);
    await startAgent(target);
    await expectExactCopy(stack, run.id, sourceDigests, target, usedBefore);
    await expectWaitedForAgent(stack.api, run.id, "shop-commit");
  }, 150_000);
});
