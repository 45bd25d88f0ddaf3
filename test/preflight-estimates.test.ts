/**
 * Preflight does not scan a large source table whose planner statistics know
 * its rows when the most rows its pages can hold fit the monthly record limit
 * (issue 10, large databases): its total is the estimate until it is loaded,
 * then the rows read. Small tables, and any table when the bound could cross the
 * limit, are counted exactly. Real control plane, agents and databases.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type DrayStack, type StackEnvironment, startDrayStack } from "./support/dray-stack.js";
import { createPipeline } from "./support/executions.js";
import { describeRun, rowsDigest, runAndWait, stageLog } from "./support/real-schema-helpers.js";

/** reading: 80,000 rows of about 260 bytes (about 20 MiB, over the 16 MiB default), analysed, then 8,000 deleted. */
const SCHEMA = `
  create table sensor (sensor_id int primary key, name text not null);
  create table reading (
    reading_id bigint primary key,
    sensor_id int not null references sensor (sensor_id),
    note text not null
  );
`;
const DATA = `
  insert into sensor select g, 'sensor ' || g from generate_series(1, 50) g;
  insert into reading select g, g % 50 + 1, repeat('r', 220) from generate_series(1, 80000) g;
  analyze sensor;
  analyze reading;
  delete from reading where reading_id % 10 = 0;
`;

let stack: DrayStack;
let source: StackEnvironment;
let target: StackEnvironment;

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"));
  [source, target] = await Promise.all([
    stack.addEnvironment("est-src", `${SCHEMA}${DATA}`),
    stack.addEnvironment("est-dst", SCHEMA),
  ]);
}, 90_000);

afterAll(async () => stack?.close());

/** Runs a merge of both tables into the target; its final view and its "Preflight passed" line. */
async function copyBoth(name: string) {
  const pipelineId = await createPipeline(stack.api, {
    name,
    sourceEnvironmentId: source.id,
    targetEnvironmentId: target.id,
    writeStrategy: "merge",
    entities: ["public.sensor", "public.reading"],
  });
  const run = await runAndWait(stack.api, pipelineId, 170_000);
  expect(run.view.status, describeRun(run.view)).toBe("completed");
  const log = (await stageLog(stack.api, run.pipelineToken)).map((s) => String(s.description));
  return { view: run.view, preflight: log.find((d) => d.startsWith("Preflight passed")) };
}

describe("a large source table with planner statistics", () => {
  it("is estimated at preflight, and its total becomes the rows read once loaded", async () => {
    const [size] = await source.db.sql<
      { bytes: string }[]
    >`select pg_relation_size('reading')::text as bytes`;
    expect(Number(size!.bytes)).toBeGreaterThan(16 * 1024 * 1024);
    const { view, preflight } = await copyBoth("estimated");
    // The statistics say 80,000 and the pages hold them still: the total was an estimate, not 72,000.
    expect(preflight).toContain("public.reading estimated from the source's statistics");
    expect(preflight).not.toContain("public.sensor estimated");
    expect(preflight).not.toContain("72050 records");
    const byEntity = Object.fromEntries(view.entities.map((e: any) => [e.entity, e]));
    expect(byEntity["public.reading"]).toMatchObject({ total: 72000, processed: 72000, created: 72000 });
    expect(byEntity["public.sensor"]).toMatchObject({ total: 50, processed: 50 });
    expect(view.totals).toMatchObject({ total: 72050, processed: 72050 });
    expect(await rowsDigest(target.db.sql, "reading")).toEqual(await rowsDigest(source.db.sql, "reading"));
  }, 180_000);

  it("is counted exactly when the most rows it could hold might cross the monthly limit", async () => {
    // Room for the 72,050 rows a second copy reads, not for what reading's pages could hold.
    const r = await stack.admin.patch(`/api/v1/organisations/${stack.organisationId}`, {
      monthlyRecordLimit: 72050 * 2 + 1000,
    });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const { preflight } = await copyBoth("counted");
    expect(preflight).toContain("72050 records");
    expect(preflight).not.toContain("estimated");
  }, 180_000);
});
