/**
 * Cursor pagination of the lists: every page follows the previous one with
 * neither repeats nor gaps, in every sort, with ties on the sort key (rows
 * created in the same microsecond), and `next` is null on the last page.
 */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { environments, newId, pipelines } from "../src/store/index.js";
import { type ApiHarness, createTestDatabase, errorOf, openApiHarness } from "./api-test-harness.js";

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let h: ApiHarness;
let org: Awaited<ReturnType<ApiHarness["tenant"]>>;
let other: Awaited<ReturnType<ApiHarness["tenant"]>>;

const ENVIRONMENTS = 130;
const PIPELINES = 120;
const HEALTH = ["healthy", "unhealthy", "unknown"] as const;

beforeAll(async () => {
  database = await createTestDatabase();
  h = await openApiHarness(database.url);
  org = await h.tenant("pages");
  other = await h.tenant("pages-other");
  const db = h.store.db;
  // names differing only by case, shared created_at / last heartbeat instants with microseconds
  const rows = Array.from({ length: ENVIRONMENTS }, (_, i) => ({
    id: newId(),
    organisationId: org.id,
    name: `${i % 2 === 0 ? "env" : "ENV"}-${String(Math.floor(i / 2)).padStart(3, "0")}`,
    platform: "postgres" as const,
    health: HEALTH[i % 3]!,
  }));
  await db.insert(environments).values(rows);
  await db.execute(sql`
    update ${environments}
       set created_at = timestamptz '2026-05-01 00:00:00.123456+00' + (random_ord % 7) * interval '1 microsecond',
           last_heartbeat_at = case when random_ord % 4 = 0 then null
                                    else timestamptz '2026-05-02 00:00:00.654321+00' + (random_ord % 5) * interval '1 microsecond' end
      from (select id as eid, (abs(hashtext(id::text)) % 1000) as random_ord from ${environments}) r
     where ${environments.id} = r.eid`);
  await db
    .insert(environments)
    .values({ id: newId(), organisationId: other.id, name: "env-000", platform: "postgres" });
  const [source, target] = [rows[0]!.id, rows[1]!.id];
  await db.insert(pipelines).values(
    Array.from({ length: PIPELINES }, (_, i) => ({
      id: newId(),
      organisationId: org.id,
      name: `${["Copy", "copy", "COPY"][i % 3]}-${String(Math.floor(i / 3)).padStart(3, "0")}`,
      sourceEnvironmentId: source,
      targetEnvironmentId: target,
      action: "copy" as const,
      writeStrategy: "merge" as const,
      entities: ["public.customers"],
      batchSize: 1000,
      batchBytes: 4_000_000,
      maxRetriesPerBatch: 4,
      stopOnError: true,
      entityConcurrency: 2,
    })),
  );
});
afterAll(async () => {
  await h?.close();
  await database?.drop();
});

/** The list name and position inside a cursor the API gave. */
function forgedParts(cursor: string): [string, (string | null)[]] {
  return JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
}

async function get(path: string, token = org.viewer) {
  const res = await h.call("GET", path, { token });
  return res;
}

/** Follows `next` from the first page; returns the ids page by page. */
async function allPages(path: string, key: string): Promise<{ pages: string[][]; names: string[] }> {
  const pages: string[][] = [];
  const names: string[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < 200; i++) {
    const sep = path.includes("?") ? "&" : "?";
    const res = await get(cursor === null ? path : `${path}${sep}cursor=${encodeURIComponent(cursor)}`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const items = res.body[key] as { id: string; name: string }[];
    pages.push(items.map((e) => e.id));
    names.push(...items.map((e) => e.name));
    expect(Object.keys(res.body)).toContain("next");
    cursor = res.body.next;
    if (cursor === null) break;
  }
  expect(cursor).toBeNull();
  return { pages, names };
}

describe("GET /api/v1/environments pages", () => {
  for (const sort of ["name", "health", "lastHeartbeat", "createdAt"]) {
    it(`pages through ${ENVIRONMENTS} environments sorted by ${sort} with no repeat and no gap`, async () => {
      const whole = await get(`/api/v1/environments?sort=${sort}&limit=200`);
      expect(whole.body.next).toBeNull();
      const order = whole.body.environments.map((e: { id: string }) => e.id);
      expect(order).toHaveLength(ENVIRONMENTS);
      for (const limit of [7, 50]) {
        const { pages } = await allPages(`/api/v1/environments?sort=${sort}&limit=${limit}`, "environments");
        expect(pages.flat()).toEqual(order);
        expect(pages.slice(0, -1).every((p) => p.length === limit)).toBe(true);
        expect(pages).toHaveLength(Math.ceil(ENVIRONMENTS / limit));
      }
    });
  }

  it("gives 50 per page by default and keeps the search across pages", async () => {
    const first = await get("/api/v1/environments");
    expect(first.body.environments).toHaveLength(50);
    expect(typeof first.body.next).toBe("string");
    const { names } = await allPages("/api/v1/environments?search=ENV-01&limit=3", "environments");
    expect(names).toEqual(Array.from({ length: 10 }, (_, i) => [`ENV-01${i}`, `env-01${i}`]).flat());
  });

  it("refuses a bad limit or cursor with 400 naming the parameter", async () => {
    for (const limit of ["0", "201", "-1", "1.5", "ten", ""]) {
      const res = await get(`/api/v1/environments?limit=${limit}`);
      expect(res.status, limit).toBe(400);
      expect(JSON.stringify(errorOf(res).details)).toContain('"limit"');
    }
    const nameCursor = (await get("/api/v1/environments?limit=2")).body.next as string;
    const forged = Buffer.from(JSON.stringify(["environments:name", ["a"]])).toString("base64url");
    const badCursors = [
      "!!!",
      "x".repeat(2_000),
      Buffer.from("not json").toString("base64url"),
      Buffer.from(JSON.stringify({ a: 1 })).toString("base64url"),
      forged,
      `${nameCursor}\u0000`,
    ];
    for (const cursor of badCursors) {
      const res = await get(`/api/v1/environments?cursor=${encodeURIComponent(cursor)}`);
      expect(res.status, cursor.slice(0, 20)).toBe(400);
      expect(JSON.stringify(errorOf(res).details ?? errorOf(res).message)).toContain("cursor");
    }
    // a cursor of one sort is refused by another
    const res = await get(`/api/v1/environments?sort=health&cursor=${nameCursor}`);
    expect(res.status).toBe(400);
    expect(errorOf(res).message).toContain("another list or sort order");
  });

  it("answers 400, never 500, to a well-formed cursor whose values do not fit their keys", async () => {
    const lists = [
      ...["name", "health", "lastHeartbeat", "createdAt"].map(
        (sort) => `/api/v1/environments?sort=${sort}&limit=2`,
      ),
      "/api/v1/pipelines?limit=2",
    ];
    for (const path of lists) {
      const first = await get(path);
      expect(first.status, path).toBe(200);
      const [list, values] = forgedParts(first.body.next as string);
      for (let i = 0; i < values.length; i++) {
        for (const junk of ["zzz", "1e5", "12-34", "", "a\u0000b", null]) {
          const forged = [...values];
          forged[i] = junk;
          const cursor = Buffer.from(JSON.stringify([list, forged])).toString("base64url");
          const url = new URL(path, "http://dray.test");
          url.searchParams.set("cursor", cursor);
          const res = await get(`${url.pathname}${url.search}`);
          // A junk value that happens to fit its key (a text key takes any text) is a valid position.
          expect([200, 400], `${path} value ${i} = ${JSON.stringify(junk)}`).toContain(res.status);
          if (res.status === 400) expect(JSON.stringify(errorOf(res).details)).toContain("cursor");
        }
      }
    }
  });

  it("shows a tenant only its own environments, page after page", async () => {
    const { pages } = await allPages("/api/v1/environments?limit=1", "environments");
    expect(pages).toHaveLength(ENVIRONMENTS);
    const theirs = await get("/api/v1/environments", other.viewer);
    expect(theirs.body).toMatchObject({ environments: [{ name: "env-000" }], next: null });
    // a cursor taken from another tenant's list still shows only the caller's rows
    const cursor = (await get("/api/v1/environments?limit=1")).body.next;
    const foreign = await get(`/api/v1/environments?cursor=${cursor}`, other.viewer);
    expect(foreign.status).toBe(200);
    const mine = new Set(pages.flat());
    expect(foreign.body.environments.filter((e: { id: string }) => mine.has(e.id))).toEqual([]);
  });
});

describe("GET /api/v1/pipelines pages", () => {
  it(`pages through ${PIPELINES} pipelines by name with no repeat and no gap`, async () => {
    const whole = await get("/api/v1/pipelines?limit=200");
    expect(whole.status, JSON.stringify(whole.body)).toBe(200);
    expect(whole.body.next).toBeNull();
    const order = whole.body.pipelines.map((p: { id: string }) => p.id);
    expect(order).toHaveLength(PIPELINES);
    for (const limit of [11, 50]) {
      const { pages } = await allPages(`/api/v1/pipelines?limit=${limit}`, "pipelines");
      expect(pages.flat()).toEqual(order);
      expect(pages).toHaveLength(Math.ceil(PIPELINES / limit));
    }
    const first = await get("/api/v1/pipelines");
    expect(first.body.pipelines).toHaveLength(50);
    const { names } = await allPages("/api/v1/pipelines?search=-00&limit=4", "pipelines");
    expect(names.slice(0, 6)).toEqual([
      "COPY-000",
      "Copy-000",
      "copy-000",
      "COPY-001",
      "Copy-001",
      "copy-001",
    ]);
    expect((await get("/api/v1/pipelines?cursor=abc")).status).toBe(400);
    expect((await get("/api/v1/pipelines?limit=500")).status).toBe(400);
  });
});
