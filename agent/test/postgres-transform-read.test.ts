/**
 * Reads with transformations (action "transform") through the Postgres
 * connector: the page leaves the agent transformed, a cursor over a
 * transformed key travels sealed and comes back usable, and the failure paths
 * — no transform key, a value a transformer cannot take, a cursor sealed under
 * another key — are clear errors that never quote a value. Own database.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { Connector, ReadBatchRequest } from "../src/connector.js";
import { createPostgresConnector } from "../src/connectors/postgres/index.js";
import { compileTransformer } from "../src/transform/index.js";
import { transformKeyId } from "../src/transform/transform-key.js";
import { parseCopy } from "./connector-contract.js";
import { createOwnDatabase, type OwnDatabase } from "./support/own-database.js";

const SETUP = `
create schema app;
create table app.people (email text primary key, name text, notes jsonb);
insert into app.people
  select 'person' || g || '@example.com', 'Name ' || g, jsonb_build_object('email', 'person' || g || '@example.com')
  from generate_series(1, 25) g;
create table app.bad_json (id int primary key, doc text);
insert into app.bad_json values (1, 'secret-canary-12'), (2, '4111111111111111');
`;

let db: OwnDatabase;
let url: string;
let withKey: Connector;
let otherKey: Connector;
let noKey: Connector;
const key = new Uint8Array(32).fill(3);
const signal = () => new AbortController().signal;

beforeAll(async () => {
  db = await createOwnDatabase(inject("databaseUrl"), SETUP);
  const [row] = await db.sql<{ name: string }[]>`select current_database() as name`;
  const u = new URL(inject("databaseUrl"));
  u.pathname = `/${row!.name}`;
  url = u.toString();
  const connector = (k: Uint8Array) =>
    createPostgresConnector({
      url,
      maxConnections: 2,
      transformKey: { key: k, id: transformKeyId(k) },
      compileTransform: compileTransformer,
    });
  withKey = connector(key);
  otherKey = connector(new Uint8Array(32).fill(4));
  noKey = createPostgresConnector({ url, maxConnections: 2 });
});

afterAll(async () => {
  await Promise.all([withKey?.close(), otherKey?.close(), noKey?.close()]);
  await db?.drop();
});

const read = (extra: Partial<ReadBatchRequest> = {}): ReadBatchRequest => ({
  entity: { schema: "app", name: "people" },
  fields: ["email", "name"],
  keyFields: ["email"],
  maxRows: 10,
  maxBytes: 1 << 20,
  transforms: [{ field: "email", transformer: "email", options: {} }],
  ...extra,
});

describe("a read with transformations", () => {
  it("transforms the page, seals the cursor over the transformed key, and continues from it", async () => {
    const seen: string[] = [];
    let after: string[] | null = null;
    let pages = 0;
    for (;;) {
      const page = await withKey.readBatch(read({ after }), signal());
      pages++;
      expect(page.transformKeyId).toBe(transformKeyId(key));
      const rows = parseCopy(page.rows.data);
      for (const [email, name] of rows) {
        expect(email).not.toMatch(/^person\d+@example\.com$/);
        expect(email).toContain("@");
        expect(name).toMatch(/^Name \d+$/);
        seen.push(email!);
      }
      if (page.last) {
        expect(page.last).toHaveLength(1);
        expect(page.last[0]).toMatch(/^sealed:/);
        expect(page.last.join("")).not.toContain("person");
      }
      if (page.done) break;
      after = page.last;
    }
    expect(pages).toBeGreaterThan(2);
    expect(new Set(seen).size).toBe(25);
  });

  it("gives the same output for the same value and key, another with another key", async () => {
    const a = parseCopy((await withKey.readBatch(read(), signal())).rows.data);
    const b = parseCopy((await withKey.readBatch(read(), signal())).rows.data);
    const c = parseCopy((await otherKey.readBatch(read(), signal())).rows.data);
    expect(a).toEqual(b);
    expect(c.map((r) => r[0])).not.toEqual(a.map((r) => r[0]));
  });

  it("transforms inside JSON with json_path", async () => {
    const page = await withKey.readBatch(
      read({
        fields: ["email", "notes"],
        transforms: [
          {
            field: "notes",
            transformer: "json_path",
            options: { path: "$.email", transformer: { name: "email" } },
          },
        ],
      }),
      signal(),
    );
    for (const [email, notes] of parseCopy(page.rows.data)) {
      expect(notes).not.toContain(email!);
      expect(JSON.parse(notes!).email).toContain("@");
    }
  });
});

describe("failure paths", () => {
  it("an agent without a transform key refuses, saying how to give it one", async () => {
    await expect(noKey.readBatch(read(), signal())).rejects.toMatchObject({
      code: "failed_precondition",
      message: expect.stringContaining("DRAY_AGENT_TRANSFORM_KEY"),
    });
  });

  it("a cursor sealed under another key is refused", async () => {
    const page = await withKey.readBatch(read(), signal());
    await expect(otherKey.readBatch(read({ after: page.last }), signal())).rejects.toMatchObject({
      code: "invalid_argument",
      message: expect.stringContaining("another transform key"),
    });
  });

  it("a value the transformer cannot take fails the page, naming field and line, never the value", async () => {
    const error = await withKey
      .readBatch(
        {
          entity: { schema: "app", name: "bad_json" },
          fields: ["id", "doc"],
          keyFields: ["id"],
          maxRows: 10,
          maxBytes: 1 << 20,
          // FF1 needs at least 6 digits: the first value has 2.
          transforms: [{ field: "doc", transformer: "ff1", options: {} }],
        },
        signal(),
      )
      .then(
        () => undefined,
        (e: Error & { code?: string }) => e,
      );
    expect(error?.code).toBe("invalid_argument");
    expect(error?.message).toContain('field "doc" with ff1 failed on line 1');
    expect(error?.message).not.toContain("secret-canary");
  });

  it("an unknown transformer is refused with the known ones named", async () => {
    await expect(
      withKey.readBatch(
        read({ transforms: [{ field: "name", transformer: "nope", options: {} }] }),
        signal(),
      ),
    ).rejects.toMatchObject({ code: "invalid_argument" });
  });
});
