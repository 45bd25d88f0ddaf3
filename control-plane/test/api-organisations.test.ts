import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { organisations } from "../src/store/index.js";
import {
  type ApiHarness,
  createTestDatabase,
  errorOf,
  openApiHarness,
  TEST_CONFIG,
} from "./api-test-harness.js";

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let h: ApiHarness;
beforeAll(async () => {
  database = await createTestDatabase();
  h = await openApiHarness(database.url);
});
afterAll(async () => {
  await h?.close();
  await database?.drop();
});

describe("POST /api/v1/organisations", () => {
  it("creates an organisation with the default monthly record limit", async () => {
    const res = await h.call("POST", "/api/v1/organisations", {
      token: h.systemToken,
      json: { name: "  Acme  " },
    });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      name: "Acme",
      monthlyRecordLimit: TEST_CONFIG.defaultMonthlyRecordLimit,
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
    });
    const [row] = await h.store.db.select().from(organisations).where(eq(organisations.id, res.body.id));
    expect(row).toMatchObject({ name: "Acme", monthlyRecordLimit: TEST_CONFIG.defaultMonthlyRecordLimit });
  });

  it("takes an explicit limit, including large ones", async () => {
    const res = await h.call("POST", "/api/v1/organisations", {
      token: h.systemToken,
      json: { name: "Big", monthlyRecordLimit: 5_000_000_000 },
    });
    expect(res).toMatchObject({ status: 201, body: { monthlyRecordLimit: 5_000_000_000 } });
  });

  it("is for the system admin only", async () => {
    const org = await h.tenant("orgs-admin");
    const res = await h.call("POST", "/api/v1/organisations", { token: org.admin, json: { name: "Nope" } });
    expect(res.status).toBe(403);
    expect(errorOf(res)).toMatchObject({
      code: "permission_denied",
      message: expect.stringContaining("system role"),
    });
  });

  it("rejects invalid bodies with 400 invalid_argument naming the fields", async () => {
    const cases: [unknown, string][] = [
      [{}, "name"],
      [{ name: "" }, "name"],
      [{ name: 42 }, "name"],
      [{ name: "x", monthlyRecordLimit: -1 }, "monthlyRecordLimit"],
      [{ name: "x", monthlyRecordLimit: 1.5 }, "monthlyRecordLimit"],
      [{ name: "x", limit: 3 }, "limit"],
    ];
    for (const [json, field] of cases) {
      const res = await h.call("POST", "/api/v1/organisations", { token: h.systemToken, json });
      expect(res.status, JSON.stringify(json)).toBe(400);
      const error = errorOf(res);
      expect(error.code).toBe("invalid_argument");
      expect(error.message).toContain(`invalid request body: ${field}`);
      expect((error.details as { issues: { path: string }[] }).issues[0]!.path).toBe(
        field === "(root)" ? "" : field,
      );
    }
  });
});

describe("GET/PATCH /api/v1/organisations/:id", () => {
  it("shows an organisation to the system admin and to its own tokens only", async () => {
    const a = await h.tenant("orgs-a");
    const b = await h.tenant("orgs-b");
    expect(await h.call("GET", `/api/v1/organisations/${a.id}`, { token: h.systemToken })).toMatchObject({
      status: 200,
      body: { id: a.id, name: "orgs-a" },
    });
    expect((await h.call("GET", `/api/v1/organisations/${a.id}`, { token: a.viewer })).status).toBe(200);
    const other = await h.call("GET", `/api/v1/organisations/${a.id}`, { token: b.admin });
    expect(other.status).toBe(404);
    expect(errorOf(other)).toEqual({ code: "not_found", message: `organisation ${a.id} was not found` });
  });

  it("answers 404 for unknown and non-UUID ids", async () => {
    for (const id of ["00000000-0000-4000-8000-000000000000", "not-a-uuid", "1"]) {
      const res = await h.call("GET", `/api/v1/organisations/${id}`, { token: h.systemToken });
      expect(res.status).toBe(404);
      expect(errorOf(res).code).toBe("not_found");
    }
  });

  it("lets the system admin rename and change the limit", async () => {
    const a = await h.tenant("orgs-patch");
    const res = await h.call("PATCH", `/api/v1/organisations/${a.id}`, {
      token: h.systemToken,
      json: { name: "renamed", monthlyRecordLimit: 10 },
    });
    expect(res).toMatchObject({ status: 200, body: { id: a.id, name: "renamed", monthlyRecordLimit: 10 } });
    const [row] = await h.store.db.select().from(organisations).where(eq(organisations.id, a.id));
    expect(row).toMatchObject({ name: "renamed", monthlyRecordLimit: 10 });

    const byAdmin = await h.call("PATCH", `/api/v1/organisations/${a.id}`, {
      token: a.admin,
      json: { monthlyRecordLimit: 1e9 },
    });
    expect(byAdmin.status).toBe(403);
    expect(errorOf(byAdmin).code).toBe("permission_denied");
    const missing = await h.call("PATCH", "/api/v1/organisations/00000000-0000-4000-8000-000000000000", {
      token: h.systemToken,
      json: { name: "x" },
    });
    expect(missing.status).toBe(404);
    const bad = await h.call("PATCH", `/api/v1/organisations/${a.id}`, {
      token: h.systemToken,
      json: { name: 7 },
    });
    expect(bad.status).toBe(400);
  });
});
