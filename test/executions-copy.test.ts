/**
 * A `merge` copy of a CRM-like schema of 500k rows between two real
 * environments (control plane and agents as real processes): the target ends
 * equal to the source, the API's counts match, progress arrives live on NATS
 * and the same events on SSE, a second start while it runs answers 409, the
 * batches chain their cursors, and a second run updates instead of
 * duplicating.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { CRM_ENTITIES, CRM_SCHEMA, CRM_TABLES, type CrmSize, crmData, crmTotal } from "./support/crm.js";
import {
  type DrayStack,
  type StackEnvironment,
  startDrayStack,
  waitForExecution,
} from "./support/dray-stack.js";
import {
  allPages,
  collectNats,
  createPipeline,
  type NatsCollector,
  readEventStream,
  type SseEvent,
  startRun,
  tableDigests,
} from "./support/executions.js";

const SIZE: CrmSize = { accounts: 20_000, contacts: 150_000, opportunities: 130_000, activities: 200_000 };
const TOTAL = crmTotal(SIZE);

let stack: DrayStack;
let source: StackEnvironment;
let target: StackEnvironment;
let pipelineId: string;
let nats: NatsCollector;
let sourceDigests: Awaited<ReturnType<typeof tableDigests>>;
let first: { id: string; view: any; sse: SseEvent[]; conflict: any; natsEndedAt: number };

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"));
  [source, target] = await Promise.all([
    stack.addEnvironment("crm-prod", `${CRM_SCHEMA}${crmData(SIZE)}`),
    stack.addEnvironment("crm-qa", CRM_SCHEMA),
  ]);
  sourceDigests = await tableDigests(source.db.sql, CRM_TABLES);
  pipelineId = await createPipeline(stack.api, {
    name: "crm-refresh",
    sourceEnvironmentId: source.id,
    targetEnvironmentId: target.id,
    writeStrategy: "merge",
    entities: CRM_ENTITIES,
    // Smaller than the default, so every entity spans several batches (two in flight at a time).
    batchSize: 10_000,
  });
  nats = await collectNats(inject("natsUrl"), `dray.${stack.organisationId}.executions.*.>`);
}, 120_000);

afterAll(async () => {
  await nats?.close();
  await stack?.close();
});

describe("a merge copy of 500k CRM rows", () => {
  it("completes with the target equal to the source (row counts and md5 of the ordered rows)", async () => {
    expect(Object.values(sourceDigests).reduce((n, d) => n + d.rows, 0)).toBe(TOTAL);
    const started = performance.now();
    const run = await startRun(stack.api, pipelineId);
    const url = `${stack.cp.httpUrl}/api/v1/executions/${run.id}/events`;
    const [sse, conflict] = await Promise.all([
      readEventStream(url, stack.apiToken, { timeoutMs: 180_000 }),
      stack.api.post(`/api/v1/pipelines/${pipelineId}/executions`),
    ]);
    const view = await waitForExecution(stack.api, run.id, 180_000);
    const seconds = (performance.now() - started) / 1000;
    console.info(
      `merge of ${TOTAL} rows: ${seconds.toFixed(1)} s, ${Math.round(TOTAL / seconds)} rows/s ` +
        `(executor's own figure: ${view.throughput} rows/s over ${view.durationMs} ms)`,
    );
    first = { id: run.id, view, sse: sse.events, conflict, natsEndedAt: Date.now() };
    expect(sse.status).toBe(200);
    expect(sse.contentType).toContain("text/event-stream");
    expect(sse.ended).toBe(true);
    expect(view).toMatchObject({ status: "completed", reasonCode: null, reason: null, attempts: 1 });

    const targetDigests = await tableDigests(target.db.sql, CRM_TABLES);
    expect(targetDigests).toEqual(sourceDigests);
    // The self-reference was back-filled: parents pointing forwards survived.
    const [forward] = await target.db.sql<{ n: number }[]>`
      select count(*)::int as n from accounts where parent_id > id`;
    expect(forward!.n).toBeGreaterThan(1000);
  });

  it("shows per-entity counts that match the tables", async () => {
    const { view } = first;
    const byEntity = new Map<string, any>(view.entities.map((e: any) => [e.entity, e]));
    expect([...byEntity.keys()].sort()).toEqual([...CRM_ENTITIES].sort());
    for (const table of CRM_TABLES) {
      const rows = sourceDigests[table]!.rows;
      expect(byEntity.get(`public.${table}`)).toMatchObject({
        status: "completed",
        total: rows,
        processed: rows,
        created: rows,
        updated: 0,
        skipped: 0,
        failed: 0,
        percent: 100,
      });
    }
    expect(byEntity.get("public.accounts").pass).toBe(2);
    expect(view.entities.map((e: any) => e.entity)).toEqual(CRM_ENTITIES);
    expect(view.entities.map((e: any) => e.level)).toEqual([0, 1, 2, 3]);
    expect(view.totals).toEqual({
      total: TOTAL,
      processed: TOTAL,
      created: TOTAL,
      updated: 0,
      skipped: 0,
      failed: 0,
    });
    expect(view.recordsProcessed).toBe(TOTAL);
    expect(view.throughput).toBeGreaterThan(0);
    const usage = await stack.api.get("/api/v1/usage");
    expect(usage.body.used).toBe(TOTAL);
    expect(usage.body.reserved).toBe(0);
  });

  it("answers a second start while the run is in progress with 409", () => {
    const { conflict, id } = first;
    expect(conflict.status).toBe(409);
    expect(conflict.body.error.code).toBe("failed_precondition");
    expect(conflict.body.error.message).toMatch(/already has an execution in progress/);
    expect(conflict.body.error.details.executionId).toBe(id);
  });

  it("publishes progress on NATS during the run, with increasing processed counts", () => {
    const { id, view } = first;
    const mine = nats.messages.filter((m) => m.data.executionId === id);
    const progress = mine.filter(
      (m) => m.subject === `dray.${stack.organisationId}.executions.${id}.progress`,
    );
    expect(progress.length).toBeGreaterThanOrEqual(3);
    for (const m of progress) expect(m.data.type).toBe("execution.progress");
    const processed = progress.map((m) => m.data.processed as number);
    for (let i = 1; i < processed.length; i++) expect(processed[i]).toBeGreaterThanOrEqual(processed[i - 1]!);
    expect(new Set(processed).size).toBeGreaterThanOrEqual(3);
    expect(processed[0]).toBeLessThan(TOTAL);
    expect(processed.at(-1)).toBe(TOTAL);
    // Progress came before the final status, i.e. while the run was going on.
    const finalIndex = mine.findIndex(
      (m) => m.data.type === "execution.status" && m.data.status === "completed",
    );
    expect(finalIndex).toBeGreaterThan(0);
    const live = mine.slice(0, finalIndex).filter((m) => m.subject.endsWith(".progress") && !m.data.final);
    expect(live.length).toBeGreaterThanOrEqual(2);
    expect(live.some((m) => Date.parse(m.data.at) < Date.parse(view.finishedAt))).toBe(true);
    // seq increases strictly on the execution's subjects.
    const seqs = mine.map((m) => m.data.seq as number);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    expect(new Set(seqs).size).toBe(seqs.length);
    const last = progress.at(-1)!.data;
    expect(last.entities ?? []).toBeDefined();
  });

  it("serves the same events on SSE (same seq ids and payloads) as NATS delivered", () => {
    const { id, sse } = first;
    const sent = new Map(
      nats.messages.filter((m) => m.data.executionId === id).map((m) => [m.data.seq as number, m.data]),
    );
    const streamed = sse.map((e) => ({ id: Number(e.id), event: e.event, data: JSON.parse(e.data) }));
    expect(streamed.length).toBeGreaterThan(5);
    for (const e of streamed) {
      expect(e.data.seq).toBe(e.id);
      expect(e.event).toBe(e.data.type);
    }
    expect(streamed.map((e) => e.id)).toEqual([...sent.keys()].sort((a, b) => a - b));
    for (const e of streamed) expect(e.data).toEqual(sent.get(e.id));
    const progress = streamed.filter((e) => e.event === "execution.progress");
    expect(progress.length).toBeGreaterThanOrEqual(3);
    const statuses = streamed.filter((e) => e.event === "execution.status").map((e) => e.data.status);
    expect(statuses).toEqual(["queued", "in_progress", "completed"]);
    expect(streamed.at(-1)!.data).toMatchObject({ type: "execution.status", status: "completed" });
  });

  it("lists Succeeded batches whose cursors chain from the start to the end of each entity", async () => {
    const batches = await allPages(stack.api, `/api/v1/executions/${first.id}/batches`, "batches");
    expect(batches.length).toBeGreaterThan(40);
    for (const b of batches) expect(b.state).toBe("Succeeded");
    for (const table of CRM_TABLES) {
      for (const pass of [1, 2]) {
        const own = batches.filter((b) => b.entity === `public.${table}` && b.pass === pass);
        if (pass === 2 && table !== "accounts") {
          expect(own).toEqual([]);
          continue;
        }
        expect(own.map((b) => b.seq)).toEqual(own.map((_, i) => i + 1));
        expect(own[0].cursorFrom).toBeNull();
        for (let i = 1; i < own.length; i++) expect(own[i].cursorFrom).toEqual(own[i - 1].cursorTo);
        expect(own.at(-1).cursorTo).toEqual([String(sourceDigests[table]!.rows)]);
        expect(own.reduce((n: number, b: any) => n + b.rows, 0)).toBe(sourceDigests[table]!.rows);
        if (pass === 1)
          expect(own.reduce((n: number, b: any) => n + b.created, 0)).toBe(sourceDigests[table]!.rows);
      }
    }
  });

  it("a second run updates instead of duplicating: created 0, updated = rows, counts unchanged", async () => {
    const run = await startRun(stack.api, pipelineId);
    const view = await waitForExecution(stack.api, run.id, 180_000);
    expect(view.status).toBe("completed");
    for (const table of CRM_TABLES) {
      const rows = sourceDigests[table]!.rows;
      expect(view.entities.find((e: any) => e.entity === `public.${table}`)).toMatchObject({
        total: rows,
        processed: rows,
        created: 0,
        updated: rows,
        skipped: 0,
        failed: 0,
      });
    }
    expect(view.totals).toMatchObject({ created: 0, updated: TOTAL, processed: TOTAL });
    expect(await tableDigests(target.db.sql, CRM_TABLES)).toEqual(sourceDigests);
  });
});
