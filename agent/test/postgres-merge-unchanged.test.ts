/**
 * A merge leaves rows that already equal their source untouched (no new row
 * version), rewrites the ones that differ, including differences that equality
 * alone would hide (numeric scale, json text), and counts both as updated.
 * Against a real PostgreSQL, in a database of this file's own.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { Connector, WriteBatchRequest } from "../src/connector.js";
import { rowBatch } from "./connector-contract.js";
import { createOwnDatabase, type OwnDatabase } from "./support/own-database.js";

let db: OwnDatabase;
let sql: OwnDatabase["sql"];
let connector: Connector;

beforeAll(async () => {
  db = await createOwnDatabase(
    inject("databaseUrl"),
    `
    create collation ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
    create table items (id int8 primary key, label text collate ci, price numeric(10,2), doc json);
    insert into items values (1, 'same', 1.50, '{"a":1}'), (2, 'Case', 2.00, '{"a":2}'),
      (3, 'scale', 3.5, '{"a":3}'), (4, 'json', 4.00, '{"a":4}');
    create table parts (id int8 primary key, label text) partition by range (id);
    create table parts_low partition of parts for values from (0) to (100);
    create table parts_high partition of parts for values from (100) to (1000);
    insert into parts values (1, 'one'), (150, 'one fifty');
  `,
  );
  ({ sql, connector } = db);
});

afterAll(async () => db?.drop());

function merge(batchId: string, rows: (string | null)[][]): WriteBatchRequest {
  return {
    batchId,
    entity: { schema: "public", name: "items" },
    strategy: "merge",
    keyFields: ["id"],
    rows: rowBatch(["id", "label", "price", "doc"], rows),
    rejectPolicy: "fail",
  };
}

const versions = async () =>
  Object.fromEntries(
    (await sql<{ id: string; xmin: string }[]>`select id, xmin::text from items order by id`).map((r) => [
      r.id,
      r.xmin,
    ]),
  );

describe("merge of rows already in the target", () => {
  it("counts a partitioned re-run with nothing changed as all updated, in one result row", async () => {
    const request = (batchId: string, rows: string[][]): WriteBatchRequest => ({
      ...merge(batchId, []),
      entity: { schema: "public", name: "parts" },
      rows: rowBatch(["id", "label"], rows),
    });
    const signal = new AbortController().signal;
    const unchanged = await connector.writeBatch(
      request("p1", [
        ["1", "one"],
        ["150", "one fifty"],
      ]),
      signal,
    );
    expect(unchanged).toMatchObject({ created: 0, updated: 2, rejected: 0 });
    const mixed = await connector.writeBatch(
      request("p2", [
        ["1", "uno"],
        ["2", "two"],
        ["150", "one fifty"],
      ]),
      signal,
    );
    expect(mixed).toMatchObject({ created: 1, updated: 2, rejected: 0 });
    const rows = await sql`select id::text, label from parts order by parts.id`;
    expect(rows.map((r) => [r.id, r.label])).toEqual([
      ["1", "uno"],
      ["2", "two"],
      ["150", "one fifty"],
    ]);
  });

  it("rewrites only rows that differ, and counts every matched row as updated", async () => {
    const before = await versions();
    const result = await connector.writeBatch(
      merge("m1", [
        ["1", "same", "1.50", '{"a":1}'], // identical
        ["2", "case", "2.00", '{"a":2}'], // equal under the case-insensitive collation, different bytes
        ["3", "scale", "3.50", '{"a":3}'], // numeric(10,2) stores 3.50 either way: identical
        ["4", "json", "4.00", '{"a": 4}'], // json keeps its text: different
        ["5", "new", "5.00", null],
      ]),
      new AbortController().signal,
    );
    expect(result).toMatchObject({ alreadyCommitted: false, created: 1, updated: 4, rejected: 0 });
    const after = await versions();
    expect(after["1"]).toBe(before["1"]);
    expect(after["3"]).toBe(before["3"]);
    expect(after["2"]).not.toBe(before["2"]);
    expect(after["4"]).not.toBe(before["4"]);
    const rows = await sql`select id::text, label, price::text, doc::text from items order by id`;
    expect(rows.map((r) => Object.values(r))).toEqual([
      ["1", "same", "1.50", '{"a":1}'],
      ["2", "case", "2.00", '{"a":2}'],
      ["3", "scale", "3.50", '{"a":3}'],
      ["4", "json", "4.00", '{"a": 4}'],
      ["5", "new", "5.00", null],
    ]);
  });
});
