/**
 * Fault: NATS stops for 20 s mid-run (a nats-server this file starts itself,
 * used by the control plane under test). The run completes exactly once and
 * the events of the outage reach NATS once it is back. The control plane also
 * starts while NATS is down, exits promptly on SIGTERM while NATS is down, and
 * the events of a run made meanwhile reach NATS once it returns, each once and
 * in order, even when that control plane was killed (-9) before: the store is
 * the outbox and the restarted control plane republishes them.
 */
import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
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
  it("exits promptly on SIGTERM, starts, runs; after a kill -9 and NATS back, every status event reaches NATS once", async () => {
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

    // kill -9 while NATS is still down: nothing of the run is left in that process's memory.
    // The store is the outbox, so the next control plane publishes every stored event.
    await stack.cp.stop("SIGKILL");
    await nats.start();
    await stack.restartControlPlane("SIGTERM");
    const stored = (
      await stack.store.sql<{ seq: string }[]>`
        select seq from execution_events where execution_id = ${run.id} and channel = 'status' order by seq`
    ).map((r) => Number(r.seq));
    expect(stored.length).toBeGreaterThan(1);
    const seqs = await eventually(async () => {
      const got = await storedEventSeqs(nats.url, statusSubject(run.id));
      return got.length >= stored.length ? got : undefined;
    }, 30_000);
    // Each status event once, in order.
    expect(seqs).toEqual(stored);
    const last = await lastStoredEvent(nats.url, statusSubject(run.id));
    expect(last).toMatchObject({ type: "execution.status", status: "completed", executionId: run.id });
    const [left] = await stack.store.sql<{ n: number }[]>`
      select count(*)::int as n from execution_events where execution_id = ${run.id} and published_at is null`;
    expect(left?.n).toBe(0);
  }, 150_000);
});

/** The `seq` of every event stored in DRAY_EVENTS on `subject`, in stream order (an ordered consumer). */
async function storedEventSeqs(natsUrl: string, subject: string): Promise<number[]> {
  const nc = await connect({ servers: natsUrl });
  try {
    const consumer = await jetstream(nc).consumers.get("DRAY_EVENTS", { filter_subjects: subject });
    const seqs: number[] = [];
    for (;;) {
      const batch = await consumer.fetch({ max_messages: 1_000, expires: 1_000 });
      let got = 0;
      for await (const m of batch) {
        got++;
        seqs.push(m.json<{ seq: number }>().seq);
      }
      if (got === 0) return seqs;
    }
  } catch {
    return [];
  } finally {
    await nc.close();
  }
}
