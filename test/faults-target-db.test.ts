/**
 * Fault: the target's PostgreSQL stops (immediate shutdown, as in a crash) for
 * 20 s mid-run, then starts again. The target database lives on a second
 * PostgreSQL 15 cluster that this file starts itself. The agent survives,
 * reports its database unreachable, recovers, and the run completes exactly
 * once with default pipeline settings (the batch retries span over 30 s).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { eventually } from "./support/api-client.js";
import { type DrayStack, type StackEnvironment, startDrayStack } from "./support/dray-stack.js";
import { startRun, tableDigests } from "./support/executions.js";
import { FAULT_DATA, FAULT_SCHEMA, FAULT_TABLES, slowWrites } from "./support/fault-dataset.js";
import {
  defaultPipeline,
  expectExactCopy,
  FAULT_HEARTBEAT_MS,
  type OwnPostgres,
  pause,
  startOwnPostgres,
  usedRecords,
  waitForCommitted,
} from "./support/fault-stack.js";

let stack: DrayStack;
let cluster: OwnPostgres;
let source: StackEnvironment;
let sourceDigests: Awaited<ReturnType<typeof tableDigests>>;

beforeAll(async () => {
  cluster = await startOwnPostgres();
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"), { heartbeatMs: FAULT_HEARTBEAT_MS });
  source = await stack.addEnvironment("shop-prod", `${FAULT_SCHEMA}${FAULT_DATA}`);
  sourceDigests = await tableDigests(source.db.sql, FAULT_TABLES);
}, 90_000);

afterAll(async () => {
  await stack?.close();
  await cluster?.remove();
});

describe("the target PostgreSQL stopped for 20 s mid-run", () => {
  it("the agent survives and recovers; the run completes: target = source, no duplicate, usage = committed rows", async () => {
    const target = await stack.addEnvironment("shop-qa", `${FAULT_SCHEMA}${slowWrites(0.5)}`, {
      baseUrl: cluster.url,
    });
    const pipelineId = await defaultPipeline(stack.api, "fault-target-db", source, target);
    const usedBefore = await usedRecords(stack.api);
    const run = await startRun(stack.api, pipelineId);
    await waitForCommitted(stack.api, run.id, 30_000);
    await cluster.stopImmediately();
    const downAt = Date.now();
    // Within the outage, the agent reports its database unreachable (the environment turns unhealthy, saying why).
    const unhealthy = await eventually(async () => {
      const r = await stack.api.get(`/api/v1/environments/${target.id}`);
      return r.body.health === "unhealthy" ? r.body : undefined;
    }, 19_000);
    expect(unhealthy.healthReason).toMatch(/database/);
    await pause(Math.max(0, 20_000 - (Date.now() - downAt)));
    expect(target.agent.child.exitCode).toBeNull();
    await cluster.start();
    await expectExactCopy(stack, run.id, sourceDigests, target, usedBefore);
    expect(target.agent.child.exitCode).toBeNull();
    expect(target.agent.output()).not.toMatch(/TypeError/);
  }, 150_000);
});
