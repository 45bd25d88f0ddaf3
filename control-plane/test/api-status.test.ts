import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendStageLog } from "../src/executions/stage-log.js";
import { executionEntities, executions } from "../src/store/index.js";
import {
  type ExecutionsHarness,
  insertExecution,
  insertPipeline,
  openExecutionsHarness,
} from "./api-executions-fixtures.js";
import { errorOf } from "./api-test-harness.js";

/** Field names of seed 02's examples, verbatim. */
const SEED_STAGE_KEYS = [
  "id",
  "dateTime",
  "pipeline",
  "processName",
  "publisherToken",
  "pipelineToken",
  "filename",
  "state",
  "code",
  "description",
  "epoch",
];
const SEED_SUMMARY_KEYS = [
  "createdAtTimestamp",
  "createdAt",
  "updatedAt",
  "pipeline",
  "pipelineToken",
  "process",
  "startTime",
  "endTime",
  "totalTime",
  "status",
];
const sorted = (keys: string[]) => [...keys].sort();

let x: ExecutionsHarness;
let org: { id: string; admin: string; operator: string; viewer: string };
let other: typeof org;
beforeAll(async () => {
  x = await openExecutionsHarness();
  org = await x.h.tenant("status");
  other = await x.h.tenant("status-other");
});
afterAll(async () => {
  await x?.close();
});

const status = (query: string, token = org.viewer) =>
  x.call("GET", `/api/v1/pipeline/status?${query}`, { token });
const t0 = new Date("2026-03-15T10:00:00.250Z");
const plus = (ms: number) => new Date(t0.getTime() + ms);

/** A job of pipeline `sales_data` started through the API, with seed 02's three stages. */
async function salesJob() {
  const pipeline = await insertPipeline(x.db, org.id, "sales_data");
  x.h.clock.now = t0;
  let started: { id: string; pipelineToken: string };
  try {
    started = (await x.call("POST", `/api/v1/pipelines/${pipeline.id}/executions`, { token: org.operator }))
      .body;
  } finally {
    x.h.clock.now = undefined;
  }
  const { id } = started;
  const quality = await appendStageLog(x.db, {
    executionId: id,
    processName: "DataQuality",
    state: "processing",
    code: "processing",
    description: "Running CodeGen data quality rule",
    at: plus(1_000),
  });
  const loader = await appendStageLog(x.db, {
    executionId: id,
    processName: "PostgresLoader",
    state: "end",
    code: "end",
    description: "Process completed",
    entity: "public.orders",
    at: plus(3_000),
  });
  await x.db
    .update(executions)
    .set({ status: "completed", startedAt: t0, finishedAt: plus(3_400), updatedAt: plus(2_000) })
    .where(eq(executions.id, id));
  return { pipeline, ...started, quality, loader };
}

describe("GET /api/v1/pipeline/status?pipelinetoken=", () => {
  it("returns the job's stage entries with exactly seed 02's fields", async () => {
    const job = await salesJob();
    const res = await status(`pipelinetoken=${job.pipelineToken}`);
    expect(res.status).toBe(200);
    expect(res.body).toHaveLength(3);
    for (const entry of res.body) expect(sorted(Object.keys(entry))).toEqual(sorted(SEED_STAGE_KEYS));
    const common = { pipeline: "sales_data", publisherToken: null, pipelineToken: job.pipelineToken };
    expect(res.body).toEqual([
      {
        id: expect.any(Number),
        dateTime: "2026-03-15T10:00:00Z",
        ...common,
        processName: "StreamNotifier",
        filename: "sales_data",
        state: "begin",
        code: "begin",
        description: "Process started",
        epoch: t0.getTime(),
      },
      {
        id: job.quality.id,
        dateTime: "2026-03-15T10:00:01Z",
        ...common,
        processName: "DataQuality",
        filename: "sales_data",
        state: "processing",
        code: "processing",
        description: "Running CodeGen data quality rule",
        epoch: plus(1_000).getTime(),
      },
      {
        id: job.loader.id,
        dateTime: "2026-03-15T10:00:03Z",
        ...common,
        processName: "PostgresLoader",
        filename: "public.orders",
        state: "end",
        code: "end",
        description: "Process completed",
        epoch: plus(3_000).getTime(),
      },
    ]);
    expect(res.body[0].id).toBeLessThan(job.quality.id);
  });

  it("answers 404 for an unknown token or another organisation's", async () => {
    const job = await x.db.select().from(executions).limit(1);
    const unknown = await status("pipelinetoken=pt-00000000-0000-4000-8000-000000000000");
    expect(unknown.status).toBe(404);
    expect(errorOf(unknown).code).toBe("not_found");
    expect((await status(`pipelinetoken=${job[0]!.pipelineToken}`, other.admin)).status).toBe(404);
  });
});

describe("GET /api/v1/pipeline/status?pipelinename=", () => {
  it("summarises jobs with exactly seed 02's fields", async () => {
    const res = await status("pipelinename=sales_data&page=1");
    expect(res.status).toBe(200);
    expect(res.body).toHaveLength(1);
    expect(sorted(Object.keys(res.body[0]))).toEqual(sorted(SEED_SUMMARY_KEYS));
    expect(res.body[0]).toEqual({
      createdAtTimestamp: "2026-03-15T10:00:00Z",
      createdAt: t0.getTime(),
      updatedAt: plus(3_000).getTime(),
      pipeline: "sales_data",
      pipelineToken: expect.stringMatching(/^pt-/),
      process: "PostgresLoader",
      startTime: "2026-03-15T10:00:00Z",
      endTime: "2026-03-15T10:00:03Z",
      totalTime: "3s",
      status: "end",
    });
    expect(await status("pipelinename=sales_data")).toMatchObject({ status: 200, body: res.body });
  });

  it("pages 20 jobs at a time, newest first, and shows running jobs without an end", async () => {
    const pipeline = await insertPipeline(x.db, org.id, "paged");
    const base = Date.parse("2026-04-01T00:00:00Z");
    const rows = [];
    for (let i = 0; i < 25; i++) {
      rows.push(
        await insertExecution(x.db, pipeline, {
          status: i === 24 ? "in_progress" : "completed",
          createdAt: new Date(base + i * 60_000),
          startedAt: new Date(base + i * 60_000),
          finishedAt: i === 24 ? null : new Date(base + i * 60_000 + 125_000),
          updatedAt: new Date(base + i * 60_000),
        }),
      );
    }
    await appendStageLog(x.db, {
      executionId: rows[24]!.id,
      processName: "JobRunner",
      state: "processing",
      code: "processing",
      description: "Loading level 0",
      at: new Date(base + 24 * 60_000 + 5_000),
    });
    const page1 = await status("pipelinename=paged&page=1");
    const page2 = await status("pipelinename=paged&page=2");
    expect(page1.body).toHaveLength(20);
    expect(page2.body).toHaveLength(5);
    expect((await status("pipelinename=paged&page=3")).body).toEqual([]);
    const tokens = [...page1.body, ...page2.body].map((j: { pipelineToken: string }) => j.pipelineToken);
    expect(tokens).toEqual(rows.map((r) => r.pipelineToken).reverse());
    expect(page1.body[0]).toEqual({
      createdAtTimestamp: "2026-04-01T00:24:00Z",
      createdAt: base + 24 * 60_000,
      updatedAt: base + 24 * 60_000 + 5_000,
      pipeline: "paged",
      pipelineToken: rows[24]!.pipelineToken,
      process: "JobRunner",
      startTime: "2026-04-01T00:24:00Z",
      endTime: null,
      totalTime: null,
      status: "processing",
    });
    expect(page1.body[1]).toMatchObject({
      totalTime: "2m 5s",
      process: null,
      status: null,
      endTime: "2026-04-01T00:25:05Z",
    });
  });

  it("never shows a failed or cancelled job with the status of a successful one", async () => {
    const pipeline = await insertPipeline(x.db, org.id, "outcomes");
    const base = Date.parse("2026-04-02T00:00:00Z");
    const jobs: Record<string, string> = {};
    for (const [i, outcome] of (["completed", "failed", "cancelled"] as const).entries()) {
      const at = new Date(base + i * 60_000);
      const row = await insertExecution(x.db, pipeline, {
        status: outcome,
        createdAt: at,
        startedAt: at,
        finishedAt: new Date(at.getTime() + 2_000),
        updatedAt: at,
      });
      // Every job's last stage entry is an "end", as the runner writes for each of them.
      await appendStageLog(x.db, {
        executionId: row.id,
        processName: "JobRunner",
        state: "end",
        code: outcome === "completed" ? "end" : outcome,
        description: `Process ${outcome}`,
        at: new Date(at.getTime() + 2_000),
      });
      jobs[row.pipelineToken] = outcome;
    }
    const res = await status("pipelinename=outcomes");
    expect(res.status).toBe(200);
    const byOutcome = Object.fromEntries(
      res.body.map((j: { pipelineToken: string; status: string }) => [jobs[j.pipelineToken], j.status]),
    );
    expect(byOutcome).toEqual({ completed: "end", failed: "error", cancelled: "cancelled" });
    for (const job of res.body) expect(sorted(Object.keys(job))).toEqual(sorted(SEED_SUMMARY_KEYS));
  });

  it("shows no entity in progress once an execution is cancelled", async () => {
    const pipeline = await insertPipeline(x.db, org.id, "cancelled-midway");
    const row = await insertExecution(x.db, pipeline, { status: "in_progress", startedAt: new Date() });
    await x.db.insert(executionEntities).values([
      {
        executionId: row.id,
        entity: "public.customers",
        level: 0,
        status: "completed",
        total: 5,
        processed: 5,
      },
      {
        executionId: row.id,
        entity: "public.orders",
        level: 1,
        status: "in_progress",
        total: 10,
        processed: 4,
      },
      { executionId: row.id, entity: "public.items", level: 2, status: "pending", total: 10 },
    ]);
    const cancel = await x.call("POST", `/api/v1/executions/${row.id}/cancel`, { token: org.operator });
    expect(cancel.status).toBe(202);
    // The executor notices the request and records the final status.
    await x.db
      .update(executions)
      .set({ status: "cancelled", finishedAt: new Date() })
      .where(eq(executions.id, row.id));
    const view = await x.call("GET", `/api/v1/executions/${row.id}`, { token: org.viewer });
    expect(view.status).toBe(200);
    expect(view.body.entities.map((e: { entity: string; status: string }) => [e.entity, e.status])).toEqual([
      ["public.customers", "completed"],
      ["public.orders", "cancelled"],
      ["public.items", "cancelled"],
    ]);
  });

  it("finishes the entity rows of a queued execution it cancels", async () => {
    const pipeline = await insertPipeline(x.db, org.id, "cancelled-queued");
    const row = await insertExecution(x.db, pipeline, { status: "queued" });
    await x.db.insert(executionEntities).values([
      { executionId: row.id, entity: "public.customers", level: 0, status: "in_progress", total: 5 },
      { executionId: row.id, entity: "public.orders", level: 1, status: "pending", total: 10 },
    ]);
    const cancel = await x.call("POST", `/api/v1/executions/${row.id}/cancel`, { token: org.operator });
    expect(cancel.body.status).toBe("cancelled");
    const stored = await x.db
      .select({ status: executionEntities.status })
      .from(executionEntities)
      .where(eq(executionEntities.executionId, row.id));
    expect(stored.map((e) => e.status)).toEqual(["cancelled", "cancelled"]);
  });

  it("answers [] for an unknown name or another organisation's pipeline", async () => {
    expect(await status("pipelinename=nothing-here")).toMatchObject({ status: 200, body: [] });
    expect(await status("pipelinename=sales_data", other.viewer)).toMatchObject({ status: 200, body: [] });
  });
});

describe("GET /api/v1/pipeline/status validation", () => {
  it("needs exactly one of pipelinetoken and pipelinename, and a page ≥ 1", async () => {
    for (const query of [
      "",
      "page=1",
      "pipelinetoken=pt-x&pipelinename=sales_data",
      "pipelinename=sales_data&page=0",
      "pipelinename=sales_data&page=abc",
      "pipelinename=",
    ]) {
      const res = await status(query);
      expect(res.status, query).toBe(400);
      expect(errorOf(res).code).toBe("invalid_argument");
    }
    expect(errorOf(await status("")).message).toContain("pipelinetoken");
    expect((await x.call("GET", "/api/v1/pipeline/status?pipelinename=sales_data")).status).toBe(401);
    expect((await status("pipelinename=sales_data", x.h.systemToken)).status).toBe(403);
  });
});
