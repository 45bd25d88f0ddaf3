import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { environments } from "../src/store/index.js";
import { type ApiHarness, createTestDatabase, errorOf, openApiHarness } from "./api-test-harness.js";

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let h: ApiHarness;
let org: Awaited<ReturnType<ApiHarness["tenant"]>>;

/** name, application, url, health, last heartbeat (minutes ago), created (minutes after t0) */
const FIXTURES: [
  string,
  string | null,
  string | null,
  "healthy" | "unhealthy" | "unknown",
  number | null,
  number,
][] = [
  ["beta", "Billing", "https://beta.example.com", "unhealthy", 5, 1],
  ["Alpha", "CRM", null, "healthy", 30, 2],
  ["gamma", null, "db-gamma.internal:5432", "unknown", null, 3],
  ["100%_done", "Reports", null, "healthy", 1, 4],
  ["1000done", "crm-legacy", null, "unhealthy", null, 5],
];

beforeAll(async () => {
  database = await createTestDatabase();
  h = await openApiHarness(database.url);
  org = await h.tenant("list");
  const other = await h.tenant("list-other");
  const t0 = Date.parse("2026-05-01T00:00:00.000Z");
  for (const [name, application, url, health, heartbeatAgo, createdAfter] of FIXTURES) {
    h.clock.now = new Date(t0 + createdAfter * 60_000);
    const res = await h.call("POST", "/api/v1/environments", {
      token: org.operator,
      json: { name, application, url },
    });
    expect(res.status).toBe(201);
    await h.store.db
      .update(environments)
      .set({
        health,
        lastHeartbeatAt: heartbeatAgo === null ? null : new Date(Date.now() - heartbeatAgo * 60_000),
      })
      .where(eq(environments.id, res.body.environment.id));
  }
  h.clock.now = undefined;
  // Another tenant's environment matching every search: it must never show up.
  await h.call("POST", "/api/v1/environments", {
    token: other.operator,
    json: { name: "Alpha crm beta gamma 100%_done", application: "CRM" },
  });
});
afterAll(async () => {
  await h?.close();
  await database?.drop();
});

const names = async (query: string) => {
  const res = await h.call("GET", `/api/v1/environments${query}`, { token: org.viewer });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.environments.map((e: { name: string }) => e.name);
};

describe("GET /api/v1/environments sorting", () => {
  it("sorts by name A–Z, case-insensitively, by code point (same on every locale), by default", async () => {
    const expected = ["100%_done", "1000done", "Alpha", "beta", "gamma"];
    expect(await names("")).toEqual(expected);
    expect(await names("?sort=name")).toEqual(expected);
  });

  it("sorts by health: healthy, unhealthy, unknown, then name", async () => {
    expect(await names("?sort=health")).toEqual(["100%_done", "Alpha", "1000done", "beta", "gamma"]);
  });

  it("sorts by last heartbeat, most recent first, never-seen last", async () => {
    expect(await names("?sort=lastHeartbeat")).toEqual(["100%_done", "beta", "Alpha", "1000done", "gamma"]);
  });

  it("sorts by creation, newest first", async () => {
    expect(await names("?sort=createdAt")).toEqual(["1000done", "100%_done", "gamma", "Alpha", "beta"]);
  });

  it("answers 400 naming the parameter for an unknown sort", async () => {
    const res = await h.call("GET", "/api/v1/environments?sort=size", { token: org.viewer });
    expect(res.status).toBe(400);
    const error = errorOf(res);
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toMatch(/^invalid query parameters: sort: /);
    expect(error.details).toEqual({ issues: [expect.objectContaining({ path: "sort" })] });
  });
});

describe("GET /api/v1/environments search", () => {
  it("matches name, application and url case-insensitively", async () => {
    expect(await names("?search=ALP")).toEqual(["Alpha"]);
    expect(await names("?search=crm")).toEqual(["1000done", "Alpha"]);
    expect(await names("?search=example.COM")).toEqual(["beta"]);
    expect(await names("?search=internal:5432")).toEqual(["gamma"]);
    expect(await names("?search=nothing-matches")).toEqual([]);
  });

  it("treats % and _ literally", async () => {
    expect(await names(`?search=${encodeURIComponent("0%_")}`)).toEqual(["100%_done"]);
    expect(await names(`?search=${encodeURIComponent("%")}`)).toEqual(["100%_done"]);
    expect(await names(`?search=${encodeURIComponent("_")}`)).toEqual(["100%_done"]);
    expect(await names(`?search=${encodeURIComponent("\\")}`)).toEqual([]);
    expect(await names(`?search=${encodeURIComponent("'; select 1; --")}`)).toEqual([]);
  });

  it("combines search and sort; an empty search lists everything", async () => {
    expect(await names("?search=done&sort=createdAt")).toEqual(["1000done", "100%_done"]);
    expect(await names("?search=")).toHaveLength(FIXTURES.length);
  });

  it("needs an organisation token", async () => {
    const res = await h.call("GET", "/api/v1/environments", { token: h.systemToken });
    expect(res.status).toBe(403);
    expect(errorOf(res).message).toContain("use a token of that organisation");
  });
});
