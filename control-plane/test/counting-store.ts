/**
 * For tests that count what a writer sends to the store: a store on a
 * database of its own, and a second client on the same database (one
 * connection, plain drizzle) that records every statement it sends, lower-cased
 * and timed. Register it at the top of a test file; it opens in `beforeAll` and
 * closes in `afterAll`.
 */
import { silentLogger } from "@dray/common";
import { sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { afterAll, beforeAll } from "vitest";
import { type Db, openStore, type Store } from "../src/store/index.js";
import { schema } from "../src/store/schema.js";
import { createTestDatabase } from "./api-test-harness.js";

/** One statement the counting client sent: its text (trimmed, lower-cased) and when (performance.now()). */
export interface SentStatement {
  query: string;
  at: number;
}

/** The store and the counting client; read them inside tests and hooks only. */
export interface CountingStore {
  readonly store: Store;
  /** The counting client, to hand to the writer under test. */
  readonly db: Db;
  /** What the counting client sent since the test last emptied it. */
  readonly statements: SentStatement[];
}

/** Opens a store and a counting client for this test file (see the module comment). */
export function useCountingStore(): CountingStore {
  let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
  let store: Store | undefined;
  let client: postgres.Sql | undefined;
  let db: Db | undefined;
  const statements: SentStatement[] = [];
  beforeAll(async () => {
    database = await createTestDatabase();
    store = await openStore({ databaseUrl: database.url, dataDir: "memory://", logger: silentLogger });
    client = postgres(database.url, {
      max: 1,
      onnotice: () => {},
      debug: (_connection, query) =>
        void statements.push({ query: query.trim().toLowerCase(), at: performance.now() }),
    });
    db = drizzle(client, { schema }) as unknown as Db;
    // Connected (postgres.js reads the server's types first), so only the writer's statements are counted.
    await db.execute(sql`select 1`);
    statements.length = 0;
  });
  afterAll(async () => {
    await client?.end({ timeout: 5 });
    await store?.close();
    await database?.drop();
  });
  const open = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error("the counting store is open only inside tests and hooks");
    return value;
  };
  return {
    get store() {
      return open(store);
    },
    get db() {
      return open(db);
    },
    statements,
  };
}
