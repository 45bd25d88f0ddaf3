/**
 * Counting several entities in one task (CountTask.more), as a run's preflight
 * does: exact counts in the order asked, small tables together in one
 * statement, a table larger than COUNT_TOGETHER_BYTES on a statement of its
 * own, a partitioned table through its partitions, an inheritance parent's own
 * rows only, and a clear refusal for a name that is not a table. Against a real
 * PostgreSQL, in a database of its own, through the task runner's protocol.
 */
import { create } from "@bufbuild/protobuf";
import { silentLogger } from "@dray/common";
import { ConditionOperator, TaskSchema } from "@dray/proto";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createPool } from "../src/connectors/postgres/connection-options.js";
import {
  COUNT_SIDE_BY_SIDE,
  COUNT_TOGETHER_BYTES,
  countManyRows,
} from "../src/connectors/postgres/count-rows.js";
import { Session } from "../src/connectors/postgres/session.js";
import { runTask } from "../src/task-runner.js";
import { createOwnDatabase, type OwnDatabase } from "./support/own-database.js";

let db: OwnDatabase;
const never = () => new AbortController().signal;

beforeAll(async () => {
  db = await createOwnDatabase(
    inject("databaseUrl"),
    `
    create table small_a (id int primary key);
    insert into small_a select generate_series(1, 7);
    create table "Odd ""name""" (id int primary key);
    insert into "Odd ""name""" select generate_series(1, 3);
    create table empty_one (id int primary key);
    create table big (id int primary key, pad text);
    insert into big select g, repeat('x', 200) from generate_series(1, 60000) g;
    create table parted (id int, at date not null) partition by range (at);
    create table parted_a partition of parted for values from ('2020-01-01') to ('2021-01-01');
    create table parted_b partition of parted for values from ('2021-01-01') to ('2022-01-01');
    insert into parted select g, date '2020-06-01' + (g % 400) from generate_series(1, 500) g;
    create table parent (id int);
    create table child () inherits (parent);
    insert into parent values (1), (2);
    insert into child values (3), (4), (5);
    `,
  );
});

afterAll(async () => {
  await db?.drop();
});

const entity = (name: string) => ({ schema: "public", name });

describe("counting several entities at once", () => {
  it("counts each exactly, in the order asked", async () => {
    const [row] = await db.sql<{ bytes: string }[]>`select pg_relation_size('big')::text as bytes`;
    // The large table really is counted on a statement of its own.
    expect(Number(row!.bytes)).toBeGreaterThan(COUNT_TOGETHER_BYTES);
    const counts = await db.connector.countMany(
      ["big", "small_a", 'Odd "name"', "empty_one", "parted", "parent", "child"].map(entity),
      never(),
    );
    expect(counts.map((c) => c.count)).toEqual([60000, 7, 3, 0, 500, 2, 3]);
    expect(counts.every((c) => !c.estimated && c.upperBound === 0)).toBe(true);
  });

  it("counts what the single count counts, for every kind of table", async () => {
    for (const name of ["big", "parted", "parent", "child"]) {
      const [alone] = await db.connector.countMany([entity(name)], never());
      expect(alone?.count).toBe(await db.connector.count(entity(name), [], never()));
    }
  });

  it("estimates a large analysed table instead of scanning it, with a bound its rows cannot pass", async () => {
    const big = entity("big");
    // Never analysed: counted whatever its size.
    await db.sql`create table big_fresh as select * from big`;
    const [fresh] = await db.connector.countMany([entity("big_fresh")], never(), { estimateOverBytes: 1 });
    expect(fresh).toEqual({ count: 60000, estimated: false, upperBound: 0 });
    await db.sql`analyze big`;
    // Rows added since the statistics: the estimate follows the table's pages, the bound holds them all.
    await db.sql`insert into big select g, repeat('x', 200) from generate_series(60001, 66000) g`;
    const [estimated, small] = await db.connector.countMany([big, entity("small_a")], never(), {
      estimateOverBytes: COUNT_TOGETHER_BYTES,
    });
    expect(estimated?.estimated).toBe(true);
    expect(Math.abs(estimated!.count - 66000)).toBeLessThan(66000 * 0.1);
    expect(estimated!.upperBound).toBeGreaterThanOrEqual(66000);
    const [pages] = await db.sql<{ pages: string }[]>`select (pg_relation_size('big') / 8192)::text as pages`;
    expect(estimated!.upperBound).toBe(Number(pages!.pages) * 291);
    // A small table is counted exactly even when estimates are asked for.
    expect(small).toEqual({ count: 7, estimated: false, upperBound: 0 });
    // Without estimateOverBytes every table is counted.
    const [exact] = await db.connector.countMany([big], never());
    expect(exact).toEqual({ count: 66000, estimated: false, upperBound: 0 });
    await db.sql`delete from big where id > 60000`;
  });

  it("scans at most COUNT_SIDE_BY_SIDE large tables at once, leaving connections to other tasks", async () => {
    const url = new URL(inject("databaseUrl"));
    url.pathname = `/${(await db.sql<{ name: string }[]>`select current_database() as name`)[0]!.name}`;
    const pool = createPool({ url: url.toString(), max: 8, logger: silentLogger });
    const pools = { sql: pool, logger: silentLogger, cancelBackend: async () => {} };
    let active = 0;
    let most = 0;
    try {
      const names = ["big", "small_a", 'Odd "name"', "parted", "parent", "child", "empty_one"];
      // Every table with a page counts as large here.
      const counts = await countManyRows(
        {
          run: async (fn) => {
            most = Math.max(most, ++active);
            try {
              return await Session.run(pools, never(), fn);
            } finally {
              active--;
            }
          },
        },
        names.map(entity),
        { togetherBytes: 0 },
      );
      expect(counts.map((c) => c.count)).toEqual([60000, 7, 3, 500, 2, 3, 0]);
      // The sizes query, then the one statement of the empty table beside COUNT_SIDE_BY_SIDE large counts.
      expect(most).toBeLessThanOrEqual(COUNT_SIDE_BY_SIDE + 1);
      expect(most).toBeGreaterThanOrEqual(2);
    } finally {
      await pool.end({ timeout: 5 });
    }
  });

  it("refuses a name that is not a table, naming it", async () => {
    await db.sql`create view a_view as select 1 as id`;
    await expect(
      db.connector.countMany([entity("small_a"), entity("missing"), entity("a_view")], never()),
    ).rejects.toMatchObject({ code: "not_found", message: expect.stringContaining("public.missing") });
    await expect(db.connector.countMany([entity("a_view")], never())).rejects.toMatchObject({
      code: "not_found",
    });
  });

  it("refuses an invalid name before reaching the database", async () => {
    await expect(db.connector.countMany([{ schema: "", name: "small_a" }], never())).rejects.toMatchObject({
      code: "invalid_argument",
    });
  });

  it("answers a count task with more entities with every count, and refuses conditions with it", async () => {
    const countTask = (value: Record<string, unknown>) =>
      runTask(
        db.connector,
        create(TaskSchema, { taskId: "t", kind: { case: "count", value: value as never } }),
        never(),
      );
    const many = await countTask({ entity: entity("small_a"), more: [entity("parent"), entity("parted")] });
    expect(many).toMatchObject({
      case: "result",
      value: { kind: { case: "count", value: { count: 7n, counts: [7n, 2n, 500n] } } },
    });
    const single = await countTask({ entity: entity("small_a") });
    const singleCount = (single as { value?: { kind?: { value?: { count?: bigint; counts?: bigint[] } } } })
      .value?.kind?.value;
    expect(singleCount?.count).toBe(7n);
    expect(singleCount?.counts ?? []).toEqual([]);
    // One entity, estimates asked for (a one-table pipeline): answered the same way. big was analysed above.
    const one = await countTask({ entity: entity("big"), estimateOverBytes: 1n });
    expect(one).toMatchObject({
      case: "result",
      value: { kind: { case: "count", value: { estimated: [true], counts: [expect.any(BigInt)] } } },
    });
    const refused = await countTask({
      entity: entity("small_a"),
      where: [{ field: "id", operator: ConditionOperator.EQ, values: ["1"] }],
      more: [entity("parent")],
    });
    expect(refused).toMatchObject({
      case: "error",
      value: { message: expect.stringContaining("takes no conditions") },
    });
  });
});
