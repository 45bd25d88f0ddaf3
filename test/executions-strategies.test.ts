/**
 * Write strategies and dependency plans end to end: a two-table FK cycle
 * through a nullable reference is loaded with that field NULL and back-filled;
 * `clean` empties the target rows first; `merge` updates changed rows and
 * keeps target-only ones.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  type DrayStack,
  type StackEnvironment,
  startDrayStack,
  waitForExecution,
} from "./support/dray-stack.js";
import { allPages, createPipeline, startRun, tableDigest, tableDigests } from "./support/executions.js";

const SCHEMA = `
  create table teams (id int primary key, name text not null, lead_id int);
  create table people (id int primary key, team_id int not null references teams(id), email text not null);
  alter table teams add constraint teams_lead_fk foreign key (lead_id) references people(id);
  create table products (id bigint primary key, sku text not null unique, price numeric(10,2), tags text[]);
  create table orders (id bigint primary key, product_id bigint not null references products(id), qty int not null);
  create type mood as enum ('sad', 'ok', 'happy');
  create table oddities (
    id int primary key, t text, vc varchar(20), ch char(5), b boolean, i2 smallint, i8 bigint,
    f4 real, f8 double precision, n numeric, d date, ts timestamp, tz timestamptz, iv interval, tm time,
    u uuid, j jsonb, js json, by bytea, ta text[], ia int[], m mood, inet_ inet, pt point
  );
`;
const DATA = `
  insert into teams select g, 'team ' || g, null from generate_series(1, 300) g;
  insert into people select g, (g % 300) + 1, 'p' || g || '@example.com' from generate_series(1, 3000) g;
  -- A lead of every team but each seventh, chosen among its members (forwards and backwards in id order).
  update teams set lead_id = case when id % 7 = 0 then null else id + 300 * (id % 9) - 1 end;
  update teams set lead_id = null where lead_id not in (select id from people) or lead_id < 1;
  insert into products select g, 'SKU-' || g, g * 1.5, array['a' || g, 'b,"c"'] from generate_series(1, 2000) g;
  insert into orders select g, (g % 2000) + 1, g % 17 from generate_series(1, 8000) g;
  insert into oddities select g, md5(g::text), left(md5(g::text), 20), 'z', g % 2 = 0, g % 100, g::int8 * 1000003, g / 7.0, g / 3.0,
      g / 11.0, date '2000-01-01' + g, timestamp '2000-01-01' + g * interval '1 hour',
      timestamptz '2000-01-01 00:00+00' + g * interval '1 minute', g * interval '1 second', time '00:00' + g * interval '1 second',
      md5(g::text)::uuid, jsonb_build_object('g', g, 's', 'v' || g), json_build_array(g, 'x'), decode(md5(g::text), 'hex'),
      array['a' || g, null], array[g, g + 1], (array['sad', 'ok', 'happy'])[g % 3 + 1]::mood, '192.168.0.1', point(g, -g)
    from generate_series(5, 3000) g;
`;

/** Edge values of many types, as SQL exactly as written (String.raw). */
const ODDITIES = String.raw`
  insert into oddities values
    (1, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null),
    (2, '', '', '', false, -32768, -9223372036854775808, 'NaN', '-Infinity', 'NaN', '-infinity', 'infinity', '-infinity',
      '-178000000 years', '00:00', '00000000-0000-0000-0000-000000000000', 'null', '[]', '', '{}', '{}', 'sad', '::1', '(0,0)'),
    (3, E'\\N', 'N', 'ab', true, 32767, 9223372036854775807, 3.4e38, 1.7976931348623157e308, 1e-30,
      '0001-01-01 BC', '1999-12-31 23:59:59.999999', '2000-01-01 00:00:00.000001+14', '1 day -00:00:01', '23:59:59.999999',
      'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": "x\"y", "b": [1, null, "\u00e9"]}', '{"k":  1 }',
      E'\\x00ff5c0a0d09', '{NULL,"NULL","a,b","c\"d","e\\f",""}', '{1,NULL,-3}', 'happy', '10.0.0.1/8', '(-1.5,2e-7)'),
    (4, E'tab\there\nnew\rret\\back \u00e9\u2713 \U0001F600', repeat('x', 20), 'xyz', true, 0, 0, -0.0, 0.1,
      123456789012345678901234567890.123456789, '2024-02-29', '2024-02-29 12:00', '2024-02-29 12:00:00-05:30',
      '1 year 2 mons 3 days 04:05:06.789', '12:34', 'ffffffff-ffff-ffff-ffff-ffffffffffff',
      '{"nested": {"deep": [{"x": "\t"}]}}', 'true', E'\\x', '{"{braces}"," spaced "}', '{{1,2},{3,4}}', 'ok',
      '2001:db8::/32', '(1,1)');
`;

let stack: DrayStack;
let source: StackEnvironment;
let target: StackEnvironment;

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"));
  [source, target] = await Promise.all([
    stack.addEnvironment("src", `${SCHEMA}${DATA}${ODDITIES}`),
    stack.addEnvironment("dst", SCHEMA),
  ]);
}, 90_000);

afterAll(async () => stack?.close());

describe("a two-table FK cycle through a nullable reference", () => {
  it("is loaded with the reference NULL, then back-filled: target equals source", async () => {
    const [withLead] = await source.db.sql<{ n: number }[]>`
      select count(*)::int as n from teams where lead_id is not null`;
    expect(withLead!.n).toBeGreaterThan(200);
    const pipelineId = await createPipeline(stack.api, {
      name: "org-chart",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "insert",
      entities: ["public.people", "public.teams"],
      batchSize: 500,
    });
    const plan = await stack.api.get(`/api/v1/pipelines/${pipelineId}/plan`);
    expect(plan.status).toBe(200);
    expect(plan.body.levels).toEqual([["public.teams"], ["public.people"]]);
    const run = await startRun(stack.api, pipelineId);
    const view = await waitForExecution(stack.api, run.id, 60_000);
    expect(view.status).toBe("completed");

    expect(await tableDigests(target.db.sql, ["teams", "people"])).toEqual(
      await tableDigests(source.db.sql, ["teams", "people"]),
    );
    const [restored] = await target.db.sql<{ n: number }[]>`
      select count(*)::int as n from teams where lead_id is not null`;
    expect(restored!.n).toBe(withLead!.n);

    const teams = view.entities.find((e: any) => e.entity === "public.teams");
    const people = view.entities.find((e: any) => e.entity === "public.people");
    expect(teams).toMatchObject({ level: 0, pass: 2, status: "completed", created: 300, processed: 300 });
    expect(people).toMatchObject({ level: 1, pass: 1, status: "completed", created: 3000, processed: 3000 });
    // Back-filled references are not counted again as records, nor as usage.
    expect(view.totals).toMatchObject({ total: 3300, processed: 3300, created: 3300, updated: 0 });
    const batches = await allPages(stack.api, `/api/v1/executions/${run.id}/batches`, "batches");
    const backFill = batches.filter((b) => b.pass === 2);
    expect(backFill.length).toBe(1);
    expect(backFill[0]).toMatchObject({
      entity: "public.teams",
      state: "Succeeded",
      created: 0,
      // Only the rows whose reference the back-fill changes: a team without a lead is left alone.
      updated: withLead!.n,
    });

    const stages = await stack.api.get(`/api/v1/pipeline/status?pipelinetoken=${run.pipelineToken}`);
    expect(stages.body.map((s: any) => s.description)).toContain(
      "Back-filling deferred references of public.teams (lead_id)",
    );
  });
});

describe("field types", () => {
  it("copies NULLs, empty and special text, extreme numbers, dates, json, bytea, arrays and enums exactly", async () => {
    const pipelineId = await createPipeline(stack.api, {
      name: "oddities",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "merge",
      entities: ["public.oddities"],
      batchSize: 700,
    });
    for (const expected of [
      { created: 3000, updated: 0 },
      { created: 0, updated: 3000 },
    ]) {
      const view = await waitForExecution(stack.api, (await startRun(stack.api, pipelineId)).id, 60_000);
      expect(view.status).toBe("completed");
      expect(view.totals).toMatchObject({ ...expected, skipped: 0, failed: 0 });
      expect(await tableDigest(target.db.sql, "oddities")).toEqual(
        await tableDigest(source.db.sql, "oddities"),
      );
    }
    // Row by row too, so a difference names the row.
    const rows = (sql: typeof source.db.sql) =>
      sql.unsafe<{ id: number; row: string }[]>(
        "select id, t::text as row from oddities t where id <= 4 order by id",
      );
    expect(await rows(target.db.sql)).toEqual(await rows(source.db.sql));
  });
});

describe("write strategies", () => {
  it("clean deletes the selected entities' target rows first, then loads", async () => {
    // Stale, conflicting and target-only rows in both tables.
    await target.db.sql.unsafe(`
      insert into products select g, 'OLD-' || g, 0, null from generate_series(1500, 2600) g;
      insert into orders select g, 1500 + g % 100, 99 from generate_series(7000, 9500) g;
    `);
    const pipelineId = await createPipeline(stack.api, {
      name: "catalogue-clean",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "clean",
      entities: ["public.orders", "public.products"],
      batchSize: 1000,
    });
    const run = await startRun(stack.api, pipelineId);
    const view = await waitForExecution(stack.api, run.id, 60_000);
    expect(view.status).toBe("completed");
    expect(await tableDigests(target.db.sql, ["products", "orders"])).toEqual(
      await tableDigests(source.db.sql, ["products", "orders"]),
    );
    expect(view.totals).toMatchObject({ total: 10_000, created: 10_000, updated: 0, skipped: 0, failed: 0 });
    const stages = await stack.api.get(`/api/v1/pipeline/status?pipelinetoken=${run.pipelineToken}`);
    const cleans = stages.body.filter((s: any) => s.code === "clean");
    // Children first: orders, then products, each before any load.
    expect(cleans.map((s: any) => s.description)).toEqual([
      expect.stringMatching(/^Deleted 2501 rows of public\.orders in dst$/),
      expect.stringMatching(/^Deleted 1101 rows of public\.products in dst$/),
    ]);
    const firstLoad = stages.body.findIndex(
      (s: any) => s.processName === "PostgresLoader" && s.state === "begin",
    );
    expect(stages.body.findIndex((s: any) => s.code === "clean")).toBeLessThan(firstLoad);
  });

  it("merge updates changed rows and keeps target-only rows", async () => {
    await target.db.sql.unsafe(`
      update products set price = -1, tags = null where id % 10 = 0;
      insert into products values (5000, 'TARGET-ONLY', 1, null);
      delete from orders where id > 7900;
    `);
    const pipelineId = await createPipeline(stack.api, {
      name: "catalogue-merge",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "merge",
      entities: ["public.products", "public.orders"],
      batchSize: 1000,
    });
    const run = await startRun(stack.api, pipelineId);
    const view = await waitForExecution(stack.api, run.id, 60_000);
    expect(view.status).toBe("completed");
    expect(view.entities.find((e: any) => e.entity === "public.products")).toMatchObject({
      created: 0,
      updated: 2000,
    });
    expect(view.entities.find((e: any) => e.entity === "public.orders")).toMatchObject({
      created: 100,
      updated: 7900,
    });
    const [kept] = await target.db.sql<{ sku: string }[]>`select sku from products where id = 5000`;
    expect(kept?.sku).toBe("TARGET-ONLY");
    await target.db.sql`delete from products where id = 5000`;
    expect(await tableDigest(target.db.sql, "products")).toEqual(
      await tableDigest(source.db.sql, "products"),
    );
    expect(await tableDigest(target.db.sql, "orders")).toEqual(await tableDigest(source.db.sql, "orders"));
  });
});
