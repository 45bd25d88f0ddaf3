/**
 * Failures end to end: rejected records are reported one by one and skipped
 * when stopOnError is false (the run completes), fail the run when it is true,
 * and a source environment that is unhealthy at start (its agent already away
 * for longer than the time preflight would wait for it) fails the run at once.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { eventually } from "./support/api-client.js";
import {
  type DrayStack,
  type StackEnvironment,
  startDrayStack,
  waitForExecution,
} from "./support/dray-stack.js";
import { allPages, countRows, createPipeline, startRun, tableDigest } from "./support/executions.js";

const SCHEMA = `
  create table customers (id bigint primary key, email text not null, note text);
  create table invoices (id bigint primary key, customer_id bigint not null references customers(id), total numeric(10,2));
  create table payments (id bigint primary key, amount numeric(10,2) not null);
  create table audit_log (id bigint primary key, entry text not null);
`;
/** In the target: payment 1234 fails twice with a deadlock (then passes), payment 4321 always with a serialization failure. */
const FLAKY = `
  create sequence payment_attempts;
  create function flaky_payments() returns trigger language plpgsql as $$
  begin
    if new.id = 1234 then
      if nextval('payment_attempts') <= 2 then
        raise exception 'simulated deadlock' using errcode = '40P01';
      end if;
    end if;
    if new.id = 4321 then
      raise exception 'simulated serialization failure' using errcode = '40001';
    end if;
    return new;
  end $$;
  create trigger flaky_payments before insert on payments for each row execute function flaky_payments();
  -- Loads run with triggers off (session_replication_role = replica); this test trigger fires anyway.
  alter table payments enable always trigger flaky_payments;
`;
const DATA = `
  insert into customers select g, 'c' || g || '@example.com', 'source ' || g from generate_series(1, 2000) g;
  insert into invoices select g, (g % 2000) + 1, g * 0.5 from generate_series(1, 3000) g;
  insert into payments select g, g * 0.01 from generate_series(1, 5000) g;
  insert into audit_log select g, repeat(md5(g::text), 3) from generate_series(1, 60000) g;
`;
/** Keys the target already holds, with other values. */
const CONFLICTS = [7, 250, 251, 999, 1000, 1001, 1500, 1999, 2000];

let stack: DrayStack;
let source: StackEnvironment;
let target: StackEnvironment;

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"), { heartbeatMs: 500 });
  [source, target] = await Promise.all([
    stack.addEnvironment("src", `${SCHEMA}${DATA}`),
    stack.addEnvironment("dst", `${SCHEMA}${FLAKY}`),
  ]);
}, 90_000);

afterAll(async () => stack?.close());

async function seedConflicts() {
  await target.db.sql.unsafe(`
    truncate invoices, customers;
    insert into customers select g, 'target-' || g || '@example.com', 'kept' from unnest(array[${CONFLICTS.join(",")}]) g;
  `);
}

describe("an insert into a target that already holds some keys", () => {
  it("with stopOnError=false completes, reports each rejected record with its key, and counts it skipped", async () => {
    await seedConflicts();
    const pipelineId = await createPipeline(stack.api, {
      name: "customers-insert-lenient",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "insert",
      entities: ["public.customers"],
      batchSize: 300,
      stopOnError: false,
    });
    const run = await startRun(stack.api, pipelineId);
    const view = await waitForExecution(stack.api, run.id, 60_000);
    expect(view).toMatchObject({ status: "completed", reasonCode: null });
    expect(view.entities[0]).toMatchObject({
      entity: "public.customers",
      total: 2000,
      processed: 2000,
      created: 2000 - CONFLICTS.length,
      updated: 0,
      skipped: CONFLICTS.length,
      failed: 0,
      status: "completed",
    });

    const errors = await allPages(stack.api, `/api/v1/executions/${run.id}/errors`, "errors");
    const records = errors.filter((e) => e.recordKey !== null);
    expect(records.map((e) => e.recordKey).sort((a, b) => Number(a[0]) - Number(b[0]))).toEqual(
      CONFLICTS.map((k) => [String(k)]),
    );
    for (const e of records) {
      expect(e).toMatchObject({ severity: "error", entity: "public.customers", code: "23505", field: "id" });
      expect(e.message).toMatch(/duplicate key/);
    }
    const filtered = await stack.api.get(
      `/api/v1/executions/${run.id}/errors?severity=error&entity=public.customers`,
    );
    expect(filtered.body.total).toBe(CONFLICTS.length);

    // Good records committed; the target's own rows were left alone.
    expect(await countRows(target.db.sql, "customers")).toBe(2000);
    const kept = await target.db.sql<{ id: string; note: string }[]>`
      select id, note from customers where note = 'kept' order by id`;
    expect(kept.map((r) => Number(r.id))).toEqual(CONFLICTS);
    const usage = await stack.api.get("/api/v1/usage");
    expect(usage.body.used).toBe(2000 - CONFLICTS.length);

    const batches = await allPages(stack.api, `/api/v1/executions/${run.id}/batches`, "batches");
    expect(batches.every((b) => b.state === "Succeeded")).toBe(true);
    expect(batches.reduce((n, b) => n + b.rejected, 0)).toBe(CONFLICTS.length);
  });

  it("with stopOnError=true (the default) fails the run on the first bad batch", async () => {
    await seedConflicts();
    const pipelineId = await createPipeline(stack.api, {
      name: "customers-insert-strict",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "insert",
      entities: ["public.customers"],
      batchSize: 300,
    });
    const used = (await stack.api.get("/api/v1/usage")).body.used;
    const run = await startRun(stack.api, pipelineId);
    const view = await waitForExecution(stack.api, run.id, 60_000);
    expect(view).toMatchObject({ status: "failed", reasonCode: "batch_failed" });
    expect(view.reason).toMatch(/batch 1 of public\.customers failed after 1 attempt\(s\): .*duplicate key/);
    // The first batch (keys 1..300) holds key 7: it rolled back as a whole.
    expect(await countRows(target.db.sql, "customers")).toBe(CONFLICTS.length);
    expect(view.entities[0]).toMatchObject({ created: 0, processed: 0 });
    const batches = await allPages(stack.api, `/api/v1/executions/${run.id}/batches`, "batches");
    // A batch already sent behind it (two writes in flight) waited for it and was not written.
    expect(batches[0]).toMatchObject({ seq: 1, state: "Failed" });
    expect(batches.slice(1).map((b) => [b.state, b.created])).toEqual(
      batches.slice(1).map(() => ["Cancelled", 0]),
    );
    expect((await stack.api.get("/api/v1/usage")).body).toMatchObject({ used, reserved: 0 });
  });
});

describe("a failing entity with a sibling in the same dependency level", () => {
  it("fails the run promptly: the sibling stops at its next batch instead of running to its end", async () => {
    await seedConflicts();
    await target.db.sql`truncate audit_log`;
    const pipelineId = await createPipeline(stack.api, {
      name: "customers-and-audit",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "insert",
      entities: ["public.audit_log", "public.customers"],
      batchSize: 2000,
      entityConcurrency: 2,
    });
    const run = await startRun(stack.api, pipelineId);
    const view = await waitForExecution(stack.api, run.id, 60_000);
    expect(view).toMatchObject({ status: "failed", reasonCode: "batch_failed" });
    expect(view.reason).toMatch(/batch 1 of public\.customers failed/);
    const audit = view.entities.find((e: any) => e.entity === "public.audit_log");
    expect(audit.level).toBe(0);
    // Stopped at a batch boundary soon after the failure, with what it committed counted.
    expect(audit.created).toBeLessThan(60_000 / 2);
    expect(await countRows(target.db.sql, "audit_log")).toBe(audit.created);
    expect(audit.status).not.toBe("completed");
    const batches = await allPages(stack.api, `/api/v1/executions/${run.id}/batches`, "batches");
    expect(batches.filter((b) => b.state === "In Progress")).toEqual([]);
    expect((await stack.api.get("/api/v1/usage")).body.reserved).toBe(0);
  });
});

describe("batches failing with retryable errors", () => {
  it("are retried with backoff; one that keeps failing is skipped with stopOnError=false and the run goes on", async () => {
    const used = (await stack.api.get("/api/v1/usage")).body.used;
    const pipelineId = await createPipeline(stack.api, {
      name: "payments-flaky-target",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "insert",
      entities: ["public.payments"],
      batchSize: 500,
      maxRetriesPerBatch: 2,
      stopOnError: false,
    });
    const run = await startRun(stack.api, pipelineId);
    const view = await waitForExecution(stack.api, run.id, 60_000);
    expect(view).toMatchObject({ status: "completed", reasonCode: null });
    expect(view.entities[0]).toMatchObject({
      total: 5000,
      processed: 5000,
      created: 4500,
      skipped: 0,
      failed: 500,
      status: "completed",
    });
    const batches = await allPages(stack.api, `/api/v1/executions/${run.id}/batches`, "batches");
    expect(batches).toHaveLength(10);
    const bySeq = new Map(batches.map((b) => [b.seq, b]));
    // 1001..1500 holds payment 1234: two deadlocks, then it commits.
    expect(bySeq.get(3)).toMatchObject({ state: "Succeeded", attempts: 3, created: 500, error: null });
    // 4001..4500 holds payment 4321: three attempts, then skipped; the next batch starts after it.
    expect(bySeq.get(9)).toMatchObject({ state: "Skipped", attempts: 3, created: 0, cursorTo: ["4500"] });
    expect(bySeq.get(9).error).toMatch(/simulated serialization failure/);
    expect(bySeq.get(10)).toMatchObject({ state: "Succeeded", cursorFrom: ["4500"], created: 500 });
    expect(
      batches.filter((b) => b.state === "Succeeded").every((b) => b.attempts === (b.seq === 3 ? 3 : 1)),
    ).toBe(true);

    const errors = await allPages(stack.api, `/api/v1/executions/${run.id}/errors`, "errors");
    const warnings = errors.filter((e) => e.severity === "warning");
    expect(warnings).toHaveLength(4);
    for (const w of warnings)
      expect(w.message).toMatch(
        /^writing public\.payments failed \(attempt [12]\), retrying: .*simulated (deadlock|serialization failure)$/,
      );
    const failures = errors.filter((e) => e.severity === "error");
    expect(failures).toHaveLength(1);
    expect(failures[0].message).toMatch(
      /^batch 9 of public\.payments failed after 3 attempt\(s\): .*simulated serialization failure$/,
    );

    const [missing] = await target.db.sql<{ lo: string; hi: string; n: number }[]>`
      select min(g)::text as lo, max(g)::text as hi, count(*)::int as n
      from generate_series(1, 5000) g where not exists (select 1 from payments p where p.id = g)`;
    expect(missing).toEqual({ lo: "4001", hi: "4500", n: 500 });
    expect((await stack.api.get("/api/v1/usage")).body).toMatchObject({ used: used + 4500, reserved: 0 });
  });
});

describe("two starts of the same pipeline at the same moment", () => {
  it("queue one execution; the other answers 409 naming it", async () => {
    const pipelineId = await createPipeline(stack.api, {
      name: "customers-race",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "merge",
      entities: ["public.customers"],
    });
    const answers = await Promise.all(
      Array.from({ length: 4 }, () => stack.api.post(`/api/v1/pipelines/${pipelineId}/executions`)),
    );
    const started = answers.filter((a) => a.status === 202);
    expect(started).toHaveLength(1);
    const refused = answers.filter((a) => a.status === 409);
    expect(refused).toHaveLength(3);
    for (const r of refused) expect(r.body.error.details.executionId).toBe(started[0]!.body.id);
    expect((await waitForExecution(stack.api, started[0]!.body.id, 60_000)).status).toBe("completed");
    const history = await stack.api.get(`/api/v1/pipelines/${pipelineId}/executions`);
    expect(history.body.total).toBe(1);
  });
});

describe("a source environment that is unhealthy at start", () => {
  it("fails the run at once with a reason that names it, before any record moves", async () => {
    await target.db.sql.unsafe("truncate invoices, customers");
    const pipelineId = await createPipeline(stack.api, {
      name: "invoices-from-dead-source",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "merge",
      entities: ["public.customers", "public.invoices"],
    });
    await source.agent.stop("SIGKILL");
    await eventually(async () => {
      const r = await stack.api.get(`/api/v1/environments/${source.id}`);
      return r.body.health === "unhealthy" ? true : undefined;
    }, 10_000);

    const started = Date.now();
    const run = await startRun(stack.api, pipelineId);
    const view = await waitForExecution(stack.api, run.id, 10_000);
    const took = Date.now() - started;
    expect(took).toBeLessThan(3_000);
    expect(view).toMatchObject({ status: "failed", reasonCode: "environment_unhealthy" });
    expect(view.reason).toMatch(/source environment "src" is not healthy/);
    expect(view.reason).toMatch(/no heartbeat|agent/);
    expect(view.totals.processed).toBe(0);
    expect(await tableDigest(target.db.sql, "customers")).toEqual({ rows: 0, md5: null });

    const stages = await stack.api.get(`/api/v1/pipeline/status?pipelinetoken=${run.pipelineToken}`);
    expect(stages.body.at(-1)).toMatchObject({
      processName: "JobRunner",
      state: "error",
      code: "environment_unhealthy",
    });
    expect(stages.body.some((s: any) => s.processName === "PostgresLoader")).toBe(false);

    // Back to healthy, the same pipeline runs. (A new agent process takes a while to start, enrol and
    // report on a busy machine: the wait is generous, it is not what this test measures.)
    await source.restartAgent();
    await eventually(async () => {
      const r = await stack.api.get(`/api/v1/environments/${source.id}`);
      return r.body.health === "healthy" && r.body.agent.connected ? true : undefined;
    }, 50_000);
    const again = await waitForExecution(stack.api, (await startRun(stack.api, pipelineId)).id, 60_000);
    expect(again.status).toBe("completed");
    expect(await countRows(target.db.sql, "invoices")).toBe(3000);
  }, 150_000);
});
