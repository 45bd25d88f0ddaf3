/**
 * The connector contract: one vitest suite every database connector must pass
 * unchanged. A harness per platform supplies a connector on an empty schema,
 * an admin channel to set up and inspect data, and a few platform-specific
 * helpers (quoting, checksums, the ledger, open transactions, a slow trigger).
 * The suite's own SQL sticks to portable DDL and DML.
 */
import { type DrayError, isDrayError } from "@dray/common";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type {
  Condition,
  Connector,
  EntityName,
  ReadBatchRequest,
  ReadBatchResult,
  RowBatch,
  WriteBatchRequest,
} from "../src/connector.js";

/** A ledger row as the harness reads it. */
export interface LedgerRow {
  rowCount: number;
  created: number;
  updated: number;
  rejected: number;
}

/** What a harness hands the suite after setting up an empty schema. */
export interface ContractContext {
  /** The connector under test, connected to the harness's database. */
  connector: Connector;
  /** Schema (MySQL: database) the suite creates its tables in; empty at start. */
  schema: string;
  /** Runs SQL on an admin connection of its own (not through the connector); returns the rows. */
  exec(sql: string): Promise<Record<string, unknown>[]>;
  /** Quotes an identifier for SQL given to `exec`. */
  quote(name: string): string;
  /** Inserts rows with bound values (text form, `null` = NULL) into `table` of `schema`. */
  insertRows(table: string, columns: string[], rows: (string | null)[][]): Promise<void>;
  /** An order-sensitive checksum of every row of `table` (all columns), ordered by `orderBy`. */
  checksum(table: string, orderBy: string): Promise<string>;
  /** The ledger row of a batch id, or null when there is none (or no ledger yet). */
  ledgerRow(batchId: string): Promise<LedgerRow | null>;
  /** How many sessions of the connector currently sit idle inside an open transaction. */
  openAgentTransactions(): Promise<number>;
  /** Refreshes the planner statistics of `table`. */
  analyze(table: string): Promise<void>;
  /** Makes each row inserted into `table` take `seconds` (e.g. a sleeping trigger). */
  slowDownInserts(table: string, seconds: number): Promise<void>;
  /** How describeSchema spells the portable types the suite uses. */
  typeNames: { bigint: string; integer: string; text: string; boolean: string; varchar40: string };
  /** A second connector on the same database (the suite closes it). */
  createConnector(): Connector;
}

/** Sets up and tears down a platform for {@link runConnectorContract}. */
export interface ConnectorHarness {
  setup(): Promise<ContractContext>;
  teardown(): Promise<void>;
}

// ---------------------------------------------------------------- COPY text, done independently of any connector

const ESCAPES: Record<string, string> = { "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t" };
const UNESCAPES: Record<string, string> = { n: "\n", r: "\r", t: "\t", b: "\b", f: "\f", v: "\v" };

/** One COPY text line from values (`null` = NULL). */
export function copyLine(values: (string | null)[]): string {
  return `${values.map((v) => (v === null ? "\\N" : v.replace(/[\\\n\r\t]/g, (c) => ESCAPES[c]!))).join("\t")}\n`;
}

/** A RowBatch from rows of text values. */
export function rowBatch(fields: string[], rows: (string | null)[][]): RowBatch {
  return {
    encoding: "copy_text",
    fields,
    rowCount: rows.length,
    data: Buffer.from(rows.map(copyLine).join(""), "utf8"),
  };
}

/** Decodes COPY text into rows of values (`null` = NULL). */
export function parseCopy(data: Uint8Array): (string | null)[][] {
  const text = Buffer.from(data).toString("utf8");
  if (text === "") return [];
  expect(text.endsWith("\n")).toBe(true);
  return text
    .slice(0, -1)
    .split("\n")
    .map((line) =>
      line.split("\t").map((field) =>
        field === "\\N"
          ? null
          : field.replace(/\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)/g, (_, c: string) => {
              if (c.length > 1 || /[0-7]/.test(c))
                return String.fromCharCode(
                  c[0] === "x" ? Number.parseInt(c.slice(1), 16) : Number.parseInt(c, 8),
                );
              return UNESCAPES[c] ?? c;
            }),
      ),
    );
}

async function rejection(promise: Promise<unknown>): Promise<DrayError> {
  try {
    await promise;
  } catch (error) {
    expect(isDrayError(error), `expected a DrayError, got ${String(error)}`).toBe(true);
    return error as DrayError;
  }
  throw new Error("expected the call to reject");
}

const never = () => new AbortController().signal;

// ---------------------------------------------------------------- the suite

/**
 * Registers the contract suite for one connector. Tests share one harness
 * context and use distinct tables, so they run in order within the file.
 */
export function runConnectorContract(name: string, harness: ConnectorHarness): void {
  describe(`connector contract: ${name}`, () => {
    let ctx: ContractContext;
    let c: Connector;
    const entity = (table: string): EntityName => ({ schema: ctx.schema, name: table });
    const t = (table: string) => `${ctx.quote(ctx.schema)}.${ctx.quote(table)}`;
    const rowCount = async (table: string) =>
      Number((await ctx.exec(`select count(*) as n from ${t(table)}`))[0]!.n);
    const ids = async (table: string) =>
      (await ctx.exec(`select id from ${t(table)} order by id`)).map((r) => Number(r.id));

    async function readAll(
      table: string,
      options: { maxRows: number; maxBytes?: number; where?: Condition[] },
    ) {
      const pages: ReadBatchResult[] = [];
      let after: string[] | null = null;
      for (let guard = 0; guard < 10_000; guard++) {
        const page = await c.readBatch(
          {
            entity: entity(table),
            keyFields: ["id"],
            after,
            maxRows: options.maxRows,
            maxBytes: options.maxBytes ?? 1 << 20,
            where: options.where,
          },
          never(),
        );
        pages.push(page);
        if (page.done) return pages;
        expect(page.last).not.toBeNull();
        after = page.last;
      }
      throw new Error("read did not finish");
    }

    function write(table: string, batchId: string, batch: RowBatch, extra: Partial<WriteBatchRequest> = {}) {
      return c.writeBatch(
        {
          batchId,
          entity: entity(table),
          strategy: "insert",
          keyFields: ["id"],
          rows: batch,
          rejectPolicy: "fail",
          ...extra,
        },
        never(),
      );
    }

    beforeAll(async () => {
      ctx = await harness.setup();
      c = ctx.connector;
    });
    afterAll(async () => {
      await harness.teardown();
    });

    it("tests the connection", async () => {
      const result = await c.testConnection(never());
      expect(result.databaseLatencyMs).toBeGreaterThanOrEqual(0);
      expect(result.serverVersion).not.toBe("");
      expect(result.databaseName).not.toBe("");
    });

    describe("describeSchema", () => {
      beforeAll(async () => {
        for (const sql of [
          `create table ${t("d_parent")} (id bigint primary key, name varchar(40) not null, note text, active boolean, qty integer)`,
          `create table ${t("d_pair")} (a integer not null, b integer not null, label text, primary key (a, b))`,
          `create table ${t("d_pair_child")} (id bigint primary key, pa integer, pb integer,
             constraint d_pair_child_fk foreign key (pa, pb) references ${t("d_pair")} (a, b))`,
          `create table ${t("d_node")} (id bigint primary key, parent_id bigint,
             constraint d_node_parent_fk foreign key (parent_id) references ${t("d_node")} (id))`,
          `create table ${t("d_cycle_a")} (id bigint primary key, b_id bigint)`,
          `create table ${t("d_cycle_b")} (id bigint primary key, a_id bigint,
             constraint d_cycle_b_a_fk foreign key (a_id) references ${t("d_cycle_a")} (id))`,
          `alter table ${t("d_cycle_a")} add constraint d_cycle_a_b_fk foreign key (b_id) references ${t("d_cycle_b")} (id)`,
          `create table ${t("d_nokey")} (x integer, y text)`,
        ])
          await ctx.exec(sql);
      });

      it("lists tables sorted, with fields, keys and references", async () => {
        const description = await c.describeSchema([ctx.schema], never());
        const names = description.entities.filter((e) => e.name.startsWith("d_")).map((e) => e.name);
        expect(names).toEqual([
          "d_cycle_a",
          "d_cycle_b",
          "d_node",
          "d_nokey",
          "d_pair",
          "d_pair_child",
          "d_parent",
        ]);
        const sorted = [...description.entities].sort((a, b) =>
          a.schema === b.schema ? (a.name < b.name ? -1 : 1) : a.schema < b.schema ? -1 : 1,
        );
        expect(description.entities.map((e) => e.name)).toEqual(sorted.map((e) => e.name));
        const byName = new Map(description.entities.map((e) => [e.name, e]));

        const parent = byName.get("d_parent")!;
        expect(parent.schema).toBe(ctx.schema);
        expect(parent.fields.map((f) => [f.name, f.type, f.nullable])).toEqual([
          ["id", ctx.typeNames.bigint, false],
          ["name", ctx.typeNames.varchar40, false],
          ["note", ctx.typeNames.text, true],
          ["active", ctx.typeNames.boolean, true],
          ["qty", ctx.typeNames.integer, true],
        ]);
        expect(parent.fields.every((f) => !f.generated)).toBe(true);
        expect(parent.primaryKey).toEqual(["id"]);
        expect(parent.references).toEqual([]);
        expect(typeof parent.estimatedRows).toBe("number");
        expect(parent.estimatedRows).toBeGreaterThanOrEqual(-1);

        expect(byName.get("d_pair")!.primaryKey).toEqual(["a", "b"]);
        expect(byName.get("d_pair_child")!.references).toEqual([
          {
            name: "d_pair_child_fk",
            fields: ["pa", "pb"],
            referencedEntity: entity("d_pair"),
            referencedFields: ["a", "b"],
            validated: true,
          },
        ]);
        expect(byName.get("d_node")!.references).toEqual([
          {
            name: "d_node_parent_fk",
            fields: ["parent_id"],
            referencedEntity: entity("d_node"),
            referencedFields: ["id"],
            validated: true,
          },
        ]);
        expect(byName.get("d_cycle_a")!.references).toEqual([
          {
            name: "d_cycle_a_b_fk",
            fields: ["b_id"],
            referencedEntity: entity("d_cycle_b"),
            referencedFields: ["id"],
            validated: true,
          },
        ]);
        expect(byName.get("d_cycle_b")!.references).toEqual([
          {
            name: "d_cycle_b_a_fk",
            fields: ["a_id"],
            referencedEntity: entity("d_cycle_a"),
            referencedFields: ["id"],
            validated: true,
          },
        ]);
        expect(byName.get("d_nokey")!.primaryKey).toEqual([]);
      });

      it("reports row estimates after statistics are gathered", async () => {
        await ctx.insertRows(
          "d_pair",
          ["a", "b", "label"],
          [
            ["1", "1", "x"],
            ["1", "2", "y"],
            ["2", "1", null],
          ],
        );
        await ctx.analyze("d_pair");
        const description = await c.describeSchema([ctx.schema], never());
        expect(description.entities.find((e) => e.name === "d_pair")!.estimatedRows).toBe(3);
      });

      it("never lists the ledger schema", async () => {
        await ctx.exec(`create table ${t("d_ledger_probe")} (id bigint primary key)`);
        await write("d_ledger_probe", "describe-ledger-probe", rowBatch(["id"], [["1"]]));
        expect(await ctx.ledgerRow("describe-ledger-probe")).not.toBeNull();
        const everything = await c.describeSchema([], never());
        expect(everything.entities.some((e) => e.schema === "dray")).toBe(false);
        expect(everything.entities.some((e) => e.schema === ctx.schema && e.name === "d_parent")).toBe(true);
      });

      it("has a fingerprint that is stable and changes with the structure", async () => {
        const first = await c.describeSchema([ctx.schema], never());
        expect(first.fingerprint).toMatch(/^[0-9a-f]{64}$/);
        await ctx.insertRows("d_parent", ["id", "name"], [["1", "a"]]);
        await ctx.analyze("d_parent");
        const again = await c.describeSchema([ctx.schema], never());
        expect(again.fingerprint).toBe(first.fingerprint);
        await ctx.exec(`alter table ${t("d_parent")} add column extra integer`);
        const changed = await c.describeSchema([ctx.schema], never());
        expect(changed.fingerprint).not.toBe(first.fingerprint);
        expect(changed.entities.find((e) => e.name === "d_parent")!.fields.at(-1)!.name).toBe("extra");
      });

      it("describes an unknown schema as empty", async () => {
        const description = await c.describeSchema(["no_such_schema_here"], never());
        expect(description.entities).toEqual([]);
      });
    });

    describe("count", () => {
      beforeAll(async () => {
        await ctx.exec(
          `create table ${t("c_items")} (id bigint primary key, name varchar(40), flag boolean, qty integer)`,
        );
        const rows: (string | null)[][] = [];
        for (let i = 1; i <= 20; i++)
          rows.push([
            String(i),
            i % 5 === 0 ? null : `item ${i}`,
            i % 2 === 0 ? "true" : "false",
            String(i * 10),
          ]);
        await ctx.insertRows("c_items", ["id", "name", "flag", "qty"], rows);
      });

      const count = (where: Condition[]) => c.count(entity("c_items"), where, never());

      it("counts every row without conditions", async () => {
        expect(await count([])).toBe(20);
      });

      it("applies typed comparisons, null checks and lists", async () => {
        expect(await count([{ field: "id", operator: "gt", values: ["9"] }])).toBe(11);
        expect(await count([{ field: "id", operator: "gte", values: ["9"] }])).toBe(12);
        expect(await count([{ field: "id", operator: "lt", values: ["10"] }])).toBe(9);
        expect(await count([{ field: "id", operator: "lte", values: ["10"] }])).toBe(10);
        expect(await count([{ field: "id", operator: "eq", values: ["7"] }])).toBe(1);
        expect(await count([{ field: "flag", operator: "eq", values: ["true"] }])).toBe(10);
        expect(await count([{ field: "name", operator: "is_null", values: [] }])).toBe(4);
        expect(await count([{ field: "name", operator: "is_not_null", values: [] }])).toBe(16);
        expect(await count([{ field: "qty", operator: "in", values: ["10", "20", "999"] }])).toBe(2);
        expect(await count([{ field: "qty", operator: "in", values: [] }])).toBe(0);
        // neq keeps rows where the field is NULL.
        expect(await count([{ field: "name", operator: "neq", values: ["item 1"] }])).toBe(19);
        expect(
          await count([
            { field: "id", operator: "gt", values: ["5"] },
            { field: "flag", operator: "eq", values: ["false"] },
          ]),
        ).toBe(7);
      });

      it("binds filter values instead of splicing them", async () => {
        expect(await count([{ field: "name", operator: "eq", values: ["x' or '1'='1"] }])).toBe(0);
        const error = await rejection(count([{ field: "id", operator: "eq", values: ["1 or 1=1"] }]));
        expect(error.code).toBe("invalid_argument");
      });
    });

    describe("readBatch", () => {
      it("returns every row exactly once while higher keys are inserted concurrently", async () => {
        await ctx.exec(`create table ${t("r_stream")} (id bigint primary key, payload varchar(40))`);
        await ctx.insertRows(
          "r_stream",
          ["id", "payload"],
          Array.from({ length: 150 }, (_, i) => [String(i + 1), `row ${i + 1}`]),
        );
        let stop = false;
        let nextConcurrent = 100_000;
        const concurrent = (async () => {
          while (!stop) {
            const batch = Array.from({ length: 3 }, () => [String(nextConcurrent++), "concurrent"]);
            await ctx.insertRows("r_stream", ["id", "payload"], batch);
            await new Promise((resolve) => setTimeout(resolve, 2));
          }
        })();
        const seen: number[] = [];
        let after: string[] | null = null;
        let between = 50_000;
        try {
          for (let page = 0; page < 1000; page++) {
            const result = await c.readBatch(
              { entity: entity("r_stream"), keyFields: ["id"], after, maxRows: 7, maxBytes: 1 << 20 },
              never(),
            );
            expect(result.rows.fields).toEqual(["id", "payload"]);
            const rows = parseCopy(result.rows.data);
            expect(rows.length).toBe(result.rows.rowCount);
            expect(result.rows.rowCount).toBeLessThanOrEqual(7);
            seen.push(...rows.map((r) => Number(r[0])));
            if (rows.length > 0) expect(result.last).toEqual([rows.at(-1)![0]]);
            else expect(result.last).toBeNull();
            if (result.done) break;
            after = result.last;
            // Rows with higher keys appear between two reads.
            if (page < 20)
              await ctx.insertRows("r_stream", ["id", "payload"], [[String(between++), "between"]]);
          }
        } finally {
          stop = true;
          await concurrent;
        }
        expect(new Set(seen).size).toBe(seen.length);
        expect(seen).toEqual([...seen].sort((a, b) => a - b));
        const maxSeen = seen.at(-1)!;
        const present = await ids("r_stream");
        expect(seen).toEqual(present.filter((id) => id <= maxSeen));
        for (let id = 1; id <= 150; id++) expect(seen).toContain(id);
        for (let id = 50_000; id < between; id++) expect(seen).toContain(id);
      });

      it("stays within the byte budget and always returns at least one row", async () => {
        await ctx.exec(`create table ${t("r_wide")} (id bigint primary key, body text)`);
        await ctx.insertRows(
          "r_wide",
          ["id", "body"],
          Array.from({ length: 30 }, (_, i) => [String(i + 1), "x".repeat(500)]),
        );
        const tiny = await c.readBatch(
          { entity: entity("r_wide"), keyFields: ["id"], maxRows: 10, maxBytes: 10 },
          never(),
        );
        expect(tiny.rows.rowCount).toBe(1);
        expect(tiny.rows.data.length).toBeLessThanOrEqual(520);
        expect(tiny.done).toBe(false);
        expect(tiny.last).toEqual(["1"]);

        const pages = await readAll("r_wide", { maxRows: 10, maxBytes: 2000 });
        for (const page of pages) {
          expect(page.rows.data.length).toBeLessThanOrEqual(2000);
          if (!page.done) expect(page.rows.rowCount).toBeGreaterThanOrEqual(1);
        }
        const seen = pages.flatMap((p) => parseCopy(p.rows.data).map((r) => Number(r[0])));
        expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
      });

      it("reads chosen fields with conditions", async () => {
        const pages = await readAll("r_wide", {
          maxRows: 4,
          where: [{ field: "id", operator: "gt", values: ["25"] }],
        });
        const rows = pages.flatMap((p) => parseCopy(p.rows.data));
        expect(rows.map((r) => r[0])).toEqual(["26", "27", "28", "29", "30"]);
        const only = await c.readBatch(
          {
            entity: entity("r_wide"),
            fields: ["body"],
            keyFields: ["id"],
            after: ["29"],
            maxRows: 5,
            maxBytes: 1 << 20,
          },
          never(),
        );
        expect(only.rows.fields).toEqual(["body"]);
        expect(parseCopy(only.rows.data)).toEqual([["x".repeat(500)]]);
        expect(only.last).toEqual(["30"]);
        expect(only.done).toBe(true);
      });

      it("reads nullFields as NULL and still pages by the real key", async () => {
        const page = await c.readBatch(
          {
            entity: entity("r_wide"),
            fields: ["id", "body"],
            nullFields: ["body"],
            keyFields: ["id"],
            after: ["27"],
            maxRows: 2,
            maxBytes: 1 << 20,
          },
          never(),
        );
        expect(page.rows.fields).toEqual(["id", "body"]);
        expect(parseCopy(page.rows.data)).toEqual([
          ["28", null],
          ["29", null],
        ]);
        const keyNulled = await c.readBatch(
          {
            entity: entity("r_wide"),
            fields: ["id"],
            nullFields: ["id"],
            keyFields: ["id"],
            after: ["28"],
            maxRows: 1,
            maxBytes: 100,
          },
          never(),
        );
        expect(parseCopy(keyNulled.rows.data)).toEqual([[null]]);
        expect(keyNulled.last).toEqual(["29"]);
        const stray = await rejection(
          c.readBatch(
            {
              entity: entity("r_wide"),
              fields: ["id"],
              nullFields: ["body"],
              keyFields: ["id"],
              maxRows: 1,
              maxBytes: 100,
            },
            never(),
          ),
        );
        expect(stray.code).toBe("invalid_argument");
      });

      describe("until", () => {
        const read = (extra: Partial<ReadBatchRequest>) =>
          c.readBatch(
            {
              entity: entity("r_wide"),
              fields: ["id"],
              keyFields: ["id"],
              maxRows: 100,
              maxBytes: 1 << 20,
              ...extra,
            },
            never(),
          );
        const firstValues = (page: ReadBatchResult) => parseCopy(page.rows.data).map((r) => r[0]);

        it("reads after a position up to another, inclusive", async () => {
          const range = await read({ after: ["10"], until: ["14"] });
          expect(firstValues(range)).toEqual(["11", "12", "13", "14"]);
          expect(range.rows.rowCount).toBe(4);
          expect(range.last).toEqual(["14"]);
          expect(range.done).toBe(true);
          const beyond = await read({ after: ["28"], until: ["1000"] });
          expect(firstValues(beyond)).toEqual(["29", "30"]);
          expect(beyond.done).toBe(true);
        });

        it("reads from the start up to a position", async () => {
          const head = await read({ until: ["3"] });
          expect(firstValues(head)).toEqual(["1", "2", "3"]);
          expect(head.last).toEqual(["3"]);
          expect(head.done).toBe(true);
          const nothing = await read({ until: ["0"] });
          expect(nothing).toMatchObject({ last: null, done: true, rows: { rowCount: 0 } });
        });

        it("returns no rows when until equals after", async () => {
          const empty = await read({ after: ["7"], until: ["7"] });
          expect(empty.rows.rowCount).toBe(0);
          expect(empty.rows.data.length).toBe(0);
          expect(empty.last).toBeNull();
          expect(empty.done).toBe(true);
        });

        it("is done only once a read ends short of maxRows within the byte budget", async () => {
          const partial = await read({ after: ["10"], until: ["14"], maxRows: 3 });
          expect(firstValues(partial)).toEqual(["11", "12", "13"]);
          expect(partial.done).toBe(false);
          const rest = await read({ after: partial.last, until: ["14"], maxRows: 3 });
          expect(firstValues(rest)).toEqual(["14"]);
          expect(rest.done).toBe(true);
          // Exactly maxRows rows in range: the end is seen by the next (empty) read.
          const exact = await read({ after: ["10"], until: ["14"], maxRows: 4 });
          expect(exact.rows.rowCount).toBe(4);
          expect(exact.done).toBe(false);
          const after = await read({ after: exact.last, until: ["14"], maxRows: 4 });
          expect(after).toMatchObject({ last: null, done: true, rows: { rowCount: 0 } });
          // Trimmed by the byte budget: not done, whatever the bound.
          const trimmed = await read({
            fields: ["id", "body"],
            after: ["10"],
            until: ["14"],
            maxBytes: 1200,
          });
          expect(firstValues(trimmed)).toEqual(["11", "12"]);
          expect(trimmed.done).toBe(false);
          expect(trimmed.last).toEqual(["12"]);
        });

        it("combines with conditions", async () => {
          const page = await read({
            after: ["10"],
            until: ["20"],
            where: [{ field: "id", operator: "in", values: ["5", "12", "20", "21"] }],
          });
          expect(firstValues(page)).toEqual(["12", "20"]);
          expect(page.done).toBe(true);
        });

        it("bounds composite keys as a row, key fields read or not", async () => {
          await ctx.exec(
            `create table ${t("r_pair")} (a integer not null, b varchar(40) not null, v text, primary key (a, b))`,
          );
          await ctx.insertRows(
            "r_pair",
            ["a", "b", "v"],
            [
              ["1", "a", "v1"],
              ["1", "b", "v2"],
              ["2", "a", "v3"],
              ["2", "b", "v4"],
              ["2", "c", "v5"],
              ["3", "a", "v6"],
            ],
          );
          const pair = (extra: Partial<ReadBatchRequest>) =>
            c.readBatch(
              { entity: entity("r_pair"), keyFields: ["a", "b"], maxRows: 100, maxBytes: 1 << 20, ...extra },
              never(),
            );
          const range = await pair({ after: ["1", "b"], until: ["2", "b"] });
          expect(parseCopy(range.rows.data)).toEqual([
            ["2", "a", "v3"],
            ["2", "b", "v4"],
          ]);
          expect(range.last).toEqual(["2", "b"]);
          expect(range.done).toBe(true);
          // (2, c) sorts after (2, bb); (2, b) before it.
          const between = await pair({ fields: ["v"], after: ["1", "a"], until: ["2", "bb"] });
          expect(parseCopy(between.rows.data)).toEqual([["v2"], ["v3"], ["v4"]]);
          expect(between.last).toEqual(["2", "b"]);
          const head = await pair({ fields: ["v"], until: ["1", "zzz"], maxRows: 1 });
          expect(parseCopy(head.rows.data)).toEqual([["v1"]]);
          expect(head).toMatchObject({ last: ["1", "a"], done: false });
          const same = await pair({ after: ["2", "a"], until: ["2", "a"] });
          expect(same).toMatchObject({ last: null, done: true, rows: { rowCount: 0 } });
        });

        it("refuses an until that does not fit the key", async () => {
          for (const request of [
            { until: ["1", "2"] },
            { until: [] },
            { until: ["1\0"] },
            { until: "5" as unknown as string[] },
            { until: [5] as unknown as string[] },
          ]) {
            const error = await rejection(read(request));
            expect(error.code).toBe("invalid_argument");
            expect(error.retryable).toBe(false);
          }
          const composite = await rejection(
            c.readBatch(
              { entity: entity("r_pair"), keyFields: ["a", "b"], until: ["1"], maxRows: 1, maxBytes: 100 },
              never(),
            ),
          );
          expect(composite.code).toBe("invalid_argument");
        });
      });

      it("reads a table without any key by physical position, in one snapshot", async () => {
        await ctx.exec(`create table ${t("r_nokey")} (x integer, y text)`);
        await ctx.exec(`insert into ${t("r_nokey")} values (1, 'a'), (2, 'b'), (2, 'b')`);
        const r = await c.readBatch(
          { entity: entity("r_nokey"), keyFields: [], maxRows: 5, maxBytes: 100_000 },
          never(),
        );
        expect(r.rows.rowCount).toBe(3);
        expect(r.done).toBe(true);
        expect(r.last).toHaveLength(3);
      });
    });

    describe("writeBatch", () => {
      const columns = ["id", "name", "note", "flag", "amount", "seen", "qty"];
      const ddl = (table: string) =>
        `create table ${t(table)} (id bigint primary key, name varchar(40), note text, flag boolean,
           amount numeric(12,3), seen timestamp, qty integer)`;
      const tricky: (string | null)[][] = [
        ["1", "plain", "hello", "true", "12.500", "2024-01-02 03:04:05", "1"],
        ["2", null, null, null, null, null, null],
        ["3", "tab\there", "line\nbreak\r\nwindows", "false", "-0.001", "1999-12-31 23:59:59.123456", "-5"],
        [
          "4",
          "back\\slash",
          "\\N is not null, \\\\ neither",
          "true",
          "999999999.999",
          "2000-02-29 00:00:00",
          "0",
        ],
        ["5", "ünïcødé ✓", "日本語テキスト 🚀 emoji", "false", "0.000", "1970-01-01 00:00:00", "2147483647"],
        ["6", "", "", "true", "1", "2038-01-19 03:14:07", "-2147483648"],
        ["7", "quote ' and \"", "semi; drop table x; --", "true", "3.141", "2024-06-30 12:00:00.5", "42"],
      ];
      for (let i = 8; i <= 40; i++)
        tricky.push([
          String(i),
          `name ${i}`,
          `note\t${i}\n`,
          i % 2 ? "true" : "false",
          `${i}.${i}`,
          "2024-01-01 00:00:00",
          String(i),
        ]);

      it("round-trips every value through read and write", async () => {
        await ctx.exec(ddl("w_src"));
        await ctx.exec(ddl("w_dst"));
        await ctx.insertRows("w_src", columns, tricky);
        const pages = await readAll("w_src", { maxRows: 7 });
        let created = 0;
        for (const [i, page] of pages.entries()) {
          if (page.rows.rowCount === 0) continue;
          expect(page.rows.fields).toEqual(columns);
          const result = await write("w_dst", `roundtrip-${i}`, page.rows);
          expect(result.alreadyCommitted).toBe(false);
          expect(result.rejected).toBe(0);
          created += result.created;
        }
        expect(created).toBe(tricky.length);
        expect(await rowCount("w_dst")).toBe(tricky.length);
        expect(await ctx.checksum("w_dst", "id")).toBe(await ctx.checksum("w_src", "id"));
        const values = pages.flatMap((p) => parseCopy(p.rows.data));
        expect(values[2]![1]).toBe("tab\there");
        expect(values[2]![2]).toBe("line\nbreak\r\nwindows");
        expect(values[3]![2]).toBe("\\N is not null, \\\\ neither");
        expect(values[1]!.slice(1)).toEqual([null, null, null, null, null, null]);
        expect(values[4]![2]).toBe("日本語テキスト 🚀 emoji");
      });

      it("merges: changed rows are updated, new rows created, target-only rows kept", async () => {
        await ctx.insertRows("w_dst", columns, [["1000", "only in target", null, null, null, null, null]]);
        const before = await rowCount("w_dst");
        const changed = [
          ["1", "renamed", "changed", "false", "1.000", "2024-01-02 03:04:05", "11"],
          ["2", "was null", null, null, null, null, null],
          ["500", "new", null, null, null, null, null],
        ];
        const result = await write("w_dst", "merge-1", rowBatch(columns, changed), { strategy: "merge" });
        expect(result).toMatchObject({ alreadyCommitted: false, created: 1, updated: 2, rejected: 0 });
        expect(await rowCount("w_dst")).toBe(before + 1);
        const rows = await ctx.exec(
          `select id, name, qty from ${t("w_dst")} where id in (1, 2, 500, 1000) order by id`,
        );
        expect(rows.map((r) => [Number(r.id), r.name])).toEqual([
          [1, "renamed"],
          [2, "was null"],
          [500, "new"],
          [1000, "only in target"],
        ]);
        expect(await ctx.ledgerRow("merge-1")).toEqual({ rowCount: 3, created: 1, updated: 2, rejected: 0 });
      });

      it("fails a batch with a NOT NULL violation and leaves nothing behind", async () => {
        await ctx.exec(`create table ${t("w_strict")} (id bigint primary key, name varchar(40) not null)`);
        const rows = Array.from({ length: 10 }, (_, i) => [String(i + 1), i === 6 ? null : `n${i}`]);
        const error = await rejection(write("w_strict", "fail-notnull", rowBatch(["id", "name"], rows)));
        expect(error.code).toBe("failed_precondition");
        expect(error.retryable).toBe(false);
        expect(String((error.details as { sqlState?: string }).sqlState)).toMatch(/^23/);
        expect(error.message).toMatch(/null/i);
        expect(await rowCount("w_strict")).toBe(0);
        expect(await ctx.ledgerRow("fail-notnull")).toBeNull();
        expect(await ctx.openAgentTransactions()).toBe(0);
      });

      it("fails an insert hitting a duplicate key and leaves nothing behind", async () => {
        await ctx.insertRows("w_strict", ["id", "name"], [["5", "existing"]]);
        const rows = Array.from({ length: 10 }, (_, i) => [String(i + 1), `n${i}`]);
        const error = await rejection(write("w_strict", "fail-dup", rowBatch(["id", "name"], rows)));
        expect(error.code).toBe("failed_precondition");
        expect(error.retryable).toBe(false);
        expect(await ids("w_strict")).toEqual([5]);
        expect(await ctx.ledgerRow("fail-dup")).toBeNull();
      });

      it("fails a batch with a value of the wrong type as invalid_argument", async () => {
        const error = await rejection(
          write(
            "w_strict",
            "fail-type",
            rowBatch(
              ["id", "name"],
              [
                ["1", "a"],
                ["two", "b"],
              ],
            ),
          ),
        );
        expect(error.code).toBe("invalid_argument");
        expect(error.retryable).toBe(false);
        expect(String((error.details as { sqlState?: string }).sqlState)).toMatch(/^22/);
        expect(await ids("w_strict")).toEqual([5]);
        expect(await ctx.ledgerRow("fail-type")).toBeNull();
      });

      it("writes a replayed batch id only once", async () => {
        await ctx.exec(`create table ${t("w_replay")} (id bigint primary key, name varchar(40))`);
        const batch = rowBatch(
          ["id", "name"],
          Array.from({ length: 25 }, (_, i) => [String(i + 1), `r${i}`]),
        );
        const first = await write("w_replay", "replay-1", batch);
        expect(first).toMatchObject({ alreadyCommitted: false, created: 25 });
        const second = await write("w_replay", "replay-1", batch, {
          strategy: "merge",
          rejectPolicy: "isolate",
        });
        // Nothing is written again; the answer repeats what the first commit recorded.
        expect(second).toEqual({
          alreadyCommitted: true,
          created: 25,
          updated: 0,
          rejected: 0,
          rejectedRecords: [],
        });
        expect(await rowCount("w_replay")).toBe(25);
        expect(await ctx.ledgerRow("replay-1")).toEqual({
          rowCount: 25,
          created: 25,
          updated: 0,
          rejected: 0,
        });
      });

      it("lets exactly one of two concurrent writes of the same batch id commit", async () => {
        const batch = rowBatch(
          ["id", "name"],
          Array.from({ length: 500 }, (_, i) => [String(1000 + i), `c${i}`]),
        );
        const results = await Promise.all([
          write("w_replay", "replay-concurrent", batch),
          write("w_replay", "replay-concurrent", batch),
          write("w_replay", "replay-concurrent", batch, { strategy: "merge" }),
        ]);
        expect(results.filter((r) => !r.alreadyCommitted)).toHaveLength(1);
        expect(results.filter((r) => r.alreadyCommitted)).toHaveLength(2);
        for (const result of results) expect(result).toMatchObject({ created: 500, updated: 0, rejected: 0 });
        expect(await rowCount("w_replay")).toBe(525);
        expect(await ctx.ledgerRow("replay-concurrent")).toEqual({
          rowCount: 500,
          created: 500,
          updated: 0,
          rejected: 0,
        });
      });

      it("isolates and reports rejected records while good rows commit", async () => {
        await ctx.exec(`create table ${t("w_iso_parent")} (id bigint primary key)`);
        await ctx.exec(`create table ${t("w_iso")} (id bigint primary key, name varchar(40) not null,
          parent_id bigint references ${t("w_iso_parent")} (id))`);
        await ctx.insertRows("w_iso_parent", ["id"], [["1"]]);
        await ctx.insertRows("w_iso", ["id", "name", "parent_id"], [["50", "already here", "1"]]);
        const rows = Array.from({ length: 100 }, (_, i): (string | null)[] => [
          String(i + 1),
          `n${i + 1}`,
          "1",
        ]);
        rows[59]![1] = null; // id 60: NOT NULL violation
        rows[69]![2] = "999"; // id 70: FK violation
        const result = await write("w_iso", "isolate-1", rowBatch(["id", "name", "parent_id"], rows), {
          rejectPolicy: "isolate",
        });
        expect(result).toMatchObject({ alreadyCommitted: false, created: 97, updated: 0, rejected: 3 });
        expect(result.rejectedRecords.map((r) => r.key)).toEqual([["50"], ["60"], ["70"]]);
        for (const record of result.rejectedRecords) {
          expect(record.sqlState).toMatch(/^23/);
          expect(record.message).not.toBe("");
        }
        expect(result.rejectedRecords[1]!.field).toBe("name");
        expect(result.rejectedRecords[2]!.field).toBe("parent_id");
        expect(await rowCount("w_iso")).toBe(98);
        expect((await ids("w_iso")).filter((id) => id === 60 || id === 70)).toEqual([]);
        expect(await ctx.ledgerRow("isolate-1")).toEqual({
          rowCount: 100,
          created: 97,
          updated: 0,
          rejected: 3,
        });
      });

      it("isolates malformed lines and refuses them under fail", async () => {
        await ctx.exec(`create table ${t("w_lines")} (id bigint primary key, name varchar(40))`);
        const data = Buffer.from(`1\ta\n2\tb\textra\n3\tc\n`, "utf8");
        const batch: RowBatch = { encoding: "copy_text", fields: ["id", "name"], rowCount: 3, data };
        const failed = await rejection(write("w_lines", "lines-fail", batch));
        expect(failed.code).toBe("invalid_argument");
        expect(await rowCount("w_lines")).toBe(0);
        const result = await write("w_lines", "lines-isolate", batch, { rejectPolicy: "isolate" });
        expect(result).toMatchObject({ created: 2, rejected: 1 });
        expect(result.rejectedRecords[0]!.key).toEqual(["2"]);
        expect(await ids("w_lines")).toEqual([1, 3]);
      });

      it("cancels a long write: rejects as cancelled, writes nothing, leaves no open transaction", async () => {
        await ctx.exec(`create table ${t("w_slow")} (id bigint primary key, name varchar(40))`);
        await ctx.slowDownInserts("w_slow", 0.05);
        const batch = rowBatch(
          ["id", "name"],
          Array.from({ length: 200 }, (_, i) => [String(i + 1), `s${i}`]),
        );
        const controller = new AbortController();
        const started = Date.now();
        const pending = c.writeBatch(
          {
            batchId: "slow-1",
            entity: entity("w_slow"),
            strategy: "insert",
            keyFields: ["id"],
            rows: batch,
            rejectPolicy: "isolate",
            // The slowness is a trigger's.
            fireTriggers: true,
          },
          controller.signal,
        );
        setTimeout(() => controller.abort(), 300);
        const error = await rejection(pending);
        expect(error.code).toBe("cancelled");
        expect(Date.now() - started).toBeLessThan(5000);
        expect(await rowCount("w_slow")).toBe(0);
        expect(await ctx.ledgerRow("slow-1")).toBeNull();
        expect(await ctx.openAgentTransactions()).toBe(0);
        // The connector stays usable, and an aborted signal stops a call before it starts.
        expect(await c.count(entity("w_slow"), [], never())).toBe(0);
        const aborted = new AbortController();
        aborted.abort();
        expect((await rejection(c.count(entity("w_slow"), [], aborted.signal))).code).toBe("cancelled");
        const early = c.writeBatch(
          {
            batchId: "slow-2",
            entity: entity("w_slow"),
            strategy: "insert",
            keyFields: ["id"],
            rows: batch,
            rejectPolicy: "fail",
          },
          aborted.signal,
        );
        expect((await rejection(early)).code).toBe("cancelled");
        expect(await ctx.ledgerRow("slow-2")).toBeNull();
      });
    });

    describe("cleanEntity and deleteRecords", () => {
      it("deletes every row even when other tables reference the entity", async () => {
        await ctx.exec(`create table ${t("x_parent")} (id bigint primary key)`);
        await ctx.exec(
          `create table ${t("x_child")} (id bigint primary key, parent_id bigint references ${t("x_parent")} (id))`,
        );
        await ctx.insertRows(
          "x_parent",
          ["id"],
          Array.from({ length: 12 }, (_, i) => [String(i + 1)]),
        );
        expect(await c.cleanEntity(entity("x_parent"), never())).toBe(12);
        expect(await rowCount("x_parent")).toBe(0);
        expect(await c.cleanEntity(entity("x_parent"), never())).toBe(0);
      });

      it("deletes rows by key tuples, composite keys included", async () => {
        await ctx.exec(
          `create table ${t("x_pair")} (a integer not null, b varchar(40) not null, v text, primary key (a, b))`,
        );
        await ctx.insertRows(
          "x_pair",
          ["a", "b", "v"],
          [
            ["1", "x", "1"],
            ["1", "y", "2"],
            ["2", "x", "3"],
            ["2", "it's", "4"],
          ],
        );
        const deleted = await c.deleteRecords(
          entity("x_pair"),
          ["a", "b"],
          [
            ["1", "y"],
            ["2", "it's"],
            ["9", "none"],
          ],
          never(),
        );
        expect(deleted).toBe(2);
        const left = await ctx.exec(`select a, b from ${t("x_pair")} order by a, b`);
        expect(left.map((r) => `${r.a}/${r.b}`)).toEqual(["1/x", "2/x"]);
        expect(await c.deleteRecords(entity("x_pair"), ["a", "b"], [], never())).toBe(0);
      });
    });

    describe("identifiers", () => {
      it("never executes a hostile entity name", async () => {
        await ctx.exec(`create table ${t("bait")} (id bigint primary key)`);
        await ctx.insertRows("bait", ["id"], [["1"]]);
        const hostile = `x"; drop table ${ctx.quote(ctx.schema)}.bait; --`;
        for (const call of [
          () => c.count(entity(hostile), [], never()),
          () =>
            c.readBatch({ entity: entity(hostile), keyFields: ["id"], maxRows: 1, maxBytes: 100 }, never()),
          () => c.cleanEntity(entity(hostile), never()),
          () => write(hostile, "hostile-1", rowBatch(["id"], [["1"]])),
        ]) {
          const error = await rejection(call());
          expect(["not_found", "invalid_argument"]).toContain(error.code);
        }
        expect(await rowCount("bait")).toBe(1);
      });

      it("quotes odd but valid names correctly", async () => {
        const odd = 'we"ird; name';
        await ctx.exec(`create table ${t(odd)} (id bigint primary key, ${ctx.quote('sp ace"d')} text)`);
        const result = await write(
          odd,
          "odd-1",
          rowBatch(
            ["id", 'sp ace"d'],
            [
              ["1", "v1"],
              ["2", "v2"],
            ],
          ),
        );
        expect(result.created).toBe(2);
        expect(
          await c.count(entity(odd), [{ field: 'sp ace"d', operator: "eq", values: ["v2"] }], never()),
        ).toBe(1);
        const page = await c.readBatch(
          { entity: entity(odd), keyFields: ["id"], maxRows: 10, maxBytes: 1000 },
          never(),
        );
        expect(parseCopy(page.rows.data)).toEqual([
          ["1", "v1"],
          ["2", "v2"],
        ]);
      });

      it("rejects empty, overlong and NUL names as invalid_argument", async () => {
        for (const bad of ["", "a".repeat(64), "nul\0name"]) {
          const error = await rejection(c.count(entity(bad), [], never()));
          expect(error.code).toBe("invalid_argument");
          expect(error.retryable).toBe(false);
        }
        const field = await rejection(
          c.count(entity("bait"), [{ field: "", operator: "is_null", values: [] }], never()),
        );
        expect(field.code).toBe("invalid_argument");
      });
    });

    describe("unknown names", () => {
      it("answers not_found for unknown entities, naming them", async () => {
        const missing = entity("no_such_table");
        for (const call of [
          () => c.count(missing, [], never()),
          () => c.readBatch({ entity: missing, keyFields: ["id"], maxRows: 1, maxBytes: 100 }, never()),
          () => write("no_such_table", "missing-1", rowBatch(["id"], [["1"]])),
          () => c.cleanEntity(missing, never()),
          () => c.deleteRecords(missing, ["id"], [["1"]], never()),
        ]) {
          const error = await rejection(call());
          expect(error.code).toBe("not_found");
          expect(error.retryable).toBe(false);
          expect(error.message).toContain("no_such_table");
        }
        expect(await ctx.ledgerRow("missing-1")).toBeNull();
      });

      it("answers not_found for unknown fields, naming them", async () => {
        const items = entity("c_items");
        for (const call of [
          () => c.count(items, [{ field: "nope", operator: "eq", values: ["1"] }], never()),
          () => c.count(items, [{ field: 'id" = id or "1', operator: "eq", values: ["1"] }], never()),
          () =>
            c.readBatch(
              { entity: items, fields: ["id", "nope"], keyFields: ["id"], maxRows: 1, maxBytes: 100 },
              never(),
            ),
          () => c.readBatch({ entity: items, keyFields: ["nope"], maxRows: 1, maxBytes: 100 }, never()),
          () => write("c_items", "missing-field", rowBatch(["id", "nope"], [["1", "x"]])),
          () => c.deleteRecords(items, ["nope"], [["1"]], never()),
        ]) {
          const error = await rejection(call());
          expect(error.code).toBe("not_found");
          expect(error.message).toMatch(/nope|id\\?" = id/);
        }
      });
    });

    it("rejects every call after close()", async () => {
      const other = ctx.createConnector();
      expect(await other.count(entity("c_items"), [], never())).toBe(20);
      await other.close();
      const error = await rejection(other.count(entity("c_items"), [], never()));
      expect(error.retryable).toBe(false);
    });
  });
}
