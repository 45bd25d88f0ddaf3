/**
 * Issue 9, security 7, end to end with real agents and databases: the tables
 * `"sch.ema"."t"` and `"sch"."ema.t"` (the second references the first) used
 * to share the name `sch.ema.t`. Both are listed apart, selected by their
 * quoted names or parts, planned in FK order and copied each into itself.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  type DrayStack,
  type StackEnvironment,
  startDrayStack,
  waitForExecution,
} from "./support/dray-stack.js";
import { createPipeline, startRun, tableDigest } from "./support/executions.js";

const SCHEMA = `
  create schema "sch.ema";
  create schema sch;
  create table "sch.ema"."t" (id int primary key, label text not null);
  create table "sch"."ema.t" (id int primary key, parent_id int not null references "sch.ema"."t"(id), note text);
`;
const DATA = `
  insert into "sch.ema"."t" select g, 'parent ' || g from generate_series(1, 300) g;
  insert into "sch"."ema.t" select g, (g % 300) + 1, 'child ' || g from generate_series(1, 500) g;
`;
const PARENT = '"sch.ema".t';
const CHILD = 'sch."ema.t"';

let stack: DrayStack;
let source: StackEnvironment;
let target: StackEnvironment;

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"));
  [source, target] = await Promise.all([
    stack.addEnvironment("dotted-src", `${SCHEMA}${DATA}`),
    stack.addEnvironment("dotted-dst", SCHEMA),
  ]);
}, 90_000);

afterAll(async () => stack?.close());

describe("tables whose names hold dots", () => {
  it("are listed under distinct canonical names", async () => {
    const res = await stack.api.get(`/api/v1/environments/${source.id}/entities`);
    expect(res.status).toBe(200);
    const names = res.body.entities.map((e: { entity: string }) => e.entity);
    expect(names).toEqual(expect.arrayContaining([PARENT, CHILD]));
    expect(names).not.toContain("sch.ema.t");
  });

  it("are each copied into the right table, parent first", async () => {
    const pipelineId = await createPipeline(stack.api, {
      name: "dotted names",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "insert",
      entities: [{ schema: "sch", table: "ema.t" }, '"sch.ema"."t"'],
    });
    const plan = await stack.api.get(`/api/v1/pipelines/${pipelineId}/plan`);
    expect(plan.status).toBe(200);
    expect(plan.body.levels).toEqual([[PARENT], [CHILD]]);
    // The tables were never analysed: the agent counted them, and the label travels to the plan.
    expect(
      plan.body.entities.map((e: { entity: string; estimatedRows: number; estimateSource: string }) => [
        e.entity,
        e.estimatedRows,
        e.estimateSource,
      ]),
    ).toEqual(
      expect.arrayContaining([
        [PARENT, 300, "exact"],
        [CHILD, 500, "exact"],
      ]),
    );
    expect(plan.body.estimatedRecords).toBe(800);
    const run = await startRun(stack.api, pipelineId);
    const view = await waitForExecution(stack.api, run.id, 60_000);
    expect(view.status, JSON.stringify(view.reason)).toBe("completed");
    expect(view.entities.map((e: { entity: string; created: number }) => [e.entity, e.created])).toEqual(
      expect.arrayContaining([
        [PARENT, 300],
        [CHILD, 500],
      ]),
    );
    for (const table of ['"sch.ema"."t"', '"sch"."ema.t"'])
      expect(await tableDigest(target.db.sql, table)).toEqual(await tableDigest(source.db.sql, table));
  });

  it("refuses the ambiguous unquoted name", async () => {
    const res = await stack.api.post("/api/v1/pipelines", {
      name: "ambiguous",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "insert",
      entities: ["sch.ema.t"],
    });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toContain(`${CHILD} or ${PARENT}`);
  });
});
