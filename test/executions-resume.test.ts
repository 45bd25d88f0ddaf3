/**
 * A control plane that dies (SIGKILL) or stops (SIGTERM) while a batch is
 * being written, and comes back with the same ports and store: the same
 * execution resumes from its checkpoints and completes, the target equals the
 * source with no duplicates, and usage counts each committed record once.
 *
 * A row trigger in the target sleeps on one contact, so the restart always
 * lands while that contact's batch is in flight.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { CRM_ENTITIES, CRM_SCHEMA, CRM_TABLES, type CrmSize, crmData, crmTotal } from "./support/crm.js";
import {
  type DrayStack,
  type StackEnvironment,
  startDrayStack,
  waitForExecution,
} from "./support/dray-stack.js";
import { allPages, createPipeline, startRun, tableDigests, waitForAgentSleep } from "./support/executions.js";

const SIZE: CrmSize = { accounts: 2_000, contacts: 12_000, opportunities: 6_000, activities: 10_000 };
const TOTAL = crmTotal(SIZE);
const BATCH = 2_000;
/** The contact whose insert sleeps, and the batch holding it. */
const SLOW_CONTACT = 8_500;
const SLOW_BATCH = { cursorFrom: ["8000"], cursorTo: ["10000"] };
const SLOW_TRIGGER = `
  create function slow_contact() returns trigger language plpgsql as $$
  begin
    if new.id = ${SLOW_CONTACT} then perform pg_sleep(1.5); end if;
    return new;
  end $$;
  create trigger slow_contact before insert or update on contacts for each row execute function slow_contact();
  -- Loads run with triggers off (session_replication_role = replica); this test trigger fires anyway.
  alter table contacts enable always trigger slow_contact;
`;

/** In the target: committing a batch that holds contact 8500 sleeps 8 s (longer than the 5 s the cancel fence waits). */
const SLOW_COMMIT = `
  create function slow_commit() returns trigger language plpgsql as $$
  begin
    perform pg_sleep(8);
    return null;
  end $$;
  create constraint trigger slow_commit after insert on contacts deferrable initially deferred
    for each row when (new.id = ${SLOW_CONTACT}) execute function slow_commit();
  -- Loads run with triggers off (session_replication_role = replica); this test trigger fires anyway.
  alter table contacts enable always trigger slow_commit;
`;

let stack: DrayStack;
let source: StackEnvironment;
let sourceDigests: Awaited<ReturnType<typeof tableDigests>>;

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"), { leaseMs: 2_000 });
  source = await stack.addEnvironment("crm-prod", `${CRM_SCHEMA}${crmData(SIZE)}`);
  sourceDigests = await tableDigests(source.db.sql, CRM_TABLES);
}, 90_000);

afterAll(async () => stack?.close());

const usageNow = async () => (await stack.api.get("/api/v1/usage")).body;

/** Each entity's succeeded batches chain their cursors once over the whole table; returns all batches. */
async function expectNoOverlap(executionId: string) {
  const batches = await allPages(stack.api, `/api/v1/executions/${executionId}/batches`, "batches");
  for (const table of CRM_TABLES) {
    const done = batches.filter(
      (b) => b.entity === `public.${table}` && b.pass === 1 && b.state === "Succeeded",
    );
    expect(done[0].cursorFrom).toBeNull();
    for (let i = 1; i < done.length; i++) expect(done[i].cursorFrom).toEqual(done[i - 1].cursorTo);
    expect(done.reduce((n: number, b: any) => n + b.rows, 0)).toBe(sourceDigests[table]!.rows);
    expect(done.reduce((n: number, b: any) => n + b.created + b.updated, 0)).toBe(sourceDigests[table]!.rows);
  }
  return batches;
}

/** Starts a run into a fresh target and restarts the control plane while the slow batch is written. */
async function runThroughRestart(
  name: string,
  strategy: "insert" | "merge",
  signal: NodeJS.Signals,
  downMs = 0,
  slow = SLOW_TRIGGER,
) {
  const target = await stack.addEnvironment(`crm-${name}`, `${CRM_SCHEMA}${slow}`);
  const usedBefore = (await usageNow()).used;
  const pipelineId = await createPipeline(stack.api, {
    name: `crm-${name}`,
    sourceEnvironmentId: source.id,
    targetEnvironmentId: target.id,
    writeStrategy: strategy,
    entities: CRM_ENTITIES,
    batchSize: BATCH,
  });
  const run = await startRun(stack.api, pipelineId);
  await waitForAgentSleep(target.db.sql);
  const restartedAt = new Date();
  await stack.restartControlPlane(signal, downMs);
  const view = await waitForExecution(stack.api, run.id, 90_000);
  return { target, run, view, usedBefore, restartedAt };
}

describe("a control plane restarted while a batch is written", () => {
  it("SIGKILL: the same execution completes, the in-flight batch is finished once, usage counted once", async () => {
    const { target, run, view, usedBefore, restartedAt } = await runThroughRestart(
      "kill",
      "insert",
      "SIGKILL",
    );
    expect(view).toMatchObject({ id: run.id, status: "completed", reasonCode: null, reason: null });
    expect(view.attempts).toBeGreaterThanOrEqual(2);
    expect(await tableDigests(target.db.sql, CRM_TABLES)).toEqual(sourceDigests);
    expect(view.totals).toEqual({
      total: TOTAL,
      processed: TOTAL,
      created: TOTAL,
      updated: 0,
      skipped: 0,
      failed: 0,
    });
    const usage = await usageNow();
    expect(usage.used - usedBefore).toBe(TOTAL);
    expect(usage.reserved).toBe(0);

    const batches = await expectNoOverlap(run.id);
    expect(batches.every((b: any) => b.state === "Succeeded")).toBe(true);
    // The batch in flight at the kill was finished by the restarted control plane, under the same id.
    const slow = batches.filter(
      (b: any) => b.entity === "public.contacts" && b.pass === 1 && b.cursorFrom?.[0] === "8000",
    );
    expect(slow).toHaveLength(1);
    expect(slow[0]).toMatchObject({ ...SLOW_BATCH, state: "Succeeded", rows: BATCH, created: BATCH });
    expect(Date.parse(slow[0].startedAt)).toBeLessThan(restartedAt.getTime());
    expect(Date.parse(slow[0].finishedAt)).toBeGreaterThan(restartedAt.getTime());
    // One ledger row per batch: nothing was written twice.
    const [ledger] = await target.db.sql<{ n: number }[]>`
      select count(*)::int as n from dray.batch_ledger where batch_id like ${`${run.id}:%`}`;
    expect(ledger!.n).toBe(batches.length);

    const stages = await stack.api.get(`/api/v1/pipeline/status?pipelinetoken=${run.pipelineToken}`);
    expect(stages.body.some((s: any) => s.code === "resumed")).toBe(true);
    expect(stages.body.at(-1)).toMatchObject({ processName: "JobRunner", state: "end", code: "end" });
  });

  it("SIGTERM, down for a few seconds: the lease is handed back and the run resumes once the agents are back", async () => {
    const { target, run, view, usedBefore, restartedAt } = await runThroughRestart(
      "stop",
      "merge",
      "SIGTERM",
      4_000,
    );
    expect(view).toMatchObject({ id: run.id, status: "completed", reasonCode: null, reason: null });
    expect(view.attempts).toBe(2);
    expect(await tableDigests(target.db.sql, CRM_TABLES)).toEqual(sourceDigests);
    expect(view.totals).toEqual({
      total: TOTAL,
      processed: TOTAL,
      created: TOTAL,
      updated: 0,
      skipped: 0,
      failed: 0,
    });
    const usage = await usageNow();
    expect(usage.used - usedBefore).toBe(TOTAL);
    expect(usage.reserved).toBe(0);

    const batches = await expectNoOverlap(run.id);
    // The write in flight was rolled back at the stop and left in progress (a hand-over seals nothing);
    // the restarted run re-read its exact range and wrote it under the same batch id.
    const slow = batches.filter(
      (b: any) => b.entity === "public.contacts" && b.pass === 1 && b.cursorFrom?.[0] === "8000",
    );
    expect(slow.map((b: any) => [b.state, b.cursorTo])).toEqual([["Succeeded", ["10000"]]]);
    expect(slow[0]).toMatchObject({ ...SLOW_BATCH, created: BATCH });
    expect(Date.parse(slow[0].finishedAt)).toBeGreaterThan(restartedAt.getTime());
    expect(batches.filter((b: any) => b.state !== "Succeeded")).toHaveLength(0);
    // Every ledger row is a succeeded batch: nothing was sealed, nothing written twice.
    const succeeded = batches.map((b: any) => `${run.id}:${b.entity}:${b.pass}:${b.seq}`).sort();
    const ledger = await target.db.sql<{ batch_id: string }[]>`
      select batch_id from dray.batch_ledger where batch_id like ${`${run.id}:%`} order by batch_id`;
    expect(ledger.map((l) => l.batch_id).sort()).toEqual(succeeded);
  });

  it("SIGTERM while a batch commits: the write cannot be stopped, so the batch is left to the restarted run", async () => {
    const { target, run, view, usedBefore, restartedAt } = await runThroughRestart(
      "slow-commit",
      "insert",
      "SIGTERM",
      0,
      SLOW_COMMIT,
    );
    expect(view).toMatchObject({ id: run.id, status: "completed", reasonCode: null, reason: null });
    expect(view.attempts).toBe(2);
    expect(await tableDigests(target.db.sql, CRM_TABLES)).toEqual(sourceDigests);
    expect(view.totals).toEqual({
      total: TOTAL,
      processed: TOTAL,
      created: TOTAL,
      updated: 0,
      skipped: 0,
      failed: 0,
    });
    const usage = await usageNow();
    expect(usage.used - usedBefore).toBe(TOTAL);
    expect(usage.reserved).toBe(0);
    const batches = await expectNoOverlap(run.id);
    expect(batches.every((b: any) => b.state === "Succeeded")).toBe(true);
    // Its outcome was unknown when the control plane stopped: finished once, under the same id, after the restart.
    const slow = batches.filter(
      (b: any) => b.entity === "public.contacts" && b.pass === 1 && b.cursorFrom?.[0] === "8000",
    );
    expect(slow).toHaveLength(1);
    expect(slow[0]).toMatchObject({ ...SLOW_BATCH, rows: BATCH, created: BATCH });
    expect(Date.parse(slow[0].startedAt)).toBeLessThan(restartedAt.getTime());
    expect(Date.parse(slow[0].finishedAt)).toBeGreaterThan(restartedAt.getTime());
    const [ledger] = await target.db.sql<{ n: number }[]>`
      select count(*)::int as n from dray.batch_ledger where batch_id like ${`${run.id}:%`}`;
    expect(ledger!.n).toBe(batches.length);
  });
});
