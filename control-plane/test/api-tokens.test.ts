import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { silentLogger } from "@dray/common";
import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BOOTSTRAP_TOKEN_NAME, ensureSystemAdminToken, hashToken } from "../src/auth/index.js";
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
      tokenPrefix: token.slice(0, 9),
      createdAt: expect.any(String),
      lastUsedAt: null,
      revokedAt: null,
      expiresAt: null,
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
          "expiresAt",
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

describe("token secrets (issue 9)", () => {
  it("stores and shows only dray_ and 4 characters of a generated token", async () => {
    const org = await h.tenant("secret-prefix");
    const res = await h.call("GET", "/api/v1/tokens", { token: org.admin });
    for (const t of res.body.tokens) expect(t.tokenPrefix).toMatch(/^dray_[0-9A-Za-z]{4}$/);
    const [row] = await h.store.db
      .select()
      .from(apiTokens)
      .where(eq(apiTokens.tokenHash, hashToken(org.admin)));
    expect(row!.tokenPrefix).toBe(org.admin.slice(0, 9));
  });

  it("stores none of a chosen DRAY_ADMIN_TOKEN, and the migration truncates old 12-character prefixes", async () => {
    const chosen = "my-chosen-admin-token-0123456789";
    await ensureSystemAdminToken(h.store.db, chosen, silentLogger);
    const listed = await h.call("GET", "/api/v1/tokens?limit=200", { token: chosen });
    const bootstrap = listed.body.tokens.find(
      (t: { name: string; revokedAt: string | null }) =>
        t.name === BOOTSTRAP_TOKEN_NAME && t.revokedAt === null,
    );
    expect(bootstrap.tokenPrefix).toBe("(chosen)");
    expect(JSON.stringify(listed.body)).not.toContain(chosen.slice(0, 4));

    // A store written before the migration kept 12 characters: the migration's UPDATE cuts them.
    const org = await h.tenant("secret-migrate");
    await h.store.db
      .update(apiTokens)
      .set({ tokenPrefix: org.viewer.slice(0, 12) })
      .where(eq(apiTokens.tokenHash, hashToken(org.viewer)));
    await h.store.db
      .update(apiTokens)
      .set({ tokenPrefix: chosen.slice(0, 12) })
      .where(eq(apiTokens.tokenHash, hashToken(chosen)));
    const migration = readFileSync(new URL("../drizzle/0002_token_secrets.sql", import.meta.url), "utf8");
    const update = migration.slice(migration.indexOf("UPDATE"));
    await h.store.db.execute(sql.raw(update));
    const prefixOf = async (token: string) =>
      (
        await h.store.db
          .select()
          .from(apiTokens)
          .where(eq(apiTokens.tokenHash, hashToken(token)))
      )[0]!.tokenPrefix;
    expect(await prefixOf(org.viewer)).toBe(org.viewer.slice(0, 9));
    expect(await prefixOf(chosen)).toBe("(chosen)");
    const leaks = rowsOf<{ n: number }>(
      await h.store.db.execute(
        sql`select count(*)::int as n from api_tokens where length(token_prefix) > 9 and token_prefix <> '(chosen)'`,
      ),
    );
    expect(leaks[0]!.n).toBe(0);
  });
});

describe("token expiry (issue 9)", () => {
  it("issues a token with expiresAt, lists it, and refuses it with 401 once expired, saying when", async () => {
    const org = await h.tenant("expiry");
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    const created = await h.call("POST", "/api/v1/tokens", {
      token: org.admin,
      json: { name: "short-lived", role: "viewer", expiresAt },
    });
    expect(created.status).toBe(201);
    expect(created.body.expiresAt).toBe(expiresAt);
    const listed = await h.call("GET", "/api/v1/tokens", { token: org.admin });
    expect(listed.body.tokens.find((t: { id: string }) => t.id === created.body.id).expiresAt).toBe(
      expiresAt,
    );
    expect((await h.call("GET", "/api/v1/environments", { token: created.body.token })).status).toBe(200);

    h.clock.now = new Date(Date.parse(expiresAt) + 1_000);
    try {
      const res = await h.call("GET", "/api/v1/environments", { token: created.body.token });
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
      expect(errorOf(res)).toMatchObject({
        code: "unauthenticated",
        message: expect.stringContaining(`expired at ${expiresAt}`),
      });
      expect(errorOf(res).message).toContain("new token");
      // Tokens without expiry keep working at the same instant.
      expect((await h.call("GET", "/api/v1/environments", { token: org.viewer })).status).toBe(200);
    } finally {
      h.clock.now = undefined;
    }
  });

  it("refuses an expiresAt in the past or not a date-time with 400 naming the field", async () => {
    const org = await h.tenant("expiry-bad");
    for (const expiresAt of [
      new Date(Date.now() - 1_000).toISOString(),
      "tomorrow",
      "2027-13-01T00:00:00Z",
      `2027-01-01T00:00:00Z${".".repeat(100_000)}`,
    ]) {
      const res = await h.call("POST", "/api/v1/tokens", {
        token: org.admin,
        json: { name: "x", role: "viewer", expiresAt },
      });
      expect(res.status, expiresAt.slice(0, 30)).toBe(400);
      expect(errorOf(res)).toMatchObject({
        code: "invalid_argument",
        message: expect.stringContaining("expiresAt"),
      });
    }
  });
});

describe("GET /api/v1/tokens pages (issue 9)", () => {
  it("pages with limit and next cursors in (created_at, id) order, without gaps or repeats", async () => {
    const org = await h.tenant("pages");
    const same = new Date("2026-07-01T00:00:00.000Z");
    // Tokens sharing one created_at: the id breaks the tie.
    for (let i = 0; i < 7; i++) {
      h.clock.now = i < 4 ? same : new Date(same.getTime() + i);
      const res = await h.call("POST", "/api/v1/tokens", {
        token: org.admin,
        json: { name: `p${i}`, role: "viewer" },
      });
      expect(res.status).toBe(201);
    }
    h.clock.now = undefined;
    const all = await h.call("GET", "/api/v1/tokens?limit=200", { token: org.admin });
    expect(all.body.next).toBeNull();
    expect(all.body.tokens).toHaveLength(10);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: Awaited<ReturnType<ApiHarness["call"]>> = await h.call(
        "GET",
        `/api/v1/tokens?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
        { token: org.admin },
      );
      expect(page.status).toBe(200);
      expect(page.body.tokens.length).toBeLessThanOrEqual(3);
      seen.push(...page.body.tokens.map((t: { id: string }) => t.id));
      cursor = page.body.next;
      pages++;
    } while (cursor);
    expect(pages).toBe(4);
    expect(seen).toEqual(all.body.tokens.map((t: { id: string }) => t.id));
  });

  it("defaults to 50 per page and refuses bad limits and cursors with 400", async () => {
    const org = await h.tenant("pages-default");
    const rows = Array.from({ length: 52 }, (_, i) => ({
      id: randomUUID(),
      organisationId: org.id,
      name: `bulk ${i}`,
      role: "viewer" as const,
      tokenHash: hashToken(`bulk-${org.id}-${i}`),
      tokenPrefix: "dray_bulk",
    }));
    await h.store.db.insert(apiTokens).values(rows);
    const first = await h.call("GET", "/api/v1/tokens", { token: org.admin });
    expect(first.body.tokens).toHaveLength(50);
    expect(typeof first.body.next).toBe("string");
    const second = await h.call("GET", `/api/v1/tokens?cursor=${first.body.next}`, { token: org.admin });
    expect(second.body.tokens).toHaveLength(5);
    expect(second.body.next).toBeNull();
    for (const query of [
      "limit=0",
      "limit=201",
      "limit=abc",
      "cursor=nope",
      `cursor=${"a".repeat(200)}`,
      `cursor=${Buffer.from("tok1:x").toString("base64url")}`,
    ]) {
      const res = await h.call("GET", `/api/v1/tokens?${query}`, { token: org.admin });
      expect(res.status, query).toBe(400);
      expect(errorOf(res).code).toBe("invalid_argument");
      expect(errorOf(res).message).toMatch(/limit|cursor/);
    }
  });
});
