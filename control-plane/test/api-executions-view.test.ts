import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { executionEntities, executions } from "../src/store/index.js";
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
  org = await x.h.tenant("view");
  other = await x.h.tenant("view-other");
});
afterAll(async () => {
  await x?.close();
});

describe("GET /api/v1/executions/:id", () => {
  it("shows duration, throughput, totals and entities by level then name", async () => {
    const pipeline = await insertPipeline(x.db, org.id, "view");
    const now = new Date("2026-05-04T10:00:10.000Z");
    const row = await insertExecution(x.db, pipeline, {
      status: "in_progress",
      createdAt: new Date("2026-05-04T09:59:55.000Z"),
      startedAt: new Date("2026-05-04T10:00:00.000Z"),
      attempts: 2,
    });
    const entity = (
      name: string,
      level: number,
      status: "pending" | "in_progress" | "completed",
      n: number[],
    ) => ({
      executionId: row.id,
      entity: name,
      level,
      status,
      total: n[0]!,
      processed: n[1]!,
      created: n[2]!,
      updated: n[3]!,
      skipped: n[4]!,
      failed: n[5]!,
    });
    await x.db
      .insert(executionEntities)
      .values([
        entity("public.orders", 1, "in_progress", [200, 50, 40, 8, 1, 1]),
        entity("public.customers", 0, "completed", [100, 100, 90, 10, 0, 0]),
        entity("public.addresses", 0, "pending", [0, 0, 0, 0, 0, 0]),
      ]);
    x.h.clock.now = now;
    try {
      const res = await x.call("GET", `/api/v1/executions/${row.id}`, { token: org.viewer });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        id: row.id,
        pipelineId: pipeline.id,
        pipelineName: "view",
        pipelineToken: row.pipelineToken,
        status: "in_progress",
        cancelRequested: false,
        kind: "run",
        continuous: null,
        fileId: null,
        publisherToken: null,
        triggeredBy: row.triggeredBy,
        cancelledBy: null,
        reasonCode: null,
        reason: null,
        createdAt: "2026-05-04T09:59:55.000Z",
        startedAt: "2026-05-04T10:00:00.000Z",
        finishedAt: null,
        durationMs: 10_000,
        recordsProcessed: 150,
        throughput: 15,
        totals: { total: 300, processed: 150, created: 130, updated: 18, skipped: 1, failed: 1 },
        entities: [
          {
            entity: "public.addresses",
            level: 0,
            status: "pending",
            pass: 1,
            total: 0,
            processed: 0,
            created: 0,
            updated: 0,
            skipped: 0,
            failed: 0,
            percent: 0,
          },
          {
            entity: "public.customers",
            level: 0,
            status: "completed",
            pass: 1,
            total: 100,
            processed: 100,
            created: 90,
            updated: 10,
            skipped: 0,
            failed: 0,
            percent: 100,
          },
          {
            entity: "public.orders",
            level: 1,
            status: "in_progress",
            pass: 1,
            total: 200,
            processed: 50,
            created: 40,
            updated: 8,
            skipped: 1,
            failed: 1,
            percent: 25,
          },
        ],
        attempts: 2,
      });
      // Once finished, the duration stops at finishedAt.
      await x.db
        .update(executions)
        .set({ status: "completed", finishedAt: new Date("2026-05-04T10:00:04.000Z") })
        .where(eq(executions.id, row.id));
      const done = await x.call("GET", `/api/v1/executions/${row.id}`, { token: org.viewer });
      expect(done.body).toMatchObject({ status: "completed", durationMs: 4_000, throughput: 37.5 });
    } finally {
      x.h.clock.now = undefined;
    }
  });

  it("has no duration or throughput before the start, and hides other tenants", async () => {
    const pipeline = await insertPipeline(x.db, org.id, "view-queued");
    const row = await insertExecution(x.db, pipeline, { status: "queued" });
    const res = await x.call("GET", `/api/v1/executions/${row.id}`, { token: org.viewer });
    expect(res.body).toMatchObject({
      status: "queued",
      durationMs: null,
      throughput: 0,
      recordsProcessed: 0,
      entities: [],
    });
    expect(res.body.totals).toEqual({
      total: 0,
      processed: 0,
      created: 0,
      updated: 0,
      skipped: 0,
      failed: 0,
    });
    expect(
      errorOf(await x.call("GET", `/api/v1/executions/${row.id}`, { token: other.admin })),
    ).toMatchObject({
      code: "not_found",
      message: `execution ${row.id} was not found`,
    });
    expect((await x.call("GET", "/api/v1/executions/123", { token: org.viewer })).status).toBe(404);
    expect((await x.call("GET", `/api/v1/executions/${row.id}`)).status).toBe(401);
  });
});
