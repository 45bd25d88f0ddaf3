/**
 * The store prepares the control plane's statements (preparing-client.ts):
 * drizzle-orm would send them unprepared, and postgres.js then describes each
 * one with parameters before running it, a second round trip to the store for
 * every query. Prepared, a statement is described once per connection. Checked
 * in pg_prepared_statements on a one-connection pool, outside and inside
 * transactions and savepoints. Real Postgres, in a database of this file's own.
 */
import { silentLogger } from "@dray/common";
import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Db, openStore, organisations, rowsOf, type Store } from "../src/store/index.js";
import { createTestDatabase } from "./api-test-harness.js";

let store: Store;
let drop: () => Promise<void>;
let db: Db;

beforeAll(async () => {
  const database = await createTestDatabase();
  drop = database.drop;
  // One connection: every statement below runs on it, so its prepared statements are all visible.
  store = await openStore({
    databaseUrl: database.url,
    dataDir: "memory://",
    logger: silentLogger,
    poolSize: 1,
  });
  db = store.db;
});

afterAll(async () => {
  await store?.close();
  await drop?.();
});

/** The statements prepared on the pool's connection, as the server keeps them. */
async function preparedOn(on: Db = db): Promise<string[]> {
  const rows = rowsOf<{ statement: string }>(
    await on.execute(sql`select statement from pg_catalog.pg_prepared_statements`),
  );
  return rows.map((r) => r.statement);
}

const byName = (name: string) =>
  db.select({ id: organisations.id }).from(organisations).where(eq(organisations.name, name));

describe("the store's statements", () => {
  it("are prepared on the connection, and prepared once however often they run", async () => {
    await byName("first");
    await byName("second");
    const statements = (await preparedOn()).filter((s) => s.includes('from "organisations"'));
    expect(statements).toHaveLength(1);
    expect(statements[0]).toMatch(/where "organisations"\."name" = \$1/);
  });

  it("are prepared inside transactions and savepoints too", async () => {
    const marker = "select $1::text as inside_transaction";
    const nested = "select $1::text as inside_savepoint";
    const seen = await db.transaction(async (tx) => {
      await tx.execute(sql`select ${"a"}::text as inside_transaction`);
      await tx.transaction(async (inner) => {
        await inner.execute(sql`select ${"b"}::text as inside_savepoint`);
      });
      return preparedOn(tx);
    });
    expect(seen).toContain(marker);
    expect(seen).toContain(nested);
  });

  it("still run when the table behind a prepared statement changes", async () => {
    await byName("before");
    await db.execute(sql`alter table organisations add column scratch_note text`);
    try {
      expect(await byName("after")).toEqual([]);
    } finally {
      await db.execute(sql`alter table organisations drop column scratch_note`);
    }
    expect(await byName("dropped again")).toEqual([]);
  });
});
