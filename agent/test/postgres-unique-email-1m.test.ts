/**
 * A million-row unique email column read through the connector with the
 * `email` transformer, page by page as a run reads it, and loaded into a
 * table with the same UNIQUE constraint: zero violations, every row there,
 * every value changed. Own database.
 */
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { Connector } from "../src/connector.js";
import { createPostgresConnector } from "../src/connectors/postgres/index.js";
import { compileTransformer } from "../src/transform/index.js";
import { transformKeyId } from "../src/transform/transform-key.js";
import { createOwnDatabase, type OwnDatabase } from "./support/own-database.js";

const ROWS = 1_000_000;

const SETUP = `
create schema app;
create table app.users (id bigint primary key, email text not null unique);
insert into app.users select g, 'user' || g || '@corp.example' from generate_series(1, ${ROWS}) g;
create unlogged table app.users_out (email text not null unique);
`;

let db: OwnDatabase;
let connector: Connector;
const key = new Uint8Array(32).fill(9);

beforeAll(async () => {
  db = await createOwnDatabase(inject("databaseUrl"), SETUP);
  const [row] = await db.sql<{ name: string }[]>`select current_database() as name`;
  const u = new URL(inject("databaseUrl"));
  u.pathname = `/${row!.name}`;
  connector = createPostgresConnector({
    url: u.toString(),
    maxConnections: 2,
    transformKey: { key, id: transformKeyId(key) },
    compileTransform: compileTransformer,
  });
}, 120_000);

afterAll(async () => {
  await connector?.close();
  await db?.drop();
});

describe("the email transformer on a million-row unique column", () => {
  it("gives a million distinct emails that load under the UNIQUE constraint", async () => {
    let after: string[] | null = null;
    let read = 0;
    for (;;) {
      const page = await connector.readBatch(
        {
          entity: { schema: "app", name: "users" },
          fields: ["email"],
          keyFields: ["id"],
          after,
          maxRows: 100_000,
          maxBytes: 64 << 20,
          transforms: [{ field: "email", transformer: "email", options: {} }],
        },
        new AbortController().signal,
      );
      read += page.rows.rowCount;
      // COPY FROM STDIN of the page as it leaves the agent: a duplicate email fails the COPY.
      await pipeline(
        Readable.from([Buffer.from(page.rows.data)]),
        await db.sql`copy app.users_out (email) from stdin`.writable(),
      );
      if (page.done || !page.last) break;
      after = page.last;
    }
    expect(read).toBe(ROWS);
    const [counts] = await db.sql<{ n: string; same: string }[]>`
      select (select count(*) from app.users_out) as n,
             (select count(*) from app.users_out o where exists (select 1 from app.users u where u.email = o.email)) as same`;
    expect(counts).toEqual({ n: String(ROWS), same: "0" });
  }, 300_000);
});
