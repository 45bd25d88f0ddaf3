import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken } from "../src/auth/index.js";
import type { DrayEvent } from "../src/events/event-bus.js";
import { apiTokens, executionEvents, executionLog, executions } from "../src/store/index.js";
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
  org = await x.h.tenant("exec");
  other = await x.h.tenant("exec-other");
});
afterAll(async () => {
  await x?.close();
});

const tokenIdOf = async (token: string) =>
  (
    await x.db
      .select()
      .from(apiTokens)
      .where(eq(apiTokens.tokenHash, hashToken(token)))
  )[0]!.id;
const rowOf = async (id: string) => (await x.db.select().from(executions).where(eq(executions.id, id)))[0]!;
const logOf = (id: string) =>
  x.db.select().from(executionLog).where(eq(executionLog.executionId, id)).orderBy(asc(executionLog.id));
const eventsOf = (id: string) =>
  x.db
    .select()
    .from(executionEvents)
    .where(eq(executionEvents.executionId, id))
    .orderBy(asc(executionEvents.seq));
const start = (pipelineId: string, json?: unknown, token = org.operator) =>
  x.call("POST", `/api/v1/pipelines/${pipelineId}/executions`, {
    token,
    ...(json === undefined ? {} : { json }),
  });
const cancel = (id: string, json?: unknown, token = org.operator) =>
  x.call("POST", `/api/v1/executions/${id}/cancel`, { token, ...(json === undefined ? {} : { json }) });

describe("POST /api/v1/pipelines/:id/executions", () => {
  it("queues an execution with the pipeline's snapshot, the caller, a stage-log entry and events", async () => {
    const pipeline = await insertPipeline(x.db, org.id, "orders-copy");
    const now = new Date("2026-05-04T09:30:00.000Z");
    const published: { subject: string; event: DrayEvent }[] = [];
    const sub = x.bus.subscribe(`dray.${org.id}.executions.>`, (subject, event) =>
      published.push({ subject, event }),
    );
    x.h.clock.now = now;
    try {
      const res = await start(pipeline.id, { confirm: true });
      expect(res.status).toBe(202);
      expect(res.body).toEqual({
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        pipelineToken: expect.stringMatching(
          /^pt-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
        ),
        status: "queued",
      });
      const id = res.body.id;
      expect(x.queued).toContain(id);
      expect(await rowOf(id)).toMatchObject({
        organisationId: org.id,
        pipelineId: pipeline.id,
        pipelineToken: res.body.pipelineToken,
        status: "queued",
        triggeredBy: { tokenId: await tokenIdOf(org.operator), tokenName: "exec operator", role: "operator" },
        snapshot: {
          name: "orders-copy",
          sourceEnvironmentId: pipeline.sourceEnvironmentId,
          targetEnvironmentId: pipeline.targetEnvironmentId,
          action: "copy",
          writeStrategy: "merge",
          entities: ["public.customers", "public.orders"],
          batchSize: 1000,
          batchBytes: 4_000_000,
          maxRetriesPerBatch: 4,
          stopOnError: true,
          entityConcurrency: 2,
        },
        confirmed: true,
        createdAt: now,
        startedAt: null,
        eventSeq: 2,
      });
      expect(await logOf(id)).toEqual([
        expect.objectContaining({
          processName: "StreamNotifier",
          state: "begin",
          code: "begin",
          description: "Process started",
          entity: null,
          at: now,
        }),
      ]);
      const events = await eventsOf(id);
      expect(events.map((e) => [e.seq, e.channel])).toEqual([
        [1, "status"],
        [2, "log"],
      ]);
      expect(events[0]!.payload).toMatchObject({
        type: "execution.status",
        status: "queued",
        seq: 1,
        executionId: id,
        pipelineToken: res.body.pipelineToken,
      });
      expect(events[1]!.payload).toMatchObject({
        type: "execution.stage",
        processName: "StreamNotifier",
        seq: 2,
      });
      expect(published.map((p) => p.subject)).toEqual([
        `dray.${org.id}.executions.${id}.status`,
        `dray.${org.id}.executions.${id}.log`,
      ]);
    } finally {
      x.h.clock.now = undefined;
      sub.unsubscribe();
    }
  });

  it("answers 409 failed_precondition naming the running execution, and starts again once it is final", async () => {
    const pipeline = await insertPipeline(x.db, org.id, "busy");
    const first = await start(pipeline.id);
    expect(first.status).toBe(202);
    expect((await rowOf(first.body.id)).confirmed).toBe(false);
    const second = await start(pipeline.id, {});
    expect(second.status).toBe(409);
    expect(errorOf(second)).toEqual({
      code: "failed_precondition",
      message: `pipeline "busy" already has an execution in progress (${first.body.id}): wait for it or cancel it`,
      details: { executionId: first.body.id },
    });
    await x.db.update(executions).set({ status: "in_progress" }).where(eq(executions.id, first.body.id));
    expect(errorOf(await start(pipeline.id)).details).toEqual({ executionId: first.body.id });
    await x.db.update(executions).set({ status: "failed" }).where(eq(executions.id, first.body.id));
    const third = await start(pipeline.id);
    expect(third.status).toBe(202);
    expect(third.body.pipelineToken).not.toBe(first.body.pipelineToken);
  });

  it("lets exactly one of several concurrent starts win", async () => {
    const pipeline = await insertPipeline(x.db, org.id, "race");
    const answers = await Promise.all(Array.from({ length: 6 }, () => start(pipeline.id)));
    const won = answers.filter((a) => a.status === 202);
    expect(won).toHaveLength(1);
    for (const lost of answers.filter((a) => a.status !== 202)) {
      expect(lost.status).toBe(409);
      expect(errorOf(lost).details).toEqual({ executionId: won[0]!.body.id });
    }
    const rows = await x.db.select().from(executions).where(eq(executions.pipelineId, pipeline.id));
    expect(rows.map((r) => r.id)).toEqual([won[0]!.body.id]);
  });

  it("needs the operator role, hides other tenants' pipelines and validates the body", async () => {
    const pipeline = await insertPipeline(x.db, org.id, "guarded");
    expect((await start(pipeline.id, undefined, org.viewer)).status).toBe(403);
    expect(errorOf(await start(pipeline.id, undefined, other.operator))).toMatchObject({
      code: "not_found",
      message: `pipeline ${pipeline.id} was not found`,
    });
    expect((await start("not-a-uuid")).status).toBe(404);
    expect((await start("5d0e1f2a-0000-4000-8000-000000000000")).status).toBe(404);
    expect((await start(pipeline.id, { confirm: "yes" })).status).toBe(400);
    expect(errorOf(await start(pipeline.id, { confirm: true, force: true })).message).toContain("force");
    expect(await x.db.select().from(executions).where(eq(executions.pipelineId, pipeline.id))).toEqual([]);
  });
});

describe("POST /api/v1/executions/:id/cancel", () => {
  it("cancels a queued execution at once, with who and why, a stage-log entry and a status event", async () => {
    const pipeline = await insertPipeline(x.db, org.id, "cancel-queued");
    const { id } = (await start(pipeline.id)).body;
    const res = await cancel(id, { reason: "wrong target" });
    expect(res.status).toBe(202);
    const cancelledBy = {
      tokenId: await tokenIdOf(org.operator),
      tokenName: "exec operator",
      role: "operator",
    };
    expect(res.body).toMatchObject({
      id,
      status: "cancelled",
      cancelRequested: true,
      cancelledBy,
      reasonCode: "cancelled_by_user",
      reason: "cancelled by exec operator: wrong target",
      finishedAt: expect.any(String),
      startedAt: null,
      durationMs: null,
    });
    const row = await rowOf(id);
    expect(row).toMatchObject({ status: "cancelled", cancelledBy, reasonCode: "cancelled_by_user" });
    expect(row.finishedAt).toBeInstanceOf(Date);
    expect((await logOf(id)).at(-1)).toMatchObject({
      processName: "JobRunner",
      state: "end",
      code: "cancelled",
      description: "Execution cancelled by exec operator: wrong target",
    });
    const status = (await eventsOf(id)).filter((e) => e.channel === "status").at(-1)!;
    expect(status.payload).toMatchObject({ type: "execution.status", status: "cancelled", cancelledBy });
  });

  it("only requests the cancel of a running execution (the executor finishes it)", async () => {
    const pipeline = await insertPipeline(x.db, org.id, "cancel-running");
    const row = await insertExecution(x.db, pipeline, { status: "in_progress", startedAt: new Date() });
    const res = await cancel(row.id);
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({
      status: "in_progress",
      cancelRequested: true,
      reason: "cancelled by exec operator",
      reasonCode: null,
      finishedAt: null,
    });
    const after = await rowOf(row.id);
    expect(after.cancelRequestedAt).toBeInstanceOf(Date);
    expect(after).toMatchObject({
      status: "in_progress",
      finishedAt: null,
      cancelledBy: { tokenName: "exec operator" },
    });
    expect((await eventsOf(row.id)).map((e) => (e.payload as { type: string }).type)).toEqual([
      "execution.cancel_requested",
    ]);
    expect(await logOf(row.id)).toEqual([]);
  });

  it("refuses a final execution with 409, needs the operator role and hides other tenants", async () => {
    const pipeline = await insertPipeline(x.db, org.id, "cancel-final");
    const done = await insertExecution(x.db, pipeline, { status: "completed" });
    const res = await cancel(done.id);
    expect(res.status).toBe(409);
    expect(errorOf(res)).toMatchObject({
      code: "failed_precondition",
      message: "execution is already completed",
    });
    const queued = await insertExecution(x.db, pipeline, { status: "queued" });
    expect((await cancel(queued.id, undefined, org.viewer)).status).toBe(403);
    expect((await cancel(queued.id, undefined, other.operator)).status).toBe(404);
    expect((await cancel("nope")).status).toBe(404);
    expect((await cancel(queued.id, { reason: "x".repeat(501) })).status).toBe(400);
    expect((await rowOf(queued.id)).status).toBe("queued");
  });
});
