/**
 * Issue 9, first hour, item 2: a never-analysed table is described with a
 * real row estimate (exact for a small table, sampled for a large one), and
 * each entity says where its estimate comes from.
 */
import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { TaskSchema } from "@dray/proto";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { Connector } from "../src/connector.js";
import type { DescribedEntity } from "../src/connectors/postgres/describe-schema.js";
import { createPostgresConnector } from "../src/connectors/postgres/index.js";
import { EXACT_COUNT_MAX_PAGES, estimatePlan } from "../src/connectors/postgres/row-estimates.js";
import { runTask } from "../src/task-runner.js";

const SCHEMA = "est";
const name = `dray_t_${randomBytes(6).toString("hex")}`;
let admin: postgres.Sql;
let sql: postgres.Sql;
let connector: Connector;
const never = () => new AbortController().signal;

beforeAll(async () => {
  const base = inject("databaseUrl");
  admin = postgres(base, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  const url = new URL(base);
  url.pathname = `/${name}`;
  sql = postgres(url.toString(), { max: 2, onnotice: () => {} });
  // No autovacuum: the tables stay unanalysed, as right after a bulk load.
  await sql.unsafe(`create schema ${SCHEMA}`);
  for (const table of ["small", "large", "analysed", "empty"]) {
    await sql.unsafe(
      `create table ${SCHEMA}.${table} (id bigint primary key, body text) with (autovacuum_enabled = false)`,
    );
  }
  await sql.unsafe(`insert into ${SCHEMA}.small select g, 'x' from generate_series(1, 67000) g`);
  // About 4,500 pages of 8 KiB: above the exact-count bound, so it is sampled.
  await sql.unsafe(
    `insert into ${SCHEMA}.large select g, repeat('y', 200) from generate_series(1, 150000) g`,
  );
  await sql.unsafe(`insert into ${SCHEMA}.analysed select g, 'z' from generate_series(1, 500) g`);
  await sql.unsafe(`analyze ${SCHEMA}.analysed`);
  connector = createPostgresConnector({ url: url.toString(), maxConnections: 2 });
}, 60_000);

afterAll(async () => {
  await connector?.close();
  await sql?.end({ timeout: 5 });
  await admin?.unsafe(`drop database if exists "${name}" with (force)`);
  await admin?.end({ timeout: 5 });
});

describe("describeSchema on tables never analysed", () => {
  it("counts a small table exactly, samples a large one and keeps real statistics", async () => {
    const [stats] = await sql.unsafe<{ reltuples: number }[]>(
      `select reltuples::float8 as reltuples from pg_class where oid = '${SCHEMA}.small'::regclass`,
    );
    expect(stats!.reltuples).toBeLessThanOrEqual(0);
    const description = await connector.describeSchema([SCHEMA], never());
    const byName = new Map(description.entities.map((e) => [e.name, e as DescribedEntity]));
    expect(byName.get("small")).toMatchObject({ estimatedRows: 67000, estimateSource: "exact" });
    expect(byName.get("empty")).toMatchObject({ estimatedRows: 0, estimateSource: "exact" });
    expect(byName.get("analysed")).toMatchObject({ estimatedRows: 500, estimateSource: "statistics" });
    const large = byName.get("large")!;
    expect(large.estimateSource).toBe("sampled");
    expect(large.estimatedRows).toBeGreaterThan(150000 * 0.8);
    expect(large.estimatedRows).toBeLessThan(150000 * 1.2);
  });

  it("neither counts nor samples with estimates: false (the heartbeat's fingerprint refresh)", async () => {
    const full = await connector.describeSchema([SCHEMA], never());
    const quick = await connector.describeSchema([SCHEMA], never(), { estimates: false });
    expect(quick.fingerprint).toBe(full.fingerprint);
    const byName = new Map(quick.entities.map((e) => [e.name, e as DescribedEntity]));
    // statistics only: the never-analysed tables keep the catalog's "unknown"
    for (const table of ["small", "large", "empty"])
      expect(byName.get(table), table).toMatchObject({ estimateSource: "statistics", estimatedRows: -1 });
    expect(byName.get("analysed")).toMatchObject({ estimatedRows: 500, estimateSource: "statistics" });
  });

  it("neither counts nor samples for a describe_schema task with statistics_only (a run's preflight)", async () => {
    const estimatesOf = async (statisticsOnly: boolean) => {
      const task = create(TaskSchema, {
        taskId: `t-${statisticsOnly}`,
        kind: { case: "describeSchema", value: { schemas: [SCHEMA], statisticsOnly } },
      });
      const outcome = await runTask(connector, task, never());
      const kind = outcome?.case === "result" ? outcome.value.kind : undefined;
      if (kind?.case !== "describeSchema") throw new Error(`describe failed: ${JSON.stringify(outcome)}`);
      return new Map(
        (kind.value?.entities ?? []).map((e) => [e.name, [Number(e.estimatedRows), e.estimateSource]]),
      );
    };
    const quick = await estimatesOf(true);
    expect(quick.get("small")).toEqual([-1, "statistics"]);
    expect(quick.get("analysed")).toEqual([500, "statistics"]);
    expect((await estimatesOf(false)).get("small")).toEqual([67000, "exact"]);
  });

  it("keeps the fingerprint independent of how rows were estimated", async () => {
    const before = await connector.describeSchema([SCHEMA], never());
    await sql.unsafe(`analyze ${SCHEMA}.small`);
    const after = await connector.describeSchema([SCHEMA], never());
    expect((after.entities.find((e) => e.name === "small") as DescribedEntity).estimateSource).toBe(
      "statistics",
    );
    expect(after.fingerprint).toBe(before.fingerprint);
  });
});

describe("estimatePlan", () => {
  it("uses statistics when they exist and counts or samples otherwise", () => {
    expect(estimatePlan({ reltuples: 5000.4, pages: 60 })).toEqual({ source: "statistics", rows: 5000 });
    expect(estimatePlan({ reltuples: 0, pages: 0 })).toEqual({ source: "statistics", rows: 0 });
    expect(estimatePlan({ reltuples: -1, pages: 0 })).toEqual({ source: "exact" });
    expect(estimatePlan({ reltuples: 0, pages: 12 })).toEqual({ source: "exact" });
    expect(estimatePlan({ reltuples: -1, pages: EXACT_COUNT_MAX_PAGES })).toEqual({ source: "exact" });
    expect(estimatePlan({ reltuples: -1, pages: 102_400 })).toEqual({ source: "sampled", percent: 1 });
  });

  it("samples small tables too once a describe's exact-count budget is spent", () => {
    expect(estimatePlan({ reltuples: -1, pages: 100 }, 100)).toEqual({ source: "exact" });
    expect(estimatePlan({ reltuples: -1, pages: 100 }, 99)).toEqual({ source: "sampled", percent: 100 });
  });
});
