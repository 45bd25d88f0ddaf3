import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken } from "../src/auth/index.js";
import { apiTokens, rowsOf } from "../src/store/index.js";
import { type ApiHarness, createTestDatabase, errorOf, openApiHarness } from "./api-test-harness.js";

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

const idOf = async (token: string) =>
  (
    await h.store.db
      .select()
      .from(apiTokens)
      .where(eq(apiTokens.tokenHash, hashToken(token)))
  )[0]!.id;

describe("POST /api/v1/tokens", () => {
  it("issues a token once and stores only its SHA-256 hash", async () => {
    const org = await h.tenant("tok-store");
    const res = await h.call("POST", "/api/v1/tokens", {
      token: h.systemToken,
      json: { name: "ci", role: "operator", organisationId: org.id },
    });
    expect(res.status).toBe(201);
    const token: string = res.body.token;
    expect(token).toMatch(/^dray_[0-9A-Za-z]{43}$/);
    expect(res.body).toEqual({
      id: expect.any(String),
      name: "ci",
      role: "operator",
      organisationId: org.id,
      tokenPrefix: token.slice(0, 12),
      createdAt: expect.any(String),
      lastUsedAt: null,
      revokedAt: null,
      token,
    });
    const [row] = await h.store.db.select().from(apiTokens).where(eq(apiTokens.id, res.body.id));
    expect(row!.tokenHash).toBe(hashToken(token));
    const leaks = rowsOf<{ n: number }>(
      await h.store.db.execute(
        sql`select count(*)::int as n from api_tokens t where t::text like ${`%${token}%`}`,
      ),
    );
    expect(leaks[0]!.n).toBe(0);
    expect((await h.call("GET", "/api/v1/environments", { token })).status).toBe(200);
  });

  it("requires the system admin to name an existing organisation", async () => {
    const missing = await h.call("POST", "/api/v1/tokens", {
      token: h.systemToken,
      json: { name: "x", role: "admin" },
    });
    expect(missing.status).toBe(400);
    expect(errorOf(missing)).toMatchObject({
      code: "invalid_argument",
      message: expect.stringContaining("organisationId"),
    });
    for (const organisationId of ["00000000-0000-4000-8000-000000000000", "nope"]) {
      const res = await h.call("POST", "/api/v1/tokens", {
        token: h.systemToken,
        json: { name: "x", role: "admin", organisationId },
      });
      expect(res.status).toBe(404);
      expect(errorOf(res).code).toBe("not_found");
    }
  });

  it("lets an organisation admin issue tokens in its own organisation only", async () => {
    const a = await h.tenant("tok-a");
    const b = await h.tenant("tok-b");
    const own = await h.call("POST", "/api/v1/tokens", {
      token: a.admin,
      json: { name: "v", role: "viewer" },
    });
    expect(own).toMatchObject({ status: 201, body: { organisationId: a.id, role: "viewer" } });
    const explicit = await h.call("POST", "/api/v1/tokens", {
      token: a.admin,
      json: { name: "v", role: "admin", organisationId: a.id },
    });
    expect(explicit).toMatchObject({ status: 201, body: { organisationId: a.id, role: "admin" } });
    const other = await h.call("POST", "/api/v1/tokens", {
      token: a.admin,
      json: { name: "v", role: "admin", organisationId: b.id },
    });
    expect(other.status).toBe(404);
    expect(errorOf(other).code).toBe("not_found");
  });

  it("denies operators and viewers with 403 naming the admin role", async () => {
    const org = await h.tenant("tok-roles");
    for (const token of [org.operator, org.viewer]) {
      const res = await h.call("POST", "/api/v1/tokens", { token, json: { name: "x", role: "viewer" } });
      expect(res.status).toBe(403);
      expect(errorOf(res)).toMatchObject({
        code: "permission_denied",
        message: expect.stringContaining("admin role"),
      });
    }
  });

  it("rejects a system role, unknown roles and a missing name with 400", async () => {
    const org = await h.tenant("tok-bad");
    for (const json of [
      { name: "x", role: "system" },
      { name: "x", role: "root" },
      { role: "viewer" },
      { name: "x" },
    ]) {
      const res = await h.call("POST", "/api/v1/tokens", { token: org.admin, json });
      expect(res.status, JSON.stringify(json)).toBe(400);
      expect(errorOf(res).code).toBe("invalid_argument");
    }
  });
});

describe("GET /api/v1/tokens", () => {
  it("lists the admin's organisation's tokens without hashes or secrets", async () => {
    const a = await h.tenant("list-a");
    await h.tenant("list-b");
    const res = await h.call("GET", "/api/v1/tokens", { token: a.admin });
    expect(res.status).toBe(200);
    expect(res.body.tokens.map((t: { name: string }) => t.name).sort()).toEqual([
      "list-a admin",
      "list-a operator",
      "list-a viewer",
    ]);
    for (const t of res.body.tokens) {
      expect(Object.keys(t).sort()).toEqual(
        [
          "createdAt",
          "id",
          "lastUsedAt",
          "name",
          "organisationId",
          "revokedAt",
          "role",
          "tokenPrefix",
        ].sort(),
      );
      expect(t.organisationId).toBe(a.id);
    }
    expect(JSON.stringify(res.body)).not.toContain(a.admin);
    expect((await h.call("GET", "/api/v1/tokens", { token: a.operator })).status).toBe(403);
  });

  it("lets the system admin list every token or one organisation's", async () => {
    const a = await h.tenant("list-sys");
    const all = await h.call("GET", "/api/v1/tokens", { token: h.systemToken });
    expect(all.body.tokens.some((t: { role: string }) => t.role === "system")).toBe(true);
    const one = await h.call("GET", `/api/v1/tokens?organisationId=${a.id}`, { token: h.systemToken });
    expect(one.body.tokens).toHaveLength(3);
  });
});

describe("DELETE /api/v1/tokens/:id", () => {
  it("revokes a token of the admin's organisation; revoked tokens get 401", async () => {
    const org = await h.tenant("del");
    const id = await idOf(org.operator);
    expect((await h.call("DELETE", `/api/v1/tokens/${id}`, { token: org.admin })).status).toBe(204);
    const [row] = await h.store.db.select().from(apiTokens).where(eq(apiTokens.id, id));
    expect(row!.revokedAt).toBeInstanceOf(Date);
    expect((await h.call("GET", "/api/v1/environments", { token: org.operator })).status).toBe(401);
    expect((await h.call("DELETE", `/api/v1/tokens/${id}`, { token: org.admin })).status).toBe(204);
  });

  it("answers 404 for another organisation's token and 403 for non-admins", async () => {
    const a = await h.tenant("del-a");
    const b = await h.tenant("del-b");
    const bViewer = await idOf(b.viewer);
    const res = await h.call("DELETE", `/api/v1/tokens/${bViewer}`, { token: a.admin });
    expect(res.status).toBe(404);
    expect(errorOf(res).code).toBe("not_found");
    expect((await h.call("GET", "/api/v1/environments", { token: b.viewer })).status).toBe(200);
    expect((await h.call("DELETE", `/api/v1/tokens/${bViewer}`, { token: b.operator })).status).toBe(403);
    expect((await h.call("DELETE", "/api/v1/tokens/not-a-uuid", { token: a.admin })).status).toBe(404);
  });
});
