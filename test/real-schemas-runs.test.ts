/**
 * Real schemas, part 4: runs over real data. Rows an insert rejects as
 * duplicates are counted and listed by key without failing the run; a run that
 * fails leaves no entity marked in progress.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type DrayStack, type StackEnvironment, startDrayStack } from "./support/dray-stack.js";
import { allPages, countRows, createPipeline } from "./support/executions.js";
import { describeRun, errorLog, rowsDigest, runAndWait } from "./support/real-schema-helpers.js";

const MOVES = `
  create table stock_move (move_id int primary key, sku text not null, qty int not null, note text);
`;
const MOVES_DATA = `
  insert into stock_move select g, 'SKU-' || (g % 97), g % 13 - 6, 'source' from generate_series(1, 3000) g;
`;
/** The target already holds 2,000 of the 3,000 keys (every key not divisible by 3), with its own values. */
const MOVES_TARGET = `
  insert into stock_move select g, 'OLD-' || g, 0, 'target' from generate_series(1, 3000) g where g % 3 <> 0;
`;

/** gauge.label is wider in the source than in the target; rows past 600 do not fit. */
const GAUGES = (labelType: string) => `
  create table unit (unit_id int primary key, symbol text not null);
  create table gauge (gauge_id int primary key, label ${labelType} not null);
  create table gauge_reading (
    reading_id int primary key,
    gauge_id int not null references gauge (gauge_id),
    unit_id int not null references unit (unit_id),
    value numeric not null
  );
`;
const GAUGES_DATA = `
  insert into unit select g, 'u' || g from generate_series(1, 20000) g;
  insert into gauge select g, case when g > 600 then 'gauge number ' || g else 'g' || g end
    from generate_series(1, 1500) g;
  insert into gauge_reading select g, g % 1500 + 1, g % 20000 + 1, g * 0.5 from generate_series(1, 3000) g;
`;

let stack: DrayStack;
let source: StackEnvironment;
let target: StackEnvironment;

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"));
  [source, target] = await Promise.all([
    stack.addEnvironment("rs-runs-src", `${MOVES}${MOVES_DATA}${GAUGES("text")}${GAUGES_DATA}`),
    stack.addEnvironment("rs-runs-dst", `${MOVES}${MOVES_TARGET}${GAUGES("varchar(5)")}`),
  ]);
}, 90_000);

afterAll(async () => stack?.close());

describe("an insert into a target that already holds most keys", () => {
  it("completes: 1,000 created, 2,000 rejected as duplicates and listed by key", async () => {
    const targetBefore = await rowsDigest(target.db.sql, "stock_move");
    expect(targetBefore.rows).toBe(2000);
    const pipelineId = await createPipeline(stack.api, {
      name: "moves-insert",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "insert",
      entities: ["public.stock_move"],
      batchSize: 500,
      stopOnError: false,
    });
    const run = await runAndWait(stack.api, pipelineId, 170_000);
    console.info(`insert of 3,000 rows with 2,000 duplicates took ${run.durationMs} ms`);
    const { view } = run;
    expect(view.status, describeRun(view)).toBe("completed");
    expect(view.entities[0]).toMatchObject({
      entity: "public.stock_move",
      total: 3000,
      processed: 3000,
      created: 1000,
      updated: 0,
      skipped: 2000,
      failed: 0,
      status: "completed",
    });
    const batches = await allPages(stack.api, `/api/v1/executions/${run.id}/batches`, "batches");
    expect(batches.reduce((n, b) => n + b.rejected, 0)).toBe(2000);
    expect(batches.reduce((n, b) => n + b.created, 0)).toBe(1000);

    const errors = await errorLog(stack.api, run.id);
    const rejected = errors.filter((e) => e.recordKey !== null);
    expect(rejected.length).toBe(2000);
    const keys = rejected.map((e) => Number(e.recordKey[0])).sort((a, b) => a - b);
    const expectedKeys = Array.from({ length: 3000 }, (_, i) => i + 1).filter((k) => k % 3 !== 0);
    expect(keys).toEqual(expectedKeys);
    for (const e of rejected) {
      expect(e).toMatchObject({ severity: "error", entity: "public.stock_move", code: "23505" });
    }

    // The new keys came from the source; the target's own rows were left as they were.
    expect(await countRows(target.db.sql, "stock_move")).toBe(3000);
    expect(await rowsDigest(target.db.sql, "(select * from stock_move where note = 'target')")).toEqual(
      targetBefore,
    );
    expect(await rowsDigest(target.db.sql, "(select * from stock_move where move_id % 3 = 0)")).toEqual(
      await rowsDigest(source.db.sql, "(select * from stock_move where move_id % 3 = 0)"),
    );
  }, 180_000);
});

describe("a run that fails", () => {
  it("leaves no entity in progress", async () => {
    const pipelineId = await createPipeline(stack.api, {
      name: "gauges-strict",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "merge",
      entities: ["public.unit", "public.gauge", "public.gauge_reading"],
      batchSize: 100,
      stopOnError: true,
      entityConcurrency: 2,
    });
    const { id, view: finished } = await runAndWait(stack.api, pipelineId);
    expect(finished.status, describeRun(finished)).toBe("failed");
    expect(finished.reason).toContain("public.gauge");
    // Read again, as a client would after the run ended.
    const r = await stack.api.get(`/api/v1/executions/${id}`);
    expect(r.status).toBe(200);
    expect(r.body.entities.map((e: any) => e.entity).sort()).toEqual([
      "public.gauge",
      "public.gauge_reading",
      "public.unit",
    ]);
    const inProgress = r.body.entities.filter((e: any) => e.status === "in_progress");
    expect(inProgress, describeRun(r.body)).toEqual([]);
    expect(r.body.entities.find((e: any) => e.entity === "public.gauge").status).not.toBe("completed");
    // Nor in the control plane's store, which other readers of the run see.
    const stored = await stack.store.sql<{ entity: string; status: string }[]>`
      select entity, status from execution_entities where execution_id = ${id} and status = 'in_progress'`;
    expect(stored).toEqual([]);
    // The failing batch's predecessors committed: 600 gauges fit.
    expect(await countRows(target.db.sql, "gauge")).toBe(600);
    expect(await countRows(target.db.sql, "gauge_reading")).toBe(0);
    const batches = await allPages(stack.api, `/api/v1/executions/${id}/batches`, "batches");
    expect(batches.filter((b) => b.state === "In Progress")).toEqual([]);
  });
});
