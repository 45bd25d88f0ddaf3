import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { recordExecutionError } from "../src/executions/stage-log.js";
import { executionBatches, executionEntities, newId } from "../src/store/index.js";
import {
  type ExecutionsHarness,
  insertExecution,
  insertPipeline,
  openExecutionsHarness,
} from "./api-executions-fixtures.js";
import { errorOf } from "./api-test-harness.js";

let x: ExecutionsHarness;
let org: { id: string; admin: string; operator: string; viewer: string };
let other: typeof org;
beforeAll(async () => {
  x = await openExecutionsHarness();
  org = await x.h.tenant("lists");
  other = await x.h.tenant("lists-other");
});
afterAll(async () => {
  await x?.close();
});

const get = (path: string, token = org.viewer) => x.call("GET", `/api/v1${path}`, { token });

describe("GET /api/v1/executions/:id/errors", () => {
  it("pages errors oldest first and filters by severity and entity", async () => {
    const pipeline = await insertPipeline(x.db, org.id, "errs");
    const row = await insertExecution(x.db, pipeline, { status: "failed" });
    const written: Awaited<ReturnType<typeof recordExecutionError>>[] = [];
    for (let i = 0; i < 5; i++) {
      written.push(
        await recordExecutionError(x.db, {
          executionId: row.id,
          severity: i % 2 === 0 ? "error" : "warning",
          entity: i < 3 ? "public.orders" : "public.customers",
          recordKey: [String(100 + i)],
          field: i === 0 ? "customer_id" : null,
          code: i === 0 ? "23503" : null,
          message: `problem ${i}`,
        }),
      );
    }
    const all = await get(`/executions/${row.id}/errors?pageSize=2&page=2`);
    expect(all.status).toBe(200);
    expect(all.body).toEqual({
      errors: [2, 3].map((i) => ({
        id: written[i]!.id,
        at: written[i]!.at.toISOString(),
        severity: i % 2 === 0 ? "error" : "warning",
        entity: i < 3 ? "public.orders" : "public.customers",
        recordKey: [String(100 + i)],
        field: null,
        code: null,
        message: `problem ${i}`,
      })),
      page: 2,
      pageSize: 2,
      total: 5,
      next: expect.any(String),
    });
    // `next` continues by keyset from where a page ends; the last page has next null
    const rest = await get(`/executions/${row.id}/errors?pageSize=2&cursor=${all.body.next}`);
    expect(rest.body.errors.map((e: { id: number }) => e.id)).toEqual([written[4]!.id]);
    expect(rest.body.next).toBeNull();
    const pages: number[][] = [];
    let next: string | null = null;
    do {
      const res = await get(`/executions/${row.id}/errors?pageSize=2${next ? `&cursor=${next}` : ""}`);
      pages.push(res.body.errors.map((e: { id: number }) => e.id));
      next = res.body.next;
    } while (next !== null && pages.length < 10);
    expect(pages).toEqual([[0, 1], [2, 3], [4]].map((p) => p.map((i) => written[i]!.id)));
    expect((await get(`/executions/${row.id}/errors?cursor=%00`)).status).toBe(400);
    const first = await get(`/executions/${row.id}/errors`);
    expect(first.body).toMatchObject({ page: 1, pageSize: 50, total: 5 });
    expect(first.body.errors[0]).toMatchObject({ field: "customer_id", code: "23503", message: "problem 0" });
    const errorsOfOrders = await get(`/executions/${row.id}/errors?severity=error&entity=public.orders`);
    expect(errorsOfOrders.body.errors.map((e: { message: string }) => e.message)).toEqual([
      "problem 0",
      "problem 2",
    ]);
    expect(errorsOfOrders.body.total).toBe(2);
    expect((await get(`/executions/${row.id}/errors?severity=fatal`)).status).toBe(400);
    expect((await get(`/executions/${row.id}/errors?page=0`)).status).toBe(400);
    expect((await get(`/executions/${row.id}/errors?pageSize=501`)).status).toBe(400);
    expect((await get(`/executions/${row.id}/errors`, other.viewer)).status).toBe(404);
  });
});

describe("GET /api/v1/executions/:id/batches", () => {
  it("pages batches by entity, pass and seq with seed 03's state labels", async () => {
    const pipeline = await insertPipeline(x.db, org.id, "batches");
    const row = await insertExecution(x.db, pipeline, { status: "in_progress" });
    const started = new Date("2026-05-04T10:00:00.000Z");
    const batch = (
      entity: string,
      pass: number,
      seq: number,
      state: "in_progress" | "succeeded" | "failed" | "cancelled" | "skipped",
    ) => ({
      id: newId(),
      executionId: row.id,
      entity,
      pass,
      seq,
      batchId: `${row.id}:${entity}:${pass}:${seq}`,
      state,
      startedAt: started,
    });
    await x.db.insert(executionBatches).values([
      batch("public.orders", 1, 2, "in_progress"),
      batch("public.orders", 2, 1, "skipped"),
      batch("public.customers", 1, 2, "failed"),
      {
        ...batch("public.customers", 1, 1, "succeeded"),
        cursorFrom: null,
        cursorTo: ["500"],
        rows: 500,
        created: 400,
        updated: 100,
        attempts: 1,
        durationMs: 120,
        finishedAt: new Date(started.getTime() + 120),
      },
      batch("public.orders", 1, 1, "cancelled"),
    ]);
    const res = await get(`/executions/${row.id}/batches`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ page: 1, pageSize: 50, total: 5 });
    expect(res.body.batches.map((b: any) => [b.entity, b.pass, b.seq, b.state])).toEqual([
      ["public.customers", 1, 1, "Succeeded"],
      ["public.customers", 1, 2, "Failed"],
      ["public.orders", 1, 1, "Cancelled"],
      ["public.orders", 1, 2, "In Progress"],
      ["public.orders", 2, 1, "Skipped"],
    ]);
    expect(res.body.batches[0]).toEqual({
      id: expect.any(String),
      entity: "public.customers",
      pass: 1,
      seq: 1,
      state: "Succeeded",
      cursorFrom: null,
      cursorTo: ["500"],
      rows: 500,
      created: 400,
      updated: 100,
      rejected: 0,
      attempts: 1,
      durationMs: 120,
      error: null,
      startedAt: "2026-05-04T10:00:00.000Z",
      finishedAt: "2026-05-04T10:00:00.120Z",
    });
    const orders = await get(`/executions/${row.id}/batches?entity=public.orders&page=2&pageSize=2`);
    expect(orders.body).toMatchObject({ page: 2, pageSize: 2, total: 3 });
    expect(orders.body.batches.map((b: any) => b.state)).toEqual(["Skipped"]);
    expect(orders.body.next).toBeNull();
    const seen: string[] = [];
    let next: string | null = null;
    do {
      const page = await get(`/executions/${row.id}/batches?pageSize=2${next ? `&cursor=${next}` : ""}`);
      seen.push(...page.body.batches.map((b: any) => `${b.entity}:${b.pass}:${b.seq}`));
      next = page.body.next;
    } while (next !== null && seen.length < 20);
    expect(seen).toEqual(res.body.batches.map((b: any) => `${b.entity}:${b.pass}:${b.seq}`));
    expect((await get(`/executions/${row.id}/batches?page=x`)).status).toBe(400);
    expect((await get(`/executions/${row.id}/batches`, other.admin)).status).toBe(404);
  });
});

describe("GET /api/v1/pipelines/:id/executions", () => {
  it("lists runs newest first with duration, records and who, filtered by status and date range", async () => {
    const pipeline = await insertPipeline(x.db, org.id, "history");
    const at = (s: string) => new Date(s);
    const runs = [
      await insertExecution(x.db, pipeline, {
        status: "completed",
        createdAt: at("2026-04-30T23:59:59.999Z"),
        startedAt: at("2026-05-01T00:00:00Z"),
        finishedAt: at("2026-05-01T00:00:03Z"),
      }),
      await insertExecution(x.db, pipeline, { status: "failed", createdAt: at("2026-05-01T00:00:00Z") }),
      await insertExecution(x.db, pipeline, {
        status: "cancelled",
        createdAt: at("2026-05-01T23:59:59.999Z"),
      }),
      await insertExecution(x.db, pipeline, { status: "completed", createdAt: at("2026-05-02T00:00:00Z") }),
      await insertExecution(x.db, pipeline, { status: "in_progress", createdAt: at("2026-05-03T12:00:00Z") }),
    ];
    await x.db.insert(executionEntities).values([
      { executionId: runs[0]!.id, entity: "public.a", level: 0, status: "completed", total: 7, processed: 7 },
      { executionId: runs[0]!.id, entity: "public.b", level: 0, status: "completed", total: 5, processed: 5 },
    ]);
    const ids = (body: any) => body.executions.map((e: { id: string }) => e.id);
    const all = await get(`/pipelines/${pipeline.id}/executions`);
    expect(all.status).toBe(200);
    expect(all.body).toMatchObject({ page: 1, pageSize: 20, total: 5 });
    expect(ids(all.body)).toEqual([4, 3, 2, 1, 0].map((i) => runs[i]!.id));
    expect(all.body.executions[4]).toEqual({
      id: runs[0]!.id,
      pipelineToken: runs[0]!.pipelineToken,
      status: "completed",
      createdAt: "2026-04-30T23:59:59.999Z",
      startedAt: "2026-05-01T00:00:00.000Z",
      finishedAt: "2026-05-01T00:00:03.000Z",
      durationMs: 3_000,
      recordsProcessed: 12,
      triggeredBy: runs[0]!.triggeredBy,
    });
    const page2 = await get(`/pipelines/${pipeline.id}/executions?pageSize=2&page=2`);
    expect(ids(page2.body)).toEqual([runs[2]!.id, runs[1]!.id]);
    const failedOrCancelled = await get(`/pipelines/${pipeline.id}/executions?status=failed,cancelled`);
    expect(ids(failedOrCancelled.body)).toEqual([runs[2]!.id, runs[1]!.id]);
    expect(failedOrCancelled.body.total).toBe(2);
    const oneDay = await get(`/pipelines/${pipeline.id}/executions?from=2026-05-01&to=2026-05-01`);
    expect(ids(oneDay.body)).toEqual([runs[2]!.id, runs[1]!.id]);
    const datetimes = await get(
      `/pipelines/${pipeline.id}/executions?from=2026-05-01T23:59:59.999Z&to=2026-05-02T00:00:00Z&status=completed`,
    );
    expect(ids(datetimes.body)).toEqual([runs[3]!.id]);
  });

  it("follows `next` cursors through the history with no repeat and no gap, ties included", async () => {
    const pipeline = await insertPipeline(x.db, org.id, "history-cursor");
    const t0 = Date.parse("2026-05-01T00:00:00.000Z");
    const runs = [];
    // 23 runs, three per instant: the cursor must tell runs of the same instant apart
    for (let i = 0; i < 23; i++) {
      runs.push(
        await insertExecution(x.db, pipeline, {
          status: i % 5 === 0 ? "failed" : "completed",
          createdAt: new Date(t0 + Math.floor(i / 3) * 1_000),
        }),
      );
    }
    const whole = await get(`/pipelines/${pipeline.id}/executions?pageSize=100`);
    expect(whole.body).toMatchObject({ total: 23, next: null });
    const order = whole.body.executions.map((e: { id: string }) => e.id);
    const seen: string[] = [];
    let next: string | null = null;
    let pages = 0;
    do {
      const cursor: string = next === null ? "" : `&cursor=${next}`;
      const res = await get(`/pipelines/${pipeline.id}/executions?pageSize=4${cursor}`);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      seen.push(...res.body.executions.map((e: { id: string }) => e.id));
      next = res.body.next;
      pages++;
    } while (next !== null && pages < 20);
    expect(pages).toBe(6);
    expect(seen).toEqual(order);
    // a well-formed cursor whose values do not fit their keys is a 400, never a cast error (500)
    const first = await get(`/pipelines/${pipeline.id}/executions?pageSize=4`);
    const [list, position] = JSON.parse(Buffer.from(first.body.next, "base64url").toString("utf8"));
    for (const forged of [
      ["zzz", position[1]],
      [position[0], "zzz"],
      [position[0], null],
    ]) {
      const cursor = Buffer.from(JSON.stringify([list, forged])).toString("base64url");
      const res = await get(`/pipelines/${pipeline.id}/executions?pageSize=4&cursor=${cursor}`);
      expect(res.status, JSON.stringify(forged)).toBe(400);
    }
    // the offset pages carry a next cursor that continues where they end
    const page2 = await get(`/pipelines/${pipeline.id}/executions?pageSize=5&page=2`);
    const after = await get(`/pipelines/${pipeline.id}/executions?pageSize=5&cursor=${page2.body.next}`);
    expect(after.body.executions.map((e: { id: string }) => e.id)).toEqual(order.slice(10, 15));
    // filters apply across the cursor pages
    const failed = await get(`/pipelines/${pipeline.id}/executions?status=failed&pageSize=2`);
    const failedNext = await get(
      `/pipelines/${pipeline.id}/executions?status=failed&pageSize=2&cursor=${failed.body.next}`,
    );
    expect(
      [...failed.body.executions, ...failedNext.body.executions].map((e: { status: string }) => e.status),
    ).toEqual(["failed", "failed", "failed", "failed"]);
    const bad = await get(`/pipelines/${pipeline.id}/executions?cursor=nope!`);
    expect(bad.status).toBe(400);
    expect(errorOf(bad).message).toContain("cursor");
    const both = await get(`/pipelines/${pipeline.id}/executions?page=2&cursor=${page2.body.next}`);
    expect(both.status).toBe(400);
    expect(errorOf(both).message).toBe("give either page or cursor, not both");
  });

  it("answers 400 for bad filters and paging, 404 for other tenants' pipelines", async () => {
    const pipeline = await insertPipeline(x.db, org.id, "history-bad");
    const bad = async (query: string) => {
      const res = await get(`/pipelines/${pipeline.id}/executions?${query}`);
      expect(res.status).toBe(400);
      return errorOf(res).message;
    };
    expect(await bad("status=completed,running")).toContain('status "running"');
    expect(await bad("from=yesterday")).toContain('from "yesterday"');
    expect(await bad("to=2026-02-30")).toContain('to "2026-02-30"');
    expect(await bad("from=2026-05-02&to=2026-05-01")).toContain("after");
    expect(await bad("pageSize=101")).toContain("pageSize");
    expect(await bad("page=-1")).toContain("page");
    expect((await get(`/pipelines/${pipeline.id}/executions`, other.viewer)).status).toBe(404);
    expect((await get(`/pipelines/zzz/executions`)).status).toBe(404);
  });
});
