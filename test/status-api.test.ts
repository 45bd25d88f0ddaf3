/**
 * The seed-compatible job status API (seed 02) and the run history (seed 01)
 * over real runs: exact key sets, the stage entries a run leaves
 * (StreamNotifier, JobRunner, PostgresLoader), job summaries newest first, and
 * history filters by status and date.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  type DrayStack,
  type StackEnvironment,
  startDrayStack,
  waitForExecution,
} from "./support/dray-stack.js";
import { createPipeline, readEventStream, startRun, waitForAgentSleep } from "./support/executions.js";

const SCHEMA = `
  create table regions (id int primary key, name text not null);
  create table sales (id bigint primary key, region_id int not null references regions(id), amount numeric(10,2));
`;
/** In the target: while slow_mode holds a row, writing sale 1 sleeps (so a cancel lands mid-run). */
const SLOW_MODE = `
  create table slow_mode (since timestamptz not null default now());
  create function slow_sale() returns trigger language plpgsql as $$
  begin
    if new.id = 1 and exists (select 1 from slow_mode) then perform pg_sleep(20); end if;
    return new;
  end $$;
  create trigger slow_sale before insert or update on sales for each row execute function slow_sale();
  -- Loads run with triggers off (session_replication_role = replica); this test trigger fires anyway.
  alter table sales enable always trigger slow_sale;
`;
const DATA = `
  insert into regions select g, 'region ' || g from generate_series(1, 20) g;
  insert into sales select g, (g % 20) + 1, g * 0.25 from generate_series(1, 3000) g;
`;
const STAGE_KEYS = [
  "code",
  "dateTime",
  "description",
  "epoch",
  "filename",
  "id",
  "pipeline",
  "pipelineToken",
  "processName",
  "publisherToken",
  "state",
];
const SUMMARY_KEYS = [
  "createdAt",
  "createdAtTimestamp",
  "endTime",
  "pipeline",
  "pipelineToken",
  "process",
  "startTime",
  "status",
  "totalTime",
  "updatedAt",
];
const ISO_SECONDS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;
const STAGE_NAMES = ["StreamNotifier", "DataQuality", "Transformation", "JobRunner", "PostgresLoader"];

let stack: DrayStack;
let source: StackEnvironment;
let target: StackEnvironment;
let pipelineId: string;
/** Runs in start order: completed, failed (record limit), cancelled, completed. */
const runs: { id: string; pipelineToken: string; view: any }[] = [];

const setLimit = (monthlyRecordLimit: number) =>
  stack.admin.patch(`/api/v1/organisations/${stack.organisationId}`, { monthlyRecordLimit });
const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"));
  [source, target] = await Promise.all([
    stack.addEnvironment("src", `${SCHEMA}${DATA}`),
    stack.addEnvironment("dst", `${SCHEMA}${SLOW_MODE}`),
  ]);
  pipelineId = await createPipeline(stack.api, {
    name: "sales_data",
    sourceEnvironmentId: source.id,
    targetEnvironmentId: target.id,
    writeStrategy: "merge",
    entities: ["public.sales", "public.regions"],
    batchSize: 1000,
  });
  const runOnce = async (during?: (id: string) => Promise<void>) => {
    const run = await startRun(stack.api, pipelineId);
    await during?.(run.id);
    runs.push({ ...run, view: await waitForExecution(stack.api, run.id, 60_000) });
  };
  await runOnce();
  await setLimit(0);
  await runOnce();
  await setLimit(100_000_000);
  await target.db.sql`insert into slow_mode default values`;
  await runOnce(async (id) => {
    await waitForAgentSleep(target.db.sql);
    await stack.api.post(`/api/v1/executions/${id}/cancel`, { reason: "test" });
  });
  await target.db.sql`delete from slow_mode`;
  await runOnce();
}, 120_000);

afterAll(async () => stack?.close());

describe("GET /api/v1/pipeline/status?pipelinetoken=…", () => {
  it("the runs ended as planned", () => {
    expect(runs.map((r) => r.view.status)).toEqual(["completed", "failed", "cancelled", "completed"]);
    expect(runs[1]!.view.reasonCode).toBe("monthly_record_limit");
  });

  it("returns the stage entries of a completed job with exactly the seed's fields", async () => {
    const run = runs[0]!;
    const r = await stack.api.get(`/api/v1/pipeline/status?pipelinetoken=${run.pipelineToken}`);
    expect(r.status).toBe(200);
    const entries: any[] = r.body;
    expect(entries.length).toBeGreaterThanOrEqual(8);
    for (const e of entries) {
      expect(Object.keys(e).sort()).toEqual(STAGE_KEYS);
      expect(e).toMatchObject({
        pipeline: "sales_data",
        pipelineToken: run.pipelineToken,
        publisherToken: null,
      });
      expect(typeof e.id).toBe("number");
      expect(e.dateTime).toMatch(ISO_SECONDS);
      expect(Math.floor(e.epoch / 1000) * 1000).toBe(Date.parse(e.dateTime));
      expect(STAGE_NAMES).toContain(e.processName);
      expect(["begin", "processing", "end", "error"]).toContain(e.state);
      expect(typeof e.code).toBe("string");
      expect(e.description.length).toBeGreaterThan(0);
      expect(typeof e.filename).toBe("string");
    }
    const ids = entries.map((e) => e.id);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    const epochs = entries.map((e) => e.epoch);
    expect([...epochs].sort((a, b) => a - b)).toEqual(epochs);
    expect(entries[0]).toMatchObject({
      processName: "StreamNotifier",
      state: "begin",
      description: "Process started",
    });
    expect(entries.at(-1)).toMatchObject({
      processName: "JobRunner",
      state: "end",
      description: "Process completed",
    });
    expect(entries.some((e) => e.state === "error")).toBe(false);
    // Every stage that began also ended, after it began.
    const at = (processName: string, state: string, filename?: string) =>
      entries.findIndex(
        (e) => e.processName === processName && e.state === state && (!filename || e.filename === filename),
      );
    expect(at("JobRunner", "begin")).toBeGreaterThan(at("StreamNotifier", "begin"));
    expect(at("JobRunner", "end")).toBeGreaterThan(at("JobRunner", "begin"));
    for (const entity of ["public.regions", "public.sales"]) {
      expect(at("PostgresLoader", "begin", entity)).toBeGreaterThan(at("JobRunner", "begin"));
      expect(at("PostgresLoader", "end", entity)).toBeGreaterThan(at("PostgresLoader", "begin", entity));
      expect(at("PostgresLoader", "end", entity)).toBeLessThan(at("JobRunner", "end"));
    }
    expect(at("PostgresLoader", "end", "public.regions")).toBeLessThan(
      at("PostgresLoader", "begin", "public.sales"),
    );
    expect(
      entries.find(
        (e) => e.processName === "PostgresLoader" && e.state === "end" && e.filename === "public.sales",
      ),
    ).toMatchObject({ description: "public.sales: 3000 created, 0 updated, 0 skipped, 0 failed" });
  });

  it("shows where a failed job stopped: an error entry of the JobRunner with the reason", async () => {
    const run = runs[1]!;
    const r = await stack.api.get(`/api/v1/pipeline/status?pipelinetoken=${run.pipelineToken}`);
    expect(r.body.map((e: any) => [e.processName, e.state, e.code])).toEqual([
      ["StreamNotifier", "begin", "begin"],
      ["StreamNotifier", "processing", "preflight"],
      ["JobRunner", "error", "monthly_record_limit"],
    ]);
    expect(r.body.at(-1).description).toBe(run.view.reason);
    for (const e of r.body) expect(Object.keys(e).sort()).toEqual(STAGE_KEYS);
  });

  it("answers 404 for an unknown token and 400 without exactly one query parameter", async () => {
    const unknown = await stack.api.get(
      "/api/v1/pipeline/status?pipelinetoken=pt-00000000-0000-4000-8000-000000000000",
    );
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe("not_found");
    expect((await stack.api.get("/api/v1/pipeline/status")).status).toBe(400);
    expect(
      (
        await stack.api.get(
          `/api/v1/pipeline/status?pipelinetoken=${runs[0]!.pipelineToken}&pipelinename=sales_data`,
        )
      ).status,
    ).toBe(400);
  });
});

describe("GET /api/v1/pipeline/status?pipelinename=…&page=…", () => {
  it("returns job summaries, newest first, with exactly the seed's fields", async () => {
    const r = await stack.api.get("/api/v1/pipeline/status?pipelinename=sales_data&page=1");
    expect(r.status).toBe(200);
    const jobs: any[] = r.body;
    expect(jobs.map((j) => j.pipelineToken)).toEqual([...runs].reverse().map((run) => run.pipelineToken));
    for (const j of jobs) {
      expect(Object.keys(j).sort()).toEqual(SUMMARY_KEYS);
      expect(j.pipeline).toBe("sales_data");
      expect(j.createdAtTimestamp).toMatch(ISO_SECONDS);
      expect(Math.floor(j.createdAt / 1000) * 1000).toBe(Date.parse(j.createdAtTimestamp));
      expect(j.updatedAt).toBeGreaterThanOrEqual(j.createdAt);
      expect(j.endTime).toMatch(ISO_SECONDS);
      expect(j.totalTime).toMatch(/^(\d+h )?(\d+m )?\d+s$/);
      expect(STAGE_NAMES).toContain(j.process);
    }
    const [latest, cancelled, failed, oldest] = jobs;
    expect(latest).toMatchObject({ process: "JobRunner", status: "end" });
    expect(oldest).toMatchObject({ process: "JobRunner", status: "end" });
    expect(failed).toMatchObject({ process: "JobRunner", status: "error" });
    expect(cancelled).toMatchObject({ process: "JobRunner", status: "cancelled" });
    for (const [j, run] of [
      [latest, runs[3]!],
      [oldest, runs[0]!],
    ] as const) {
      expect(j.startTime).toMatch(ISO_SECONDS);
      expect(Date.parse(j.startTime)).toBe(Math.floor(Date.parse(run.view.startedAt) / 1000) * 1000);
      expect(Date.parse(j.endTime)).toBe(Math.floor(Date.parse(run.view.finishedAt) / 1000) * 1000);
    }
    expect(jobs.map((j) => j.createdAt)).toEqual([...jobs.map((j) => j.createdAt)].sort((a, b) => b - a));
  });

  it("pages by 20 and answers [] past the end or for an unknown pipeline name", async () => {
    expect((await stack.api.get("/api/v1/pipeline/status?pipelinename=sales_data&page=2")).body).toEqual([]);
    expect(
      (await stack.api.get("/api/v1/pipeline/status?pipelinename=no_such_pipeline&page=1")).body,
    ).toEqual([]);
  });
});

describe("GET /api/v1/pipelines/:id/executions (run history)", () => {
  const history = async (query = "") => {
    const r = await stack.api.get(`/api/v1/pipelines/${pipelineId}/executions${query}`);
    expect(r.status).toBe(200);
    return r.body;
  };
  const ids = (body: any) => body.executions.map((e: any) => e.id);
  const newestFirst = (...indexes: number[]) => indexes.map((i) => runs[i]!.id);

  it("lists every run newest first with status, duration, records and who triggered it", async () => {
    const body = await history();
    expect(body).toMatchObject({ total: 4, page: 1 });
    expect(ids(body)).toEqual(newestFirst(3, 2, 1, 0));
    const [latest] = body.executions;
    expect(latest).toMatchObject({
      id: runs[3]!.id,
      pipelineToken: runs[3]!.pipelineToken,
      status: "completed",
      recordsProcessed: 3020,
      triggeredBy: { tokenName: "stack-admin", role: "admin" },
    });
    expect(latest.durationMs).toBeGreaterThan(0);
    expect(Date.parse(latest.finishedAt)).toBeGreaterThanOrEqual(Date.parse(latest.startedAt));
  });

  it("filters by status", async () => {
    expect(ids(await history("?status=completed"))).toEqual(newestFirst(3, 0));
    expect(ids(await history("?status=failed"))).toEqual(newestFirst(1));
    expect(ids(await history("?status=failed,cancelled"))).toEqual(newestFirst(2, 1));
    expect(ids(await history("?status=in_progress"))).toEqual([]);
    const bad = await stack.api.get(`/api/v1/pipelines/${pipelineId}/executions?status=done`);
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe("invalid_argument");
  });

  it("filters by date and datetime range", async () => {
    expect(ids(await history(`?from=${day(0)}&to=${day(0)}`))).toEqual(newestFirst(3, 2, 1, 0));
    expect(ids(await history(`?from=${day(1)}`))).toEqual([]);
    expect(ids(await history(`?to=${day(-1)}`))).toEqual([]);
    const created = runs.map((r) => r.view.createdAt as string);
    expect(ids(await history(`?from=${created[2]}`))).toEqual(newestFirst(3, 2));
    expect(ids(await history(`?to=${created[1]}`))).toEqual(newestFirst(1, 0));
    expect(ids(await history(`?from=${created[1]}&to=${created[2]}&status=cancelled`))).toEqual(
      newestFirst(2),
    );
    const bad = await stack.api.get(`/api/v1/pipelines/${pipelineId}/executions?from=yesterday`);
    expect(bad.status).toBe(400);
  });
});

describe("GET /api/v1/executions/:id/events over live runs", () => {
  it("always ends with the final status event, and resumes after Last-Event-ID", async () => {
    const quick = await createPipeline(stack.api, {
      name: "regions_only",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "merge",
      entities: ["public.regions"],
    });
    // The stream is followed while each run ends: its last event must be the final status,
    // however the end of the run and the stream's reads interleave.
    const endings: string[] = [];
    let last: { id: string; events: any[] } | undefined;
    for (let i = 0; i < 15; i++) {
      const run = await startRun(stack.api, quick);
      const sse = await readEventStream(
        `${stack.cp.httpUrl}/api/v1/executions/${run.id}/events`,
        stack.apiToken,
        {
          timeoutMs: 20_000,
        },
      );
      expect(sse.ended).toBe(true);
      const data = sse.events.map((e) => JSON.parse(e.data));
      endings.push(`${data.at(-1).type}:${data.at(-1).status}`);
      last = { id: run.id, events: sse.events };
    }
    expect(endings).toEqual(Array(15).fill("execution.status:completed"));

    const { id, events } = last!;
    const resumed = await readEventStream(
      `${stack.cp.httpUrl}/api/v1/executions/${id}/events`,
      stack.apiToken,
      {
        lastEventId: Number(events[2].id),
        timeoutMs: 20_000,
      },
    );
    expect(resumed.events).toEqual(events.slice(3));
  });
});
