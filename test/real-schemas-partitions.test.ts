/**
 * Real schemas, part 1: a declaratively partitioned table whose foreign keys
 * are declared on its partitions only (the plan still orders it after the
 * tables they reference; merge and clean copy it exactly), inheritance (a
 * parent is read, written and cleaned apart from its child), and a parent with
 * a conditional INSTEAD rule (writes land in the table they came from).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type DrayStack, type StackEnvironment, startDrayStack } from "./support/dray-stack.js";
import { createPipeline } from "./support/executions.js";
import {
  createAndRun,
  describeRun,
  levelIndex,
  planOf,
  rowsDigest,
  rowsDigests,
  rowVersions,
  runAndWait,
} from "./support/real-schema-helpers.js";

/** A workshop's invoices, partitioned by quarter; each partition has its own foreign keys. */
const PARTITIONS = `
  create table client (client_id int primary key, name text not null);
  create table mechanic (mechanic_id int primary key, name text not null, hired_on date not null);
  create table invoice (
    invoice_id int not null,
    client_id int not null,
    mechanic_id int not null,
    amount numeric(8,2) not null,
    issued_on date not null,
    primary key (issued_on, invoice_id)
  ) partition by range (issued_on);
  do $$
  declare q int;
  begin
    for q in 1..4 loop
      execute format(
        'create table invoice_2024_q%s partition of invoice for values from (%L) to (%L)',
        q, make_date(2024, q * 3 - 2, 1), make_date(2024, q * 3 - 2, 1) + interval '3 months');
      execute format(
        'alter table invoice_2024_q%s add constraint invoice_2024_q%s_client_fk foreign key (client_id) references client (client_id),
           add constraint invoice_2024_q%s_mechanic_fk foreign key (mechanic_id) references mechanic (mechanic_id)',
        q, q, q);
    end loop;
  end $$;
`;
const PARTITION_DATA = `
  insert into client select g, 'Client ' || g from generate_series(1, 400) g;
  insert into mechanic select g, 'Mechanic ' || g, date '2015-01-01' + g * 90 from generate_series(1, 12) g;
  insert into invoice
    select g, (g * 7) % 400 + 1, g % 12 + 1, (g % 500) * 1.25 + 0.5, date '2024-01-01' + (g * 13) % 366
    from generate_series(1, 6000) g;
  analyze;
`;

/** A parent with rows of its own and a child inheriting from it. */
const INHERITANCE = `
  create table tool (tool_id int primary key, label text not null);
  create table power_tool (watts int not null) inherits (tool);
  alter table power_tool add primary key (tool_id);
`;
const INHERITANCE_DATA = `
  insert into tool values (1, 'hammer'), (2, 'hand saw');
  insert into power_tool values (3, 'drill', 500), (4, 'angle grinder', 900);
`;

/** A parent whose conditional INSTEAD rule sends high readings to its child. */
const RULES_TABLES = `
  create table reading (reading_id int primary key, x int not null);
  create table high_reading () inherits (reading);
  alter table high_reading add primary key (reading_id);
`;
const RULE = `
  create rule reading_high as on insert to reading where (new.x >= 100)
    do instead insert into high_reading values (new.*);
`;
/** Inserted before the rule exists, so the parent holds a high reading of its own and the child a low one. */
const RULES_DATA = `
  insert into reading values (1, 5), (2, 150);
  insert into high_reading values (3, 200), (4, 7);
`;

const PARTITION_ENTITIES = ["public.client", "public.mechanic", "public.invoice"];
const PARTITION_TABLES = ["client", "mechanic", "invoice"];

let stack: DrayStack;
let source: StackEnvironment;
let target: StackEnvironment;

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"));
  [source, target] = await Promise.all([
    stack.addEnvironment(
      "rs-part-src",
      `${PARTITIONS}${PARTITION_DATA}${INHERITANCE}${INHERITANCE_DATA}${RULES_TABLES}${RULES_DATA}${RULE}`,
    ),
    stack.addEnvironment("rs-part-dst", `${PARTITIONS}${INHERITANCE}${RULES_TABLES}${RULE}`),
  ]);
}, 90_000);

afterAll(async () => stack?.close());

const pipeline = (name: string, writeStrategy: string, entities: string[]) => ({
  name,
  sourceEnvironmentId: source.id,
  targetEnvironmentId: target.id,
  writeStrategy,
  entities,
  batchSize: 1000,
});

describe("a partitioned table with foreign keys declared on its partitions only", () => {
  it("is planned after the tables its partitions reference, and merged exactly", async () => {
    const pipelineId = await createPipeline(
      stack.api,
      pipeline("invoices-merge", "merge", PARTITION_ENTITIES),
    );
    const plan = await planOf(stack.api, pipelineId);
    expect(plan.blocking).toEqual([]);
    const invoiceLevel = levelIndex(plan, "public.invoice");
    // Soft, so the run below still shows what loading in that order does.
    expect.soft(invoiceLevel, JSON.stringify(plan.levels)).toBeGreaterThan(levelIndex(plan, "public.client"));
    expect
      .soft(invoiceLevel, JSON.stringify(plan.levels))
      .toBeGreaterThan(levelIndex(plan, "public.mechanic"));
    expect.soft(plan.entities.find((e: any) => e.entity === "public.invoice")).toMatchObject({
      kind: "partitioned",
      rowKey: ["issued_on", "invoice_id"],
    });
    expect(levelIndex(plan, "public.client")).toBeGreaterThanOrEqual(0);
    expect(levelIndex(plan, "public.mechanic")).toBeGreaterThanOrEqual(0);

    const { view } = await runAndWait(stack.api, pipelineId);
    expect(view.status, describeRun(view)).toBe("completed");
    expect(view.entities.find((e: any) => e.entity === "public.invoice")).toMatchObject({
      created: 6000,
      failed: 0,
      skipped: 0,
    });
    const expected = await rowsDigests(source.db.sql, PARTITION_TABLES);
    expect(expected.invoice!.rows).toBe(6000);
    expect(await rowsDigests(target.db.sql, PARTITION_TABLES)).toEqual(expected);
    // Every row sits in the partition its date belongs to.
    for (let q = 1; q <= 4; q++) {
      expect(await rowsDigest(target.db.sql, `invoice_2024_q${q}`)).toEqual(
        await rowsDigest(source.db.sql, `invoice_2024_q${q}`),
      );
    }
  });

  it("is cleaned and loaded again exactly by a clean run over all its tables", async () => {
    // Stale target rows the clean must remove, in a partition and in a referenced table.
    await target.db.sql.unsafe(`
      insert into client values (9001, 'target only');
      insert into mechanic values (9001, 'target only', date '2020-01-01');
      insert into invoice values (90001, 9001, 9001, 1.00, date '2024-05-05');
      update invoice set amount = 0 where invoice_id % 10 = 0;
    `);
    const { view } = await createAndRun(stack, pipeline("invoices-clean", "clean", PARTITION_ENTITIES));
    expect(view.status, describeRun(view)).toBe("completed");
    expect(await rowsDigests(target.db.sql, PARTITION_TABLES)).toEqual(
      await rowsDigests(source.db.sql, PARTITION_TABLES),
    );
  });
});

describe("inheritance", () => {
  it("copies a parent's own rows and its child's rows each into its own table", async () => {
    const pipelineId = await createPipeline(
      stack.api,
      pipeline("tools-merge", "merge", ["public.tool", "public.power_tool"]),
    );
    const plan = await planOf(stack.api, pipelineId);
    expect.soft(plan.entities.find((e: any) => e.entity === "public.tool")).toMatchObject({
      kind: "inheritance_parent",
    });
    const { view } = await runAndWait(stack.api, pipelineId);
    expect(view.status, describeRun(view)).toBe("completed");
    const parent = await rowsDigest(target.db.sql, "only tool");
    expect(parent.rows).toBe(2);
    expect(parent).toEqual(await rowsDigest(source.db.sql, "only tool"));
    const child = await rowsDigest(target.db.sql, "power_tool");
    expect(child.rows).toBe(2);
    expect(child).toEqual(await rowsDigest(source.db.sql, "power_tool"));
    const ids = await target.db.sql<{ tool_id: number }[]>`select tool_id from only tool order by tool_id`;
    expect(ids.map((r) => r.tool_id)).toEqual([1, 2]);
  });

  it("a clean of the parent alone leaves the child's target rows untouched", async () => {
    // The target's child holds the source's rows (written here, so this test stands alone).
    await target.db.sql.unsafe(`
      delete from power_tool;
      insert into power_tool values (3, 'drill', 500), (4, 'angle grinder', 900);
      insert into tool values (9, 'stale target row');
    `);
    const childBefore = await rowsDigest(target.db.sql, "power_tool");
    const childVersions = await rowVersions(target.db.sql, "power_tool", "tool_id");
    expect(childBefore.rows).toBe(2);

    const { view } = await createAndRun(stack, pipeline("tools-clean-parent", "clean", ["public.tool"]));
    expect(view.status, describeRun(view)).toBe("completed");
    expect(view.entities[0]).toMatchObject({ entity: "public.tool", created: 2 });
    expect(await rowsDigest(target.db.sql, "only tool")).toEqual(
      await rowsDigest(source.db.sql, "only tool"),
    );
    expect(await rowsDigest(target.db.sql, "power_tool")).toEqual(childBefore);
    expect(await rowVersions(target.db.sql, "power_tool", "tool_id")).toEqual(childVersions);
  });

  it("a parent with a conditional INSTEAD rule is merged without diverting a row", async () => {
    const { view } = await createAndRun(
      stack,
      pipeline("readings-merge", "merge", ["public.reading", "public.high_reading"]),
    );
    expect(view.status, describeRun(view)).toBe("completed");
    const parentRows = await target.db.sql<{ reading_id: number; x: number }[]>`
      select reading_id, x from only reading order by reading_id`;
    expect(parentRows.map((r) => [r.reading_id, r.x])).toEqual([
      [1, 5],
      [2, 150],
    ]);
    const childRows = await target.db.sql<{ reading_id: number; x: number }[]>`
      select reading_id, x from high_reading order by reading_id`;
    expect(childRows.map((r) => [r.reading_id, r.x])).toEqual([
      [3, 200],
      [4, 7],
    ]);
    // The rule is still there and still works for the target's own writes.
    await target.db.sql`insert into reading values (10, 500)`;
    const [diverted] = await target.db.sql<{ n: number }[]>`
      select count(*)::int as n from high_reading where reading_id = 10`;
    expect(diverted!.n).toBe(1);
  });
});
