/**
 * Commit order between writes in flight at once (`previousBatchId`): a batch
 * commits only after its predecessor has, waits while the predecessor's
 * transaction is open, and fails with a retryable `aborted` (writing nothing)
 * when the predecessor did not commit. Against a real PostgreSQL, in a
 * database of this file's own.
 */
import { DrayError } from "@dray/common";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { Connector, WriteBatchRequest } from "../src/connector.js";
import { rowBatch } from "./connector-contract.js";
import { createOwnDatabase, type OwnDatabase } from "./support/own-database.js";

let db: OwnDatabase;
let sql: OwnDatabase["sql"];
let connector: Connector;

beforeAll(async () => {
  // The database defaults to REPEATABLE READ: the agent's transactions must not depend on the default.
  db = await createOwnDatabase(
    inject("databaseUrl"),
    `
    do $$ begin
      execute format('alter database %I set default_transaction_isolation = %L', current_database(), 'repeatable read');
    end $$;
    create table items (id int8 primary key, label text not null);
    create function slow_item() returns trigger language plpgsql as $$
    begin
      if new.id % 1000 = 13 then perform pg_sleep(0.8); end if;
      return new;
    end $$;
    create trigger slow_item before insert on items for each row execute function slow_item();
  `,
  );
  ({ sql, connector } = db);
});

afterAll(async () => db?.drop());

function batch(batchId: string, ids: number[], extra: Partial<WriteBatchRequest> = {}): WriteBatchRequest {
  return {
    batchId,
    entity: { schema: "public", name: "items" },
    strategy: "insert",
    keyFields: ["id"],
    rows: rowBatch(
      ["id", "label"],
      ids.map((id) => [String(id), `item ${id}`]),
    ),
    rejectPolicy: "fail",
    ...extra,
  };
}

const write = (request: WriteBatchRequest) => connector.writeBatch(request, new AbortController().signal);

async function ids(from: number, to: number): Promise<number[]> {
  const rows = await sql<
    { id: string }[]
  >`select id from items where id between ${from} and ${to} order by id`;
  return rows.map((r) => Number(r.id));
}

describe("previousBatchId", () => {
  it("commits after a predecessor that committed", async () => {
    await write(batch("a1", [1, 2]));
    const result = await write(batch("a2", [3, 4], { previousBatchId: "a1" }));
    expect(result).toMatchObject({ alreadyCommitted: false, created: 2 });
    expect(await ids(1, 4)).toEqual([1, 2, 3, 4]);
  });

  it("fails with a retryable aborted, writing nothing, when the predecessor never committed", async () => {
    const error = await write(batch("b2", [21, 22], { previousBatchId: "b1-never-written" })).catch((e) => e);
    expect(error).toBeInstanceOf(DrayError);
    expect(error).toMatchObject({
      code: "aborted",
      retryable: true,
      details: { reason: "previous_batch_not_committed" },
    });
    expect(error.message).toContain("b1-never-written");
    expect(await ids(21, 22)).toEqual([]);
    const ledger =
      await sql`select batch_id from dray.batch_ledger where batch_id in ('b2', 'b1-never-written')`;
    expect(ledger).toHaveLength(0);
  });

  it("waits for a predecessor still in its transaction, and commits after it", async () => {
    const first = write(batch("c1", [11, 12, 13]));
    await new Promise((resolve) => setTimeout(resolve, 150));
    const second = write(batch("c2", [14, 15], { previousBatchId: "c1" }));
    const finished: string[] = [];
    await Promise.all([first.then(() => finished.push("c1")), second.then(() => finished.push("c2"))]);
    expect(finished).toEqual(["c1", "c2"]);
    const ledger = await sql<{ batch_id: string }[]>`
      select batch_id from dray.batch_ledger where batch_id in ('c1', 'c2') order by committed_at, batch_id`;
    expect(ledger.map((r) => r.batch_id)).toEqual(["c1", "c2"]);
    expect(await ids(11, 15)).toEqual([11, 12, 13, 14, 15]);
  });

  it("does not commit after a predecessor that rolled back", async () => {
    await write(batch("d0", [35]));
    // d1 sleeps on 1013, then fails on the duplicate 35 and rolls back; d2 waits for it meanwhile.
    const first = write(batch("d1", [1013, 35])).catch((e) => e);
    await new Promise((resolve) => setTimeout(resolve, 150));
    const second = await write(batch("d2", [40, 41], { previousBatchId: "d1" })).catch((e) => e);
    expect(await first).toBeInstanceOf(DrayError);
    expect(second).toMatchObject({ code: "aborted", retryable: true });
    expect(await ids(40, 41)).toEqual([]);
  });

  it("refuses rows under an id a fence sealed, writing nothing", async () => {
    const fence = await write({ ...batch("e1", []), rows: rowBatch(["id", "label"], []) });
    expect(fence).toMatchObject({ alreadyCommitted: false, created: 0 });
    const error = await write(batch("e1", [51, 52])).catch((e) => e);
    expect(error).toMatchObject({ code: "failed_precondition", details: { reason: "batch_sealed" } });
    expect(await ids(51, 52)).toEqual([]);
    // A replayed fence still answers as before.
    expect(await write({ ...batch("e1", []), rows: rowBatch(["id", "label"], []) })).toMatchObject({
      alreadyCommitted: true,
      created: 0,
    });
  });
});
