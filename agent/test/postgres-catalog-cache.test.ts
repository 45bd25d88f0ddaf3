/**
 * The catalog cache of reads and writes (catalog-cache.ts, issue 10 item 9):
 * batches of one entity share one catalog look-up, and DDL between batches
 * never changes an outcome — a write that sends a column added since the
 * entry was read succeeds, a table recreated with another column type is
 * written from a fresh reading, a dropped table answers not_found as before.
 * Against a real PostgreSQL, in a database of this file's own.
 */
import { silentLogger } from "@dray/common";
import type postgres from "postgres";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { Connector, ReadBatchRequest, WriteBatchRequest } from "../src/connector.js";
import {
  CatalogCache,
  type CatalogLoader,
  pgCatalogLoader,
} from "../src/connectors/postgres/catalog-cache.js";
import { createPool } from "../src/connectors/postgres/connection-options.js";
import { toDrayError } from "../src/connectors/postgres/error-mapping.js";
import { createLedger } from "../src/connectors/postgres/ledger.js";
import { readBatch } from "../src/connectors/postgres/read-batch.js";
import { Session, type SessionPools } from "../src/connectors/postgres/session.js";
import {
  prepareRows,
  validateWriteRequest,
  writeStagedBatch,
} from "../src/connectors/postgres/write-batch.js";
import { parseCopy, rowBatch } from "./connector-contract.js";
import { createOwnDatabase, type OwnDatabase } from "./support/own-database.js";

let db: OwnDatabase;
let sql: OwnDatabase["sql"];
let connector: Connector;
let pools: SessionPools;

const SETUP = `
create schema app;
create table app.parent (id int primary key);
insert into app.parent select g from generate_series(1, 10) g;
create table app.child (id int primary key, parent_id int references app.parent (id), label text);
create table app.grows (id int primary key, name text);
create table app.retyped (id int primary key, at int);
create table app.doomed (id int primary key, name text);
create table app.doomed_cached (id int primary key, name text);
`;

beforeAll(async () => {
  db = await createOwnDatabase(inject("databaseUrl"), SETUP);
  ({ sql, connector } = db);
  const [row] = await sql<{ name: string }[]>`select current_database() as name`;
  const url = new URL(inject("databaseUrl"));
  url.pathname = `/${row!.name}`;
  const pool = createPool({ url: url.toString(), max: 2, logger: silentLogger });
  pools = { sql: pool as postgres.Sql, logger: silentLogger, cancelBackend: async () => {} };
  await Session.run(pools, new AbortController().signal, createLedger);
});

afterAll(async () => {
  await pools?.sql.end({ timeout: 5 });
  await db?.drop();
});

/** The real catalog queries, counted. */
function countingCache(): { cache: CatalogCache; calls: { entity: number; foreignKeys: number } } {
  const calls = { entity: 0, foreignKeys: 0 };
  const loader: CatalogLoader = {
    entity: (session, entity) => {
      calls.entity++;
      return pgCatalogLoader.entity(session, entity);
    },
    foreignKeys: (session, info) => {
      calls.foreignKeys++;
      return pgCatalogLoader.foreignKeys(session, info);
    },
    sequences: (session, info) => pgCatalogLoader.sequences(session, info),
  };
  return { cache: new CatalogCache({ loader }), calls };
}

let batchNumber = 0;

function request(table: string, fields: string[], rows: (string | null)[][]): WriteBatchRequest {
  return {
    batchId: `catalog-cache-${++batchNumber}`,
    entity: { schema: "app", name: table },
    strategy: "merge",
    keyFields: ["id"],
    rows: rowBatch(fields, rows),
    rejectPolicy: "isolate",
  };
}

/** Writes as the connector does (validate, prepare, one session, errors as DrayErrors), through `cache`. */
async function write(cache: CatalogCache, req: WriteBatchRequest) {
  const signal = new AbortController().signal;
  try {
    validateWriteRequest(req);
    const prepared = prepareRows(req.rows.data, req.rows.fields.length, req.rows.rowCount);
    return await Session.run(pools, signal, (session) =>
      writeStagedBatch(session, req, prepared, "copy", true, cache),
    );
  } catch (error) {
    throw toDrayError(error, { aborted: signal.aborted, operation: "write" });
  }
}

describe("catalog cache", () => {
  it("two writes and two reads of one entity issue one entity and one foreign-key look-up", async () => {
    const { cache, calls } = countingCache();
    const first = await write(cache, request("child", ["id", "parent_id", "label"], [["1", "1", "a"]]));
    const second = await write(
      cache,
      request(
        "child",
        ["id", "parent_id", "label"],
        [
          ["2", "2", "b"],
          ["3", "99", "broken"],
        ],
      ),
    );
    expect(first).toMatchObject({ created: 1, rejected: 0 });
    // The cached foreign key is still checked: the row referencing a missing parent is rejected.
    expect(second).toMatchObject({ created: 1, rejected: 1 });
    expect(second.rejectedRecords[0]).toMatchObject({ key: ["3"], sqlState: "23503" });
    expect(calls).toEqual({ entity: 1, foreignKeys: 1 });

    const read: ReadBatchRequest = {
      entity: { schema: "app", name: "child" },
      keyFields: ["id"],
      fields: ["id", "label"],
      maxRows: 1,
      maxBytes: 1 << 20,
    };
    const signal = new AbortController().signal;
    const page1 = await Session.run(pools, signal, (session) =>
      readBatch(session, read, "copy", undefined, cache),
    );
    const page2 = await Session.run(pools, signal, (session) =>
      readBatch(session, { ...read, after: page1.last }, "copy", undefined, cache),
    );
    expect(parseCopy(page1.rows.data)).toEqual([["1", "a"]]);
    expect(parseCopy(page2.rows.data)).toEqual([["2", "b"]]);
    expect(calls).toEqual({ entity: 1, foreignKeys: 1 });
  });

  it("concurrent writes of one entity share one look-up", async () => {
    const { cache, calls } = countingCache();
    const results = await Promise.all([
      write(cache, request("child", ["id", "parent_id"], [["10", "1"]])),
      write(cache, request("child", ["id", "parent_id"], [["11", "2"]])),
    ]);
    expect(results.map((r) => r.created)).toEqual([1, 1]);
    expect(calls).toEqual({ entity: 1, foreignKeys: 1 });
  });

  it("a column added between two writes is written by the second (the entry is read again)", async () => {
    const { cache, calls } = countingCache();
    await write(cache, request("grows", ["id", "name"], [["1", "one"]]));
    await sql.unsafe("alter table app.grows add column note text");
    const result = await write(cache, request("grows", ["id", "name", "note"], [["2", "two", "new"]]));
    expect(result).toMatchObject({ created: 1, rejected: 0 });
    expect(calls.entity).toBe(2);
    expect(await sql.unsafe("select id, name, note from app.grows order by id")).toEqual([
      { id: 1, name: "one", note: null },
      { id: 2, name: "two", note: "new" },
    ]);
    // Through the connector (its own cache) the same holds.
    await connector.writeBatch(
      request("grows", ["id", "name"], [["3", "three"]]),
      new AbortController().signal,
    );
    await sql.unsafe("alter table app.grows add column extra int");
    await expect(
      connector.writeBatch(
        request("grows", ["id", "name", "extra"], [["4", "four", "4"]]),
        new AbortController().signal,
      ),
    ).resolves.toMatchObject({ created: 1, rejected: 0 });
  });

  it("a table recreated with another column type is written from a fresh reading, once", async () => {
    const { cache, calls } = countingCache();
    await write(cache, request("retyped", ["id", "at"], [["1", "5"]]));
    await sql.unsafe(`drop table app.retyped; create table app.retyped (id int primary key, at date);
      insert into app.retyped values (5, '2024-01-05')`);
    // A row inside the batch's key range: the staged INSERT … SELECT runs (not the plain COPY).
    // The cached entry casts "at" to integer: the server refuses that (42804), the entry is dropped,
    // and the batch, rolled back, is written again from the new catalog.
    const result = await write(
      cache,
      request(
        "retyped",
        ["id", "at"],
        [
          ["2", "2024-01-31"],
          ["9", "2024-02-29"],
        ],
      ),
    );
    expect(result).toMatchObject({ created: 2, rejected: 0, alreadyCommitted: false });
    expect(calls.entity).toBe(2);
    expect(await sql.unsafe("select id, at::text as at from app.retyped order by id")).toEqual([
      { id: 2, at: "2024-01-31" },
      { id: 5, at: "2024-01-05" },
      { id: 9, at: "2024-02-29" },
    ]);
  });

  it("a write to a dropped table answers not_found, as without the cache", async () => {
    const { cache, calls } = countingCache();
    await write(cache, request("doomed_cached", ["id", "name"], [["1", "a"]]));
    await sql.unsafe("drop table app.doomed_cached");
    const req = request("doomed_cached", ["id", "name"], [["2", "b"]]);
    const cached = await write(cache, req).catch((error: unknown) => error);
    expect(cached).toMatchObject({ code: "not_found", retryable: false });
    expect((cached as Error).message).toContain("entity app.doomed_cached was not found");
    expect(calls.entity).toBe(2);
    expect(cache.size).toBe(0);
    expect(
      await sql.unsafe("select 1 from dray.batch_ledger where batch_id = $1", [req.batchId]),
    ).toHaveLength(0);

    // Through the connector: the same answer as an uncached write gives.
    await connector.writeBatch(request("doomed", ["id", "name"], [["1", "a"]]), new AbortController().signal);
    await sql.unsafe("drop table app.doomed");
    const viaConnector = await connector
      .writeBatch(request("doomed", ["id", "name"], [["2", "b"]]), new AbortController().signal)
      .catch((error: unknown) => error);
    const uncached = await write(
      new CatalogCache({ ttlMs: 0 }),
      request("doomed", ["id", "name"], [["2", "b"]]),
    ).catch((error: unknown) => error);
    expect(viaConnector).toMatchObject({ code: "not_found", retryable: false });
    expect((viaConnector as Error).message).toContain("entity app.doomed was not found");
    expect(uncached).toMatchObject({ code: "not_found", retryable: false });
  });
});
