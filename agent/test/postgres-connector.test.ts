/**
 * Runs the connector contract against a real PostgreSQL, in a database of this
 * file's own (created here, dropped with FORCE afterwards), plus checks that
 * only make sense for Postgres: byte-exact COPY text, exotic types, session
 * settings.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "@dray/common";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { Connector, ReadBatchRequest, ReadBatchResult } from "../src/connector.js";
import { settingPlaceholder, settingsStatement } from "../src/connectors/postgres/copy-read.js";
import type { FieldInfo } from "../src/connectors/postgres/entity-catalog.js";
import { createPostgresConnector, type PostgresConnectorOptions } from "../src/connectors/postgres/index.js";
import { buildKeysetQuery } from "../src/connectors/postgres/keyset-read.js";
import { type ContractContext, parseCopy, rowBatch, runConnectorContract } from "./connector-contract.js";

const SCHEMA = "app";

function quote(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** A database of its own for this file, and an admin pool on it. */
class PostgresTestDatabase {
  readonly name = `dray_t_${randomBytes(6).toString("hex")}`;
  url = "";
  sql!: postgres.Sql;
  private admin!: postgres.Sql;
  private connectors: Connector[] = [];

  /** `options` apply to every connector made here. */
  constructor(private readonly options: Partial<PostgresConnectorOptions> = {}) {}

  /** Creates the database; `defaults` become its per-database settings (ALTER DATABASE … SET). */
  async create(defaults: Record<string, string> = {}): Promise<void> {
    const base = inject("databaseUrl");
    this.admin = postgres(base, { max: 1, onnotice: () => {} });
    await this.admin.unsafe(`create database ${quote(this.name)}`);
    for (const [name, value] of Object.entries(defaults))
      await this.admin.unsafe(`alter database ${quote(this.name)} set ${name} = '${value}'`);
    const url = new URL(base);
    url.pathname = `/${this.name}`;
    this.url = url.toString();
    this.sql = postgres(this.url, { max: 4, onnotice: () => {} });
    await this.sql.unsafe(`create schema ${SCHEMA}`);
  }

  connector(options: Partial<PostgresConnectorOptions> = {}): Connector {
    const connector = createPostgresConnector({
      url: this.url,
      maxConnections: 6,
      ...this.options,
      ...options,
    });
    this.connectors.push(connector);
    return connector;
  }

  async drop(): Promise<void> {
    await Promise.all(this.connectors.map((c) => c.close()));
    await this.sql?.end({ timeout: 5 });
    await this.admin?.unsafe(`drop database if exists ${quote(this.name)} with (force)`);
    await this.admin?.end({ timeout: 5 });
  }

  context(): ContractContext {
    const sql = this.sql;
    const table = (name: string) => `${quote(SCHEMA)}.${quote(name)}`;
    return {
      connector: this.connector(),
      schema: SCHEMA,
      exec: async (text) => [...(await sql.unsafe(text))],
      quote,
      async insertRows(name, columns, rows) {
        const list = columns.map(quote).join(", ");
        const objects = rows.map((row) => Object.fromEntries(columns.map((c, i) => [c, row[i] ?? null])));
        await sql.unsafe(
          `insert into ${table(name)} (${list}) select ${list} from json_populate_recordset(null::${table(name)}, $1::text::json)`,
          [sql.typed(JSON.stringify(objects), 25)] as never[],
        );
      },
      async checksum(name, orderBy) {
        const [row] = await sql.unsafe(
          `select md5(coalesce(string_agg(t::text, ',' order by ${quote(orderBy)}), '')) as sum from ${table(name)} t`,
        );
        return String(row!.sum);
      },
      async ledgerRow(batchId) {
        const [present] = await sql.unsafe("select to_regclass('dray.batch_ledger') is not null as ok");
        if (!present!.ok) return null;
        const [row] = await sql.unsafe(
          "select row_count, created, updated, rejected from dray.batch_ledger where batch_id = $1::text",
          [batchId],
        );
        return row
          ? { rowCount: row.row_count, created: row.created, updated: row.updated, rejected: row.rejected }
          : null;
      },
      async openAgentTransactions() {
        const [row] = await sql.unsafe(
          `select count(*)::int as n from pg_stat_activity
           where datname = current_database() and application_name = 'dray-agent' and state like 'idle in transaction%'`,
        );
        return Number(row!.n);
      },
      async analyze(name) {
        await sql.unsafe(`analyze ${table(name)}`);
      },
      async slowDownInserts(name, seconds) {
        await sql.unsafe(`create or replace function ${SCHEMA}.dray_test_slow() returns trigger language plpgsql as $$
          begin perform pg_sleep(${Number(seconds)}); return new; end $$`);
        await sql.unsafe(
          `create trigger dray_test_slow before insert on ${table(name)} for each row execute function ${SCHEMA}.dray_test_slow()`,
        );
      },
      typeNames: {
        bigint: "bigint",
        integer: "integer",
        text: "text",
        boolean: "boolean",
        varchar40: "character varying(40)",
      },
      createConnector: () => this.connector(),
    };
  }
}

// The contract once per way of reading pages: both must pass it unchanged.
for (const readMethod of ["copy", "select"] as const) {
  const contractDb = new PostgresTestDatabase({ readMethod });
  runConnectorContract(`postgres, ${readMethod} reads`, {
    async setup() {
      await contractDb.create();
      return contractDb.context();
    },
    teardown: () => contractDb.drop(),
  });
}

describe("postgres connector specifics", () => {
  const db = new PostgresTestDatabase();
  let connector: Connector;
  const never = () => new AbortController().signal;
  const entity = (name: string) => ({ schema: SCHEMA, name });

  beforeAll(async () => {
    // Database defaults that would make text output differ; the connector's session settings must win.
    await db.create({
      TimeZone: "America/New_York",
      DateStyle: "SQL, DMY",
      IntervalStyle: "sql_standard",
      bytea_output: "escape",
      extra_float_digits: "-2",
    });
    connector = db.connector();
    await db.sql.unsafe(`create table ${SCHEMA}.exotic (
      id bigint primary key, b bytea, j jsonb, arr text[], iv interval, tz timestamptz, d date, f8 float8,
      num numeric, u uuid, ch char(5), ip inet, bits bit varying(8), flag boolean,
      gen bigint generated always as (id * 2) stored)`);
    await db.sql.unsafe(`insert into ${SCHEMA}.exotic (id, b, j, arr, iv, tz, d, f8, num, u, ch, ip, bits, flag) values
      (1, '\\x00ff5c0a'::bytea, '{"a": [1, "x\\ty"], "b": null}', array['a,b', 'c"d', null, 'e\\f'], '1 day 02:03:04.5',
       '2024-03-10 12:34:56.789+05:30', '2024-02-29', 0.1, 'NaN', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'ab', '10.1.2.3/16', B'1011', true),
      (2, '', '[]', '{}', '-3 mons', '-infinity', '0001-01-01 BC', 'Infinity', '123456789012345678901234567890.123456789', null, '', '::1', B'', false),
      (3, null, null, null, null, null, null, '-1.7976931348623157e308', '-0.000001', null, null, null, null, null),
      (4, E'\\\\x5c'::bytea, '"\\u00e9\\n"', array[E'tab\\there', E'nl\\nthere'], '0', '1970-01-01 00:00:00+00', 'infinity', 'NaN', '0', null, 'xyz  ', null, null, null)`);
    await db.sql.unsafe(`create table ${SCHEMA}.exotic_copy (like ${SCHEMA}.exotic including all)`);
  });
  afterAll(() => db.drop());

  it.each(["copy", "select"] as const)(
    "encodes pages byte for byte like the server's COPY TO (%s reads)",
    async (readMethod) => {
      const page = await db
        .connector({ readMethod })
        .readBatch({ entity: entity("exotic"), keyFields: ["id"], maxRows: 100, maxBytes: 1 << 20 }, never());
      expect(page.rows.rowCount).toBe(4);
      expect(page.done).toBe(true);
      expect(page.rows.fields).not.toContain("gen");
      // Reference bytes from the server's own COPY on a connection with the same session settings
      // (a small result, which postgres.js streams safely).
      const reference = postgres(db.url, {
        max: 1,
        onnotice: () => {},
        connection: {
          DateStyle: "ISO",
          TimeZone: "UTC",
          IntervalStyle: "postgres",
          extra_float_digits: 3,
          bytea_output: "hex",
        },
      });
      try {
        const columns = page.rows.fields.map(quote).join(", ");
        const stream = await reference
          .unsafe(`copy (select ${columns} from ${SCHEMA}.exotic order by id) to stdout`)
          .readable();
        const chunks: Buffer[] = [];
        for await (const chunk of stream) chunks.push(chunk as Buffer);
        expect(Buffer.from(page.rows.data).toString("utf8")).toBe(Buffer.concat(chunks).toString("utf8"));
      } finally {
        await reference.end();
      }
    },
  );

  it("round-trips exotic types and skips generated columns", async () => {
    const page = await connector.readBatch(
      { entity: entity("exotic"), keyFields: ["id"], maxRows: 100, maxBytes: 1 << 20 },
      never(),
    );
    const result = await connector.writeBatch(
      {
        batchId: "exotic-1",
        entity: entity("exotic_copy"),
        strategy: "insert",
        keyFields: ["id"],
        rows: page.rows,
        rejectPolicy: "fail",
      },
      never(),
    );
    expect(result.created).toBe(4);
    const [row] = await db.sql.unsafe(`select
      (select md5(string_agg(t::text, ',' order by id)) from ${SCHEMA}.exotic t) as a,
      (select md5(string_agg(t::text, ',' order by id)) from ${SCHEMA}.exotic_copy t) as b`);
    expect(row!.a).toBe(row!.b);
    const text = parseCopy(page.rows.data);
    expect(text[0]![page.rows.fields.indexOf("tz")]).toBe("2024-03-10 07:04:56.789+00");
    expect(text[0]![page.rows.fields.indexOf("f8")]).toBe("0.1");
  });

  it("keyset-reads a composite key with typed cursor values", async () => {
    await db.sql.unsafe(`create table ${SCHEMA}.ck (a int not null, b text not null, primary key (a, b))`);
    await db.sql.unsafe(
      `insert into ${SCHEMA}.ck select g % 7, 'k' || g, from generate_series(1, 60) g`.replace(
        ", from",
        " from",
      ),
    );
    const seen: string[] = [];
    let after: string[] | null = null;
    for (;;) {
      const page = await connector.readBatch(
        { entity: entity("ck"), keyFields: [], after, maxRows: 8, maxBytes: 1 << 20 },
        never(),
      );
      seen.push(...parseCopy(page.rows.data).map((r) => `${r[0]}/${r[1]}`));
      if (page.done) break;
      after = page.last;
    }
    const expected = (await db.sql.unsafe(`select a, b from ${SCHEMA}.ck order by a, b`)).map(
      (r) => `${r.a}/${r.b}`,
    );
    expect(seen).toEqual(expected);
  });

  it("reads the same bytes, cursors and done flags with COPY and with SELECT", async () => {
    await db.sql.unsafe(
      `create table ${SCHEMA}.pairs (a int not null, b text not null, body text, primary key (a, b))`,
    );
    await db.sql.unsafe(
      `insert into ${SCHEMA}.pairs select g % 5, 'k' || g || E'\\t\\\\', repeat('x', g) from generate_series(1, 80) g`,
    );
    const copy = db.connector({ readMethod: "copy" });
    const select = db.connector({ readMethod: "select" });
    const requests: ReadBatchRequest[] = [
      { entity: entity("exotic"), keyFields: ["id"], maxRows: 100, maxBytes: 1 << 20 },
      { entity: entity("exotic"), keyFields: ["id"], maxRows: 2, maxBytes: 1 << 20 },
      {
        entity: entity("exotic"),
        fields: ["iv", "b", "d"],
        keyFields: ["id"],
        maxRows: 3,
        maxBytes: 1 << 20,
      },
      {
        entity: entity("exotic"),
        fields: ["id", "j"],
        nullFields: ["id"],
        keyFields: [],
        maxRows: 9,
        maxBytes: 99,
      },
      {
        entity: entity("exotic"),
        keyFields: ["id"],
        after: ["1"],
        until: ["3"],
        maxRows: 9,
        maxBytes: 1 << 20,
      },
      {
        entity: entity("exotic"),
        keyFields: ["id"],
        maxRows: 9,
        maxBytes: 1 << 20,
        where: [
          { field: "tz", operator: "gt", values: ["2024-03-10 07:04:56.788"] },
          { field: "flag", operator: "is_not_null", values: [] },
        ],
      },
      {
        entity: entity("exotic"),
        keyFields: ["id"],
        maxRows: 9,
        maxBytes: 1 << 20,
        where: [{ field: "u", operator: "in", values: ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"] }],
      },
      ...[1, 150, 1000, 1 << 20].flatMap((maxBytes): ReadBatchRequest[] => [
        { entity: entity("pairs"), keyFields: ["a", "b"], maxRows: 30, maxBytes },
        {
          entity: entity("pairs"),
          fields: ["body"],
          keyFields: [],
          after: ["1", "k1"],
          maxRows: 30,
          maxBytes,
        },
        {
          entity: entity("pairs"),
          fields: ["b", "body"],
          nullFields: ["b"],
          keyFields: ["a", "b"],
          after: ["2", "k12\t\\"],
          until: ["3", "k3"],
          maxRows: 10,
          maxBytes,
        },
      ]),
    ];
    for (const request of requests) {
      const [fromCopy, fromSelect] = await Promise.all([
        copy.readBatch(request, never()),
        select.readBatch(request, never()),
      ]);
      expect(Buffer.from(fromCopy.rows.data).equals(Buffer.from(fromSelect.rows.data))).toBe(true);
      expect({ ...fromCopy, rows: { ...fromCopy.rows, data: null } }).toEqual({
        ...fromSelect,
        rows: { ...fromSelect.rows, data: null },
      });
    }
  });

  it("runs sessions with the deterministic settings and the agent's application name", async () => {
    await connector.count(entity("exotic"), [], never());
    const rows = await db.sql.unsafe(
      "select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name = 'dray-agent'",
    );
    expect(rows[0]!.n).toBeGreaterThan(0);
    const page = await connector.readBatch(
      {
        entity: entity("exotic"),
        fields: ["iv", "b", "d"],
        keyFields: ["id"],
        maxRows: 1,
        maxBytes: 1000,
      },
      never(),
    );
    expect(parseCopy(page.rows.data)).toEqual([["1 day 02:03:04.5", "\\x00ff5c0a", "2024-02-29"]]);
  });

  it("filters timestamps, booleans and bytea by their typed values", async () => {
    const count = (field: string, operator: "eq" | "gt" | "lt", value: string) =>
      connector.count(entity("exotic"), [{ field, operator, values: [value] }], never());
    expect(await count("flag", "eq", "true")).toBe(1);
    expect(await count("flag", "eq", "false")).toBe(1);
    expect(await count("tz", "gt", "2024-03-10 07:04:56.788+00")).toBe(1);
    // Without an offset, values are read in the session's UTC, not the database's New York default.
    expect(await count("tz", "gt", "2024-03-10 07:04:56.788")).toBe(1);
    expect(await count("tz", "lt", "2024-03-10 07:04:56.789+00")).toBe(2);
    expect(await count("b", "eq", "\\x00ff5c0a")).toBe(1);
    expect(await count("j", "eq", '{"b": null, "a": [1, "x\\ty"]}')).toBe(1);
  });

  it("cancels a read blocked on a lock and keeps the pool healthy", async () => {
    await db.sql.unsafe(`create table ${SCHEMA}.locked (id bigint primary key)`);
    await db.sql.unsafe(`insert into ${SCHEMA}.locked select generate_series(1, 10)`);
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => {
      locked = resolve;
    });
    const holder = db.sql.begin(async (tx) => {
      await tx.unsafe(`lock table ${SCHEMA}.locked in access exclusive mode`);
      locked();
      await held;
    });
    await isLocked;
    try {
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 200);
      const started = Date.now();
      const read = connector.readBatch(
        { entity: entity("locked"), keyFields: ["id"], maxRows: 5, maxBytes: 1000 },
        controller.signal,
      );
      await expect(read).rejects.toMatchObject({ code: "cancelled" });
      expect(Date.now() - started).toBeLessThan(3000);
      const waiting = await db.sql.unsafe(
        `select count(*)::int as n from pg_stat_activity
         where datname = current_database() and application_name = 'dray-agent' and state = 'active'`,
      );
      expect(waiting[0]!.n).toBe(0);
    } finally {
      release();
      await holder;
    }
    expect(await connector.count(entity("locked"), [], never())).toBe(10);
  });

  it("applies column modifiers like COPY: pads char(n), refuses too-long values", async () => {
    await db.sql.unsafe(
      `create table ${SCHEMA}.mods (id bigint primary key, c char(4), v varchar(3), n numeric(5,2), bits bit(3))`,
    );
    const write = (batchId: string, rows: (string | null)[][], rejectPolicy: "fail" | "isolate") =>
      connector.writeBatch(
        {
          batchId,
          entity: entity("mods"),
          strategy: "insert",
          keyFields: ["id"],
          rows: rowBatch(["id", "c", "v", "n", "bits"], rows),
          rejectPolicy,
        },
        never(),
      );
    const ok = await write("mods-1", [["1", "ab", "abc", "1.005", "101"]], "fail");
    expect(ok.created).toBe(1);
    const [row] = await db.sql.unsafe(
      `select c || '|' as c, c::text as t, octet_length(c) as len, n::text as n from ${SCHEMA}.mods`,
    );
    expect(row).toMatchObject({ len: 4, n: "1.01" });
    await expect(write("mods-2", [["2", "ab", "abcd", "1", "101"]], "fail")).rejects.toMatchObject({
      code: "invalid_argument",
      details: { sqlState: "22001" },
    });
    const isolated = await write(
      "mods-3",
      [
        ["3", "abcde", "x", "1", "101"],
        ["4", "a", "x", "1", "101"],
        ["5", "a", "x", "1", "1"],
        ["6", "a", "x", "not a number", "111"],
      ],
      "isolate",
    );
    expect(isolated).toMatchObject({ created: 1, rejected: 3 });
    expect(isolated.rejectedRecords.map((r) => [r.key[0], r.field, r.sqlState])).toEqual([
      ["3", "c", "22001"],
      ["5", "bits", "22026"],
      ["6", "n", "22P02"],
    ]);
  });

  it("counts merges into a partitioned table", async () => {
    await db.sql.unsafe(`create table ${SCHEMA}.parted (id int primary key, v text) partition by range (id)`);
    await db.sql.unsafe(
      `create table ${SCHEMA}.parted_1 partition of ${SCHEMA}.parted for values from (0) to (100)`,
    );
    await db.sql.unsafe(
      `create table ${SCHEMA}.parted_2 partition of ${SCHEMA}.parted for values from (100) to (200)`,
    );
    await db.sql.unsafe(`insert into ${SCHEMA}.parted values (1, 'old'), (150, 'old')`);
    const description = await connector.describeSchema([SCHEMA], never());
    expect(description.entities.map((e) => e.name)).toContain("parted");
    expect(description.entities.map((e) => e.name)).not.toContain("parted_1");
    const result = await connector.writeBatch(
      {
        batchId: "parted-1",
        entity: entity("parted"),
        strategy: "merge",
        keyFields: ["id"],
        rows: rowBatch(
          ["id", "v"],
          [
            ["1", "new"],
            ["2", "new"],
            ["150", "new"],
            ["151", "new"],
          ],
        ),
        rejectPolicy: "isolate",
      },
      never(),
    );
    expect(result).toMatchObject({ created: 2, updated: 2, rejected: 0 });
    const rows = await db.sql.unsafe(`select id, v from ${SCHEMA}.parted order by id`);
    expect(rows.map((r) => `${r.id}:${r.v}`)).toEqual(["1:new", "2:new", "150:new", "151:new"]);
  });

  it("leaves nothing half-written when a large write is aborted at any moment", async () => {
    await db.sql.unsafe(`create table ${SCHEMA}.bulk (id bigint primary key, body text not null)`);
    const rows = Array.from({ length: 40_000 }, (_, i) => [String(i + 1), `row ${i + 1} ${"y".repeat(100)}`]);
    const batch = rowBatch(["id", "body"], rows);
    // A first write creates the ledger; make sure that is not what gets aborted here.
    await connector.writeBatch(
      {
        batchId: "bulk-ledger",
        entity: entity("bulk"),
        strategy: "insert",
        keyFields: ["id"],
        rows: rowBatch(["id", "body"], []),
        rejectPolicy: "fail",
      },
      never(),
    );
    let committed = 0;
    for (const [attempt, delay] of [0, 3, 10, 30, 60, 120, 200, 2000].entries()) {
      const controller = new AbortController();
      const pending = connector.writeBatch(
        {
          batchId: `bulk-${attempt}`,
          entity: entity("bulk"),
          strategy: "merge",
          keyFields: ["id"],
          rows: batch,
          rejectPolicy: "isolate",
        },
        controller.signal,
      );
      setTimeout(() => controller.abort(), delay);
      const outcome = await pending.then(
        (result) => ({ ok: true as const, result }),
        (error: unknown) => ({ ok: false as const, error }),
      );
      const [exists] = await db.sql.unsafe("select to_regclass('dray.batch_ledger') is not null as ok");
      const [ledger] = exists!.ok
        ? await db.sql.unsafe("select count(*)::int as n from dray.batch_ledger where batch_id = $1::text", [
            `bulk-${attempt}`,
          ])
        : [{ n: 0 }];
      if (outcome.ok) {
        committed++;
        expect(ledger!.n).toBe(1);
      } else {
        expect(outcome.error).toMatchObject({ code: "cancelled" });
        expect(ledger!.n).toBe(0);
      }
      const [count] = await db.sql.unsafe(`select count(*)::int as n from ${SCHEMA}.bulk`);
      expect(count!.n).toBe(committed > 0 ? 40_000 : 0);
      const [open] = await db.sql.unsafe(
        `select count(*)::int as n from pg_stat_activity
         where datname = current_database() and application_name = 'dray-agent' and state <> 'idle'`,
      );
      expect(open!.n).toBe(0);
    }
    // Still healthy afterwards.
    expect(await connector.count(entity("bulk"), [], never())).toBe(committed > 0 ? 40_000 : 0);
  });

  it("maps an unreachable server and a missing database", async () => {
    const unreachable = createPostgresConnector({ url: "postgres://postgres@127.0.0.1:1/postgres" });
    try {
      await expect(unreachable.testConnection(never())).rejects.toMatchObject({
        code: "unavailable",
        retryable: true,
      });
    } finally {
      await unreachable.close();
    }
    const missing = new URL(db.url);
    missing.pathname = "/dray_no_such_database";
    const nowhere = createPostgresConnector({ url: missing.toString() });
    try {
      await expect(nowhere.count(entity("exotic"), [], never())).rejects.toMatchObject({
        code: "not_found",
        retryable: false,
      });
    } finally {
      await nowhere.close();
    }
  });
});

describe("postgres COPY reads", () => {
  const db = new PostgresTestDatabase({ readMethod: "copy" });
  const never = () => new AbortController().signal;
  const entity = (name: string) => ({ schema: SCHEMA, name });
  const debugMessages: string[] = [];
  const logger: Logger = {
    debug: (message) => debugMessages.push(message),
    info: () => {},
    warn: () => {},
    error: () => {},
    child: () => logger,
  };
  /** Fails fast instead of at the test timeout when a read hangs. */
  const within = <T>(promise: Promise<T>, ms: number, what: string): Promise<T> =>
    Promise.race([
      promise,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} hung`)), ms).unref()),
    ]);
  const agentSessions = async (where: string) => {
    const [row] = await db.sql.unsafe(
      `select count(*)::int as n from pg_stat_activity
       where datname = current_database() and application_name = 'dray-agent' and ${where}`,
    );
    return Number(row!.n);
  };

  beforeAll(async () => {
    await db.create();
    // 200 000 rows of ~200 bytes: 10 000-row pages of ~2 MB.
    await db.sql.unsafe(
      `create table ${SCHEMA}.big (id bigint primary key, n int not null, body text not null)`,
    );
    await db.sql.unsafe(
      `insert into ${SCHEMA}.big select g, g % 1000, md5(g::text) || repeat('y', 150) || E'\\\\' from generate_series(1, 200000) g`,
    );
    await db.sql.unsafe(`analyze ${SCHEMA}.big`);
  });
  afterAll(() => db.drop());

  it("reads many large pages in a row on one connection without hanging", async () => {
    // One connection: every COPY, and every statement after it, runs on the same socket.
    const connector = db.connector({ maxConnections: 1 });
    let after: string[] | null = null;
    let rows = 0;
    for (let page = 0; page < 20; page++) {
      const result: ReadBatchResult = await within(
        connector.readBatch(
          { entity: entity("big"), keyFields: ["id"], after, maxRows: 10_000, maxBytes: 64 << 20 },
          never(),
        ),
        15_000,
        `page ${page}`,
      );
      expect(result.rows.rowCount).toBe(10_000);
      expect(result.rows.data.length).toBeGreaterThan(1_900_000);
      expect(result.last).toEqual([String((page + 1) * 10_000)]);
      expect(result.done).toBe(false);
      rows += result.rows.rowCount;
      after = result.last;
      expect(await within(connector.count(entity("big"), [], never()), 15_000, "count")).toBe(200_000);
    }
    expect(rows).toBe(200_000);
    const end = await connector.readBatch(
      { entity: entity("big"), keyFields: ["id"], after, maxRows: 10_000, maxBytes: 64 << 20 },
      never(),
    );
    expect(end).toMatchObject({ last: null, done: true, rows: { rowCount: 0 } });
  });

  it("reads pages that arrive in one socket read (past the stream's buffer) without hanging", async () => {
    // ~30 KB: the whole COPY, CopyDone and ReadyForQuery come in one read, which used to leave the socket paused.
    const connector = db.connector({ maxConnections: 1 });
    for (let page = 0; page < 20; page++) {
      const result = await within(
        connector.readBatch(
          {
            entity: entity("big"),
            keyFields: ["id"],
            after: [String(page * 150)],
            maxRows: 150,
            maxBytes: 1 << 20,
          },
          never(),
        ),
        5_000,
        `page ${page}`,
      );
      expect(result.rows.rowCount).toBe(150);
    }
  });

  it("leaves the session usable when a COPY is cancelled midway", async () => {
    const connector = db.connector({ maxConnections: 1 });
    let cancelled = 0;
    for (const delay of [0, 1, 3, 6, 10, 20, 40, 80]) {
      const controller = new AbortController();
      const pending = connector.readBatch(
        { entity: entity("big"), keyFields: ["id"], maxRows: 200_000, maxBytes: 64 << 20 },
        controller.signal,
      );
      setTimeout(() => controller.abort(), delay);
      const outcome = await within(
        pending.then(
          (page) => ({ page }),
          (error: unknown) => ({ error }),
        ),
        15_000,
        `read aborted after ${delay} ms`,
      );
      if ("error" in outcome) {
        expect(outcome.error).toMatchObject({ code: "cancelled" });
        cancelled++;
      } else {
        expect(outcome.page.rows.rowCount).toBe(200_000);
      }
      // The server may still be winding the cancelled statement down for a moment on a loaded machine.
      await expect.poll(() => agentSessions("state <> 'idle'"), { timeout: 5_000 }).toBe(0);
      const next = await within(
        connector.readBatch(
          { entity: entity("big"), keyFields: ["id"], after: ["199990"], maxRows: 100, maxBytes: 1 << 20 },
          never(),
        ),
        5_000,
        "the read after a cancel",
      );
      expect(next).toMatchObject({ done: true, last: ["200000"], rows: { rowCount: 10 } });
    }
    expect(cancelled).toBeGreaterThan(0);
  });

  it("stops a COPY on the server once the rows past the byte budget are not worth draining", async () => {
    await db.sql.unsafe(`create table ${SCHEMA}.huge (id bigint primary key, body text not null)`);
    // 40 rows of 256 KiB (stored compressed): 10 MiB of COPY text for one page.
    await db.sql.unsafe(
      `insert into ${SCHEMA}.huge select g, repeat(md5(g::text), 8192) from generate_series(1, 40) g`,
    );
    const connector = createPostgresConnector({ url: db.url, maxConnections: 1, logger });
    try {
      debugMessages.length = 0;
      const page = await within(
        connector.readBatch(
          { entity: entity("huge"), keyFields: ["id"], maxRows: 40, maxBytes: 600_000 },
          never(),
        ),
        15_000,
        "the oversized read",
      );
      expect(page.rows.rowCount).toBe(2);
      expect(page.rows.data.length).toBe(2 * (1 + 1 + 262_144 + 1));
      expect(page).toMatchObject({ last: ["2"], done: false });
      expect(debugMessages).toContain("cancelling the running statement");
      // The server may still be winding the cancelled statement down for a moment on a loaded machine.
      await expect.poll(() => agentSessions("state <> 'idle'"), { timeout: 5_000 }).toBe(0);
      // A page within budget is drained, not cancelled, and the session carries on.
      debugMessages.length = 0;
      const next = await connector.readBatch(
        { entity: entity("huge"), keyFields: ["id"], after: page.last, maxRows: 3, maxBytes: 600_000 },
        never(),
      );
      expect(next).toMatchObject({ last: ["4"], done: false, rows: { rowCount: 2 } });
      expect(debugMessages).not.toContain("cancelling the running statement");
      expect(await connector.count(entity("huge"), [], never())).toBe(40);
    } finally {
      await connector.close();
    }
  });

  it("keeps the key range an index condition of the primary key", async () => {
    const id: FieldInfo = {
      name: "id",
      type: "bigint",
      castType: "bigint",
      notNull: true,
      hasDefault: false,
      generated: false,
      identity: "",
    };
    const n: FieldInfo = { ...id, name: "n", type: "integer", castType: "integer" };
    const query = buildKeysetQuery(
      {
        entity: entity("big"),
        keyFields: ["id"],
        after: ["100000"],
        until: ["150000"],
        maxRows: 10_000,
        maxBytes: 1 << 20,
        where: [{ field: "n", operator: "gte", values: ["10"] }],
      },
      [id, n],
      [id],
      (name) => (name === "n" ? n : id),
      new Set(),
      settingPlaceholder,
    );
    const setup = settingsStatement(query.params)!;
    const plan = await db.sql.begin(async (tx) => {
      await tx.unsafe(setup.text, setup.params.map(String));
      const [row] = await tx.unsafe(`explain (format json) ${query.sql}`);
      return JSON.stringify(row);
    });
    expect(plan).toContain('"Index Name":"big_pkey"');
    expect(plan).toMatch(
      /"Index Cond":"\(\(id > \(current_setting\('dray\.p1'::text\)\)::bigint\) AND \(id <= /,
    );
  });
});
