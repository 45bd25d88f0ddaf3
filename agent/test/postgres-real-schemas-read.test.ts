/**
 * The source side of real production schemas, against a real PostgreSQL in a
 * database of this file's own: foreign keys of partitions (mapped to their
 * root), row keys and kinds, ONLY reads of inheritance parents, and
 * snapshot-consistent reads of tables without a row key.
 */
import { createHash, randomBytes } from "node:crypto";
import { type DrayError, silentLogger } from "@dray/common";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { EntityDescription, ReadBatchRequest, ReadBatchResult } from "../src/connector.js";
import { createPool } from "../src/connectors/postgres/connection-options.js";
import { describeSchema } from "../src/connectors/postgres/describe-schema.js";
import { toDrayError } from "../src/connectors/postgres/error-mapping.js";
import { buildWindowQuery } from "../src/connectors/postgres/keyless-read.js";
import { type ReadMethod, readBatch } from "../src/connectors/postgres/read-batch.js";
import { Session, type SessionPools } from "../src/connectors/postgres/session.js";
import { SnapshotHolder } from "../src/connectors/postgres/snapshot-holder.js";

const SETUP = `
create schema app;
create table app.customer (id int primary key, name text);
create table app.staff (id int primary key);

-- Declarative partitions whose foreign keys are declared on the partitions only.
create table app.payment (id int not null, customer_id int not null, staff_id int, paid date not null)
  partition by range (paid);
create table app.payment_p2022_01 partition of app.payment for values from ('2022-01-01') to ('2022-02-01');
create table app.payment_p2022_02 partition of app.payment for values from ('2022-02-01') to ('2022-03-01')
  partition by list (staff_id);
create table app.payment_p2022_02_s1 partition of app.payment_p2022_02 for values in (1);
alter table app.payment_p2022_01 add constraint payment_p2022_01_customer_fk
  foreign key (customer_id) references app.customer (id);
alter table app.payment_p2022_02_s1 add constraint payment_p2022_02_s1_customer_fk
  foreign key (customer_id) references app.customer (id);
alter table app.payment_p2022_02_s1 add constraint payment_p2022_02_s1_staff_fk
  foreign key (staff_id) references app.staff (id);
alter table app.payment_p2022_01 add constraint payment_p2022_01_pkey primary key (id);
-- A table referencing a partition: the reference names the partition's root.
create table app.refund (id int primary key, payment_id int references app.payment_p2022_01 (id));

-- A foreign key declared on the partitioned parent (cloned onto its partitions), and one referencing it.
create table app.rental (id int not null, customer_id int, at date not null, primary key (id, at),
  constraint rental_customer_fk foreign key (customer_id) references app.customer (id)) partition by range (at);
create table app.rental_2022 partition of app.rental for values from ('2022-01-01') to ('2023-01-01');
create table app.rental_2023 partition of app.rental for values from ('2023-01-01') to ('2024-01-01');
create table app.rental_note (id int primary key, rental_id int, rental_at date,
  constraint rental_note_rental_fk foreign key (rental_id, rental_at) references app.rental (id, at));
insert into app.customer values (1, 'c1'), (2, 'c2');
insert into app.rental values (1, 1, '2022-05-01'), (2, 2, '2023-05-01');

-- Row keys.
create table app.k_pk (id int primary key, u int not null unique);
create table app.k_unique (a int not null, b int not null, c int not null, d int,
  constraint k_unique_ab unique (a, b), constraint k_unique_c unique (c), constraint k_unique_d unique (d));
create table app.k_nullable (a int unique);
create table app.k_partial (a int not null);
create unique index k_partial_a on app.k_partial (a) where a > 0;

-- Inheritance: the parent's own rows are 2, its child's 2 more.
create table app.animal (id int primary key, name text);
create table app.dog (breed text) inherits (app.animal);
insert into app.animal values (1, 'a'), (2, 'b');
insert into app.dog values (3, 'c', 'x'), (4, 'd', 'y');

-- Tables without a row key.
create table app.log (n int, body text);
insert into app.log select g, repeat('x', g % 50) || case when g % 7 = 0 then E'\\ttab' else '' end
  from generate_series(1, 3000) g;
create table app.sparse (n int, body text);
insert into app.sparse select g, repeat('y', 100) from generate_series(1, 20000) g;
delete from app.sparse where n between 50 and 19900;
create table app.logbook (extra int) inherits (app.log);
insert into app.logbook values (-1, 'child', 1);
`;

let admin: postgres.Sql;
let sql: postgres.Sql;
let pool: postgres.Sql;
let control: postgres.Sql;
let holder: SnapshotHolder;
let pools: SessionPools;
let url = "";
const name = `dray_t_${randomBytes(6).toString("hex")}`;

beforeAll(async () => {
  const base = inject("databaseUrl");
  admin = postgres(base, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  const at = new URL(base);
  at.pathname = `/${name}`;
  url = at.toString();
  sql = postgres(url, { max: 2, onnotice: () => {} });
  await sql.unsafe(SETUP);
  pool = createPool({ url, max: 4, logger: silentLogger });
  control = postgres(url, { max: 1, onnotice: () => {} });
  holder = new SnapshotHolder({ url, logger: silentLogger });
  pools = {
    sql: pool,
    logger: silentLogger,
    async cancelBackend(backend) {
      await control.unsafe("select pg_catalog.pg_cancel_backend($1::int4)", [backend.pid]);
    },
  };
});

afterAll(async () => {
  await holder?.close();
  await Promise.all([pool?.end({ timeout: 5 }), control?.end({ timeout: 5 }), sql?.end({ timeout: 5 })]);
  await admin?.unsafe(`drop database if exists "${name}" with (force)`);
  await admin?.end({ timeout: 5 });
});

/** Runs `fn` on a session of the test's pool; failures leave as DrayErrors, as the connector's do. */
async function onSession<T>(fn: (session: Session) => Promise<T>): Promise<T> {
  const signal = new AbortController().signal;
  try {
    return await Session.run(pools, signal, fn);
  } catch (error) {
    throw toDrayError(error, { operation: "test" });
  }
}

function read(
  request: Partial<ReadBatchRequest> & Pick<ReadBatchRequest, "entity">,
  method: ReadMethod = "copy",
) {
  return onSession((session) =>
    readBatch(session, { keyFields: [], maxRows: 1000, maxBytes: 1 << 20, ...request }, method, holder),
  );
}

const entity = (table: string) => ({ schema: "app", name: table });

function lines(page: ReadBatchResult): string[] {
  const text = Buffer.from(page.rows.data).toString("utf8");
  return text.length === 0 ? [] : text.slice(0, -1).split("\n");
}

/** Reads the whole table without a row key in batches; `between` runs after each batch but the last. */
async function readAll(
  table: string,
  options: {
    maxRows: number;
    maxBytes?: number;
    method?: ReadMethod;
    between?: (n: number) => Promise<void>;
  },
) {
  const pages: ReadBatchResult[] = [];
  const cursors: (string[] | null)[] = [];
  let after: string[] | null = null;
  for (let n = 0; n < 10_000; n++) {
    cursors.push(after);
    const page = await read(
      { entity: entity(table), after, maxRows: options.maxRows, maxBytes: options.maxBytes ?? 1 << 20 },
      options.method,
    );
    pages.push(page);
    if (page.done) break;
    expect(page.rows.rowCount).toBeGreaterThan(0);
    after = page.last;
    await options.between?.(n);
  }
  return { pages, cursors, rows: pages.flatMap(lines) };
}

/** The table's own rows now, as COPY text lines. */
async function tableLines(table: string): Promise<string[]> {
  const rows = await sql.unsafe<{ line: string }[]>(
    `select n::text || E'\\t' || coalesce(replace(body, E'\\t', '\\t'), '\\N') as line from only app.${table}`,
  );
  return rows.map((r) => r.line);
}

const md5 = (rows: string[]) =>
  createHash("md5")
    .update([...rows].sort().join("\n"))
    .digest("hex");

async function rejection(promise: Promise<unknown>): Promise<DrayError> {
  try {
    await promise;
  } catch (error) {
    return error as DrayError;
  }
  throw new Error("expected a rejection");
}

describe("describeSchema on real schemas", () => {
  let byName: Map<string, EntityDescription>;

  beforeAll(async () => {
    const description = await onSession((session) => describeSchema(session, ["app"], { estimates: false }));
    byName = new Map(description.entities.map((e) => [e.name, e]));
  });

  it("lists partitioned tables once, never their partitions", () => {
    expect([...byName.keys()].filter((n) => n.startsWith("payment") || n.startsWith("rental"))).toEqual([
      "payment",
      "rental",
      "rental_note",
    ]);
  });

  it("collects the foreign keys of partitions at every level, merged, on the partitioned table", () => {
    expect(byName.get("payment")!.references).toEqual([
      {
        name: "payment_p2022_01_customer_fk",
        fields: ["customer_id"],
        referencedEntity: entity("customer"),
        referencedFields: ["id"],
        // Declared on partitions only: the table itself does not vouch for every row.
        validated: false,
      },
      {
        name: "payment_p2022_02_s1_staff_fk",
        fields: ["staff_id"],
        referencedEntity: entity("staff"),
        referencedFields: ["id"],
        validated: false,
      },
    ]);
  });

  it("names the root of a referenced partition", () => {
    expect(byName.get("refund")!.references).toEqual([
      {
        name: "refund_payment_id_fkey",
        fields: ["payment_id"],
        referencedEntity: entity("payment"),
        referencedFields: ["id"],
        validated: true,
      },
    ]);
  });

  it("keeps a parent's foreign key once, without its clones", () => {
    expect(byName.get("rental")!.references.map((r) => r.name)).toEqual(["rental_customer_fk"]);
    expect(byName.get("rental_note")!.references).toEqual([
      {
        name: "rental_note_rental_fk",
        fields: ["rental_id", "rental_at"],
        referencedEntity: entity("rental"),
        referencedFields: ["id", "at"],
        validated: true,
      },
    ]);
  });

  it("chooses row keys: primary key, else the narrowest unique NOT NULL key, else none", () => {
    expect(byName.get("k_pk")).toMatchObject({ primaryKey: ["id"], rowKey: ["id"] });
    expect(byName.get("k_unique")).toMatchObject({ primaryKey: [], rowKey: ["c"] });
    expect(byName.get("k_nullable")).toMatchObject({ primaryKey: [], rowKey: [] });
    expect(byName.get("k_partial")).toMatchObject({ primaryKey: [], rowKey: [] });
    expect(byName.get("rental")).toMatchObject({ primaryKey: ["id", "at"], rowKey: ["id", "at"] });
    expect(byName.get("log")).toMatchObject({ primaryKey: [], rowKey: [] });
  });

  it("tells partitioned tables, inheritance parents and plain tables apart", () => {
    expect(byName.get("payment")!.kind).toBe("partitioned");
    expect(byName.get("animal")!.kind).toBe("inheritance_parent");
    expect(byName.get("log")!.kind).toBe("inheritance_parent");
    expect(byName.get("dog")!.kind).toBe("table");
    expect(byName.get("customer")!.kind).toBe("table");
  });
});

describe("reads of inheritance parents and partitioned tables", () => {
  it("reads only the parent's own rows", async () => {
    for (const method of ["copy", "select"] as const) {
      const page = await read({ entity: entity("animal"), keyFields: ["id"] }, method);
      expect(lines(page)).toEqual(["1\ta", "2\tb"]);
      expect(page.done).toBe(true);
    }
    const child = await read({ entity: entity("dog"), keyFields: [] });
    expect(lines(child)).toEqual(["3\tc\tx", "4\td\ty"]);
  });

  it("reads a partitioned table's rows from its partitions", async () => {
    const page = await read({ entity: entity("rental"), keyFields: [] });
    expect(lines(page)).toEqual(["1\t1\t2022-05-01", "2\t2\t2023-05-01"]);
  });

  it("refuses a partitioned table without a row key, naming what would make it readable", async () => {
    const error = await rejection(read({ entity: entity("payment") }));
    expect(error.code).toBe("failed_precondition");
    expect(error.message).toMatch(/partitioned/);
    expect(error.message).toMatch(/primary key or a unique index on NOT NULL fields/);
  });
});

describe("reads of tables without a row key", () => {
  it("reads the table in batches, exactly once each row, with COPY and with SELECT", async () => {
    const expected = await tableLines("log");
    for (const method of ["copy", "select"] as const) {
      const { pages, rows } = await readAll("log", { maxRows: 128, method });
      expect(pages.length).toBeGreaterThan(20);
      expect(rows).toHaveLength(3000);
      expect(md5(rows)).toBe(md5(expected));
      // The child's row is never read through the parent.
      expect(rows.some((r) => r.startsWith("-1\t"))).toBe(false);
      const last = pages.at(-1)!;
      expect(last.done).toBe(true);
    }
    expect(holder.heldIds).toEqual([]);
  });

  it("keeps pages within the byte budget", async () => {
    const { pages, rows } = await readAll("log", { maxRows: 1000, maxBytes: 2000 });
    expect(rows).toHaveLength(3000);
    for (const page of pages) expect(page.rows.data.byteLength).toBeLessThanOrEqual(2000);
  });

  it("skips windows without rows", async () => {
    const expected = await tableLines("sparse");
    const { pages, rows } = await readAll("sparse", { maxRows: 30 });
    expect(md5(rows)).toBe(md5(expected));
    expect(pages.slice(0, -1).every((p) => p.rows.rowCount > 0)).toBe(true);
    expect(pages.length).toBeLessThanOrEqual(Math.ceil(expected.length / 30) + 1);
  });

  it("sees the table as it was at the first read while rows are inserted, updated and deleted", async () => {
    await sql.unsafe(
      "create table app.moving as select g as n, 'v' || g as body from generate_series(1, 2000) g",
    );
    const before = await tableLines("moving");
    const { rows } = await readAll("moving", {
      maxRows: 150,
      async between(n) {
        await sql.unsafe(
          `insert into app.moving select g, 'new' from generate_series(${10_000 + n * 10}, ${10_009 + n * 10}) g`,
        );
        await sql.unsafe(`delete from app.moving where n % 13 = ${n % 13}`);
        await sql.unsafe(`update app.moving set body = body || '!' where n % 17 = ${n % 17}`);
      },
    });
    expect(rows).toHaveLength(2000);
    expect(md5(rows)).toBe(md5(before));
    expect(md5(await tableLines("moving"))).not.toBe(md5(before));
  });

  it("re-reads one batch's exact range with until", async () => {
    const first = await read({ entity: entity("log"), maxRows: 100 });
    const second = await read({ entity: entity("log"), after: first.last, maxRows: 100 });
    const third = await read({ entity: entity("log"), after: second.last, maxRows: 100 });
    await sql.unsafe("delete from app.log where n % 2 = 0");
    const again = await read({ entity: entity("log"), after: first.last, until: second.last, maxRows: 1000 });
    expect(Buffer.from(again.rows.data).equals(Buffer.from(second.rows.data))).toBe(true);
    expect(again.last).toEqual(second.last);
    const firstAgain = await read({ entity: entity("log"), until: first.last, maxRows: 1000 });
    expect(lines(firstAgain)).toEqual(lines(first));
    expect(third.rows.rowCount).toBe(100);
    await holder.release(first.last![0]!, "test");
  });

  it("fails with failed_precondition once the snapshot is gone, pointing at a clean re-run", async () => {
    const first = await read({ entity: entity("k_nullable"), maxRows: 5 });
    expect(first.done).toBe(true);
    await sql.unsafe("insert into app.k_nullable select g from generate_series(1, 50) g");
    const opened = await read({ entity: entity("k_nullable"), maxRows: 5 });
    expect(opened.done).toBe(false);
    const snapshotId = opened.last![0]!;
    expect(holder.heldIds).toContain(snapshotId);
    await holder.release(snapshotId, "the agent restarted (test)");
    const error = await rejection(read({ entity: entity("k_nullable"), after: opened.last, maxRows: 5 }));
    expect(error.code).toBe("failed_precondition");
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/consistent read of app\.k_nullable/);
    expect(error.message).toMatch(/writeStrategy clean/);
  });

  it("reads a window with a TID range scan: no full scan, no sort of the whole table", async () => {
    const fields = ["n", "body"].map((f) => ({
      name: f,
      type: f === "n" ? "integer" : "text",
      castType: f === "n" ? "integer" : "text",
      notNull: false,
      hasDefault: false,
      generated: false,
      identity: "",
    }));
    const query = buildWindowQuery(
      { entity: entity("log"), keyFields: [], maxRows: 100, maxBytes: 1 << 20 },
      { from: "only app.log", fields, key: [], nulled: new Set(), resolve: () => fields[0]! },
      { after: { block: 3, offset: 5 }, fromBlock: 3, endBlock: 6, until: null, limit: 100 },
    );
    const [plan] = await sql.unsafe(`explain (format json) ${query.sql}`, query.params as string[]);
    const text = JSON.stringify(plan);
    expect(text).toContain('"Node Type":"Tid Range Scan"');
    expect(text).not.toContain('"Node Type":"Seq Scan"');
  });

  it("refuses a tampered snapshot id before it reaches SQL", async () => {
    const error = await rejection(
      read({ entity: entity("k_nullable"), after: ["1'; drop table app.log; --", "(0,1)", "1"] }),
    );
    expect(error.code).toBe("invalid_argument");
  });
});
