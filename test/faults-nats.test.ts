/**
 * Fault: NATS stops for 20 s mid-run (a nats-server this file starts itself,
 * used by the control plane under test). The run completes exactly once and
 * the events of the outage reach NATS once it is back. The control plane also
 * starts while NATS is down, exits promptly on SIGTERM while NATS is down, and
 * publishes the events it queued meanwhile when NATS returns.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { eventually } from "./support/api-client.js";
import {
  type DrayStack,
  type StackEnvironment,
  startDrayStack,
  waitForExecution,
} from "./support/dray-stack.js";
import { createPipeline, startRun, tableDigests } from "./support/executions.js";
import { FAULT_DATA, FAULT_SCHEMA, FAULT_TABLES, slowWrites } from "./support/fault-dataset.js";
import {
  defaultPipeline,
  expectExactCopy,
  FAULT_HEARTBEAT_MS,
  lastStoredEvent,
  type OwnNats,
  pause,
  startOwnNats,
  usedRecords,
  waitForAgents,
  waitForCommitted,
} from "./support/fault-stack.js";

let nats: OwnNats;
let stack: DrayStack;
let source: StackEnvironment;
let target: StackEnvironment;
let sourceDigests: Awaited<ReturnType<typeof tableDigests>>;

beforeAll(async () => {
  nats = await startOwnNats();
  stack = await startDrayStack(inject("databaseUrl"), nats.url, { heartbeatMs: FAULT_HEARTBEAT_MS });
  source = await stack.addEnvironment("shop-prod", `${FAULT_SCHEMA}${FAULT_DATA}`);
  target = await stack.addEnvironment("shop-qa", `${FAULT_SCHEMA}${slowWrites(0.5)}`);
  sourceDigests = await tableDigests(source.db.sql, FAULT_TABLES);
}, 90_000);

afterAll(async () => {
  await stack?.close();
  await nats?.remove();
});

const statusSubject = (executionId: string) =>
  `dray.${stack.organisationId}.executions.${executionId}.status`;

describe("NATS stopped for 20 s mid-run", () => {
  it("the run completes exactly once, and its final status reaches NATS once it is back", async () => {
    const pipelineId = await defaultPipeline(stack.api, "fault-nats", source, target);
    const usedBefore = await usedRecords(stack.api);
    const run = await startRun(stack.api, pipelineId);
    await waitForCommitted(stack.api, run.id, 30_000);
    await nats.stop();
    await pause(20_000);
    await nats.start();
    await expectExactCopy(stack, run.id, sourceDigests, target, usedBefore);
    const last = await eventually(async () => {
      const e = await lastStoredEvent(nats.url, statusSubject(run.id));
      return e?.status === "completed" ? e : undefined;
    }, 20_000);
    expect(last).toMatchObject({ type: "execution.status", status: "completed", executionId: run.id });
  }, 150_000);
});

describe("the control plane while NATS is down", () => {
  it("exits promptly on SIGTERM, starts, runs, and publishes the queued events when NATS returns", async () => {
    await nats.stop();
    const stopping = Date.now();
    const exit = await stack.cp.stop("SIGTERM");
    expect(Date.now() - stopping).toBeLessThan(10_000);
    expect(exit).toBe(0);

    // Before, the start failed at once ("could not start"): it now serves without NATS.
    await stack.restartControlPlane("SIGTERM");
    expect(stack.cp.output()).toMatch(/nats unreachable at start/);
    await waitForAgents(stack.api, [source, target]);

    const pipelineId = await createPipeline(stack.api, {
      name: "fault-nats-down",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "merge",
      entities: ["public.customers"],
    });
    const run = await startRun(stack.api, pipelineId);
    const view = await waitForExecution(stack.api, run.id, 90_000);
    expect(view.status).toBe("completed");
    expect(await lastStoredEvent(nats.url, statusSubject(run.id)).catch(() => undefined)).toBeUndefined();

    await nats.start();
    const last = await eventually(async () => {
      const e = await lastStoredEvent(nats.url, statusSubject(run.id));
      return e?.status === "completed" ? e : undefined;
    }, 30_000);
    expect(last).toMatchObject({ type: "execution.status", status: "completed", executionId: run.id });
  }, 150_000);
});
