import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken } from "../src/auth/index.js";
import { createAgentDirectory } from "../src/gateway/agent-directory.js";
import { enrollmentTokens, environments } from "../src/store/index.js";
import {
  type ApiHarness,
  createTestDatabase,
  errorOf,
  openApiHarness,
  TEST_CONFIG,
} from "./api-test-harness.js";

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let h: ApiHarness;
let org: Awaited<ReturnType<ApiHarness["tenant"]>>;
beforeAll(async () => {
  database = await createTestDatabase();
  h = await openApiHarness(database.url);
  org = await h.tenant("envs");
});
afterAll(async () => {
  await h?.close();
  await database?.drop();
});

/** Redeems an enrollment token the way the agent gateway does; undefined when refused. */
async function redeem(token: string) {
  try {
    const agent = await createAgentDirectory(h.store.db).enroll(token, {
      name: "test-agent",
      hostname: "test",
      version: "0.0.0",
      platform: "postgres",
    });
    return { environmentId: agent.environmentId, organisationId: agent.organisationId };
  } catch (error) {
    if ((error as { code?: string }).code === "unauthenticated") return undefined;
    throw error;
  }
}

const create = (json: unknown, token = org.operator) =>
  h.call("POST", "/api/v1/environments", { token, json });

describe("POST /api/v1/environments", () => {
  it("creates an environment with a single-use enrollment token stored hashed with its expiry", async () => {
    // A fixed instant an hour ahead, so the token is still valid by the database clock when redeemed.
    const now = new Date(Math.floor(Date.now() / 1000) * 1000 + 3_600_000);
    h.clock.now = now;
    try {
      const res = await create({
        name: "qa",
        application: "Shop",
        url: "https://qa.example.com",
        protected: true,
      });
      expect(res.status).toBe(201);
      const id = res.body.environment.id;
      expect(res.body).toEqual({
        environment: {
          id: expect.stringMatching(/^[0-9a-f-]{36}$/),
          organisationId: org.id,
          name: "qa",
          platform: "postgres",
          application: "Shop",
          url: "https://qa.example.com",
          protected: true,
          health: "unknown",
          healthReason: null,
          healthChangedAt: null,
          lastHeartbeatAt: null,
          agent: { connected: false, version: null, databaseReachable: null, databaseLatencyMs: null },
          lastTestAt: null,
          lastTestLatencyMs: null,
          schemaCapturedAt: null,
          createdAt: now.toISOString(),
          updatedAt: now.toISOString(),
        },
        enrollmentToken: expect.stringMatching(/^dray_enr_[0-9A-Za-z]{43}$/),
        enrollmentTokenExpiresAt: new Date(now.getTime() + TEST_CONFIG.enrollmentTokenTtlMs).toISOString(),
      });
      const token: string = res.body.enrollmentToken;
      const rows = await h.store.db
        .select()
        .from(enrollmentTokens)
        .where(eq(enrollmentTokens.environmentId, id));
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({
        tokenHash: hashToken(token),
        expiresAt: new Date(now.getTime() + TEST_CONFIG.enrollmentTokenTtlMs),
        usedAt: null,
      });
      expect(JSON.stringify(rows)).not.toContain(token);

      // Single use: the first redemption wins, the second finds nothing.
      expect(await redeem(token)).toEqual({ environmentId: id, organisationId: org.id });
      expect(await redeem(token)).toBeUndefined();
      const [used] = await h.store.db
        .select()
        .from(enrollmentTokens)
        .where(eq(enrollmentTokens.environmentId, id));
      expect(used!.usedAt).toBeInstanceOf(Date);
    } finally {
      h.clock.now = undefined;
    }
  });

  it("defaults to postgres and refuses mysql (not supported yet) and unknown platforms", async () => {
    expect((await create({ name: "pg-default" })).body.environment.platform).toBe("postgres");
    const mysql = await create({ name: "my", platform: "mysql" });
    expect(mysql.status).toBe(400);
    expect(errorOf(mysql)).toMatchObject({
      code: "invalid_argument",
      message: expect.stringContaining("not supported yet"),
    });
    expect((await create({ name: "ora", platform: "oracle" })).status).toBe(400);
  });

  it("answers 409 already_exists for a duplicate name in the organisation, not across organisations", async () => {
    expect((await create({ name: "dup" })).status).toBe(201);
    const dup = await create({ name: "dup" });
    expect(dup.status).toBe(409);
    expect(errorOf(dup)).toMatchObject({
      code: "already_exists",
      message: 'an environment named "dup" already exists in this organisation',
    });
    const other = await h.tenant("envs-other");
    expect((await create({ name: "dup" }, other.operator)).status).toBe(201);
  });

  it("rejects malformed bodies with 400 invalid_argument and the error shape", async () => {
    const badJson = await h.call("POST", "/api/v1/environments", {
      token: org.operator,
      raw: '{"name": "x",',
    });
    expect(badJson.status).toBe(400);
    expect(errorOf(badJson)).toEqual({ code: "invalid_argument", message: "request body is not valid JSON" });

    const noType = await h.call("POST", "/api/v1/environments", {
      token: org.operator,
      raw: '{"name":"x"}',
      headers: { "content-type": "text/plain" },
    });
    expect(noType.status).toBe(400);
    expect(errorOf(noType).message).toContain("Content-Type: application/json");

    const cases: [unknown, string][] = [
      [{}, "name"],
      [{ name: "" }, "name"],
      [{ name: "x".repeat(101) }, "name"],
      [{ name: 5 }, "name"],
      [{ name: "x", protected: "yes" }, "protected"],
      [{ name: "x", application: 3 }, "application"],
      [[], "(root)"],
    ];
    for (const [json, field] of cases) {
      const res = await create(json);
      expect(res.status, JSON.stringify(json)).toBe(400);
      const error = errorOf(res);
      expect(error.code).toBe("invalid_argument");
      expect(error.message).toMatch(new RegExp(`^invalid request body: ${field.replace(/[()]/g, "\\$&")}: `));
      expect(error.details).toEqual({
        issues: [expect.objectContaining({ path: field === "(root)" ? "" : field })],
      });
    }
    const huge = await create({ name: "big", application: "x".repeat(1024 * 1024) });
    expect(huge.status).toBe(400);
    expect(errorOf(huge).message).toBe(
      "invalid request body: application: Too big: expected string to have <=200 characters",
    );
    const tooBig = await create({ name: "big", application: "x".repeat(5 * 1024 * 1024) });
    expect(tooBig.status).toBe(413);
    expect(errorOf(tooBig).message).toBe("request body is larger than 4 MiB");
    const password = await create({ name: "secret", url: "postgres://app:hunter2@db:5432/app" });
    expect(password.status).toBe(400);
    expect(errorOf(password).message).toContain("must not contain a password");
  });

  it("needs an organisation token with the operator role", async () => {
    const system = await create({ name: "sys" }, h.systemToken);
    expect(system.status).toBe(403);
    expect(errorOf(system)).toMatchObject({
      code: "permission_denied",
      message: expect.stringContaining("organisation"),
    });
    const viewer = await create({ name: "v" }, org.viewer);
    expect(viewer.status).toBe(403);
    expect(errorOf(viewer).message).toContain("operator role");
  });
});

describe("GET/PATCH/DELETE /api/v1/environments/:id", () => {
  it("reads, updates and deletes by role", async () => {
    const created = await create({ name: "staging", application: "CRM", url: "staging.internal" });
    const id = created.body.environment.id;
    h.agents.connected.add(id);
    const read = await h.call("GET", `/api/v1/environments/${id}`, { token: org.viewer });
    expect(read).toMatchObject({ status: 200, body: { id, name: "staging", agent: { connected: true } } });

    expect(
      (await h.call("PATCH", `/api/v1/environments/${id}`, { token: org.viewer, json: { name: "x" } }))
        .status,
    ).toBe(403);
    const patched = await h.call("PATCH", `/api/v1/environments/${id}`, {
      token: org.operator,
      json: { name: "staging-2", application: null, protected: true },
    });
    expect(patched).toMatchObject({
      status: 200,
      body: { name: "staging-2", application: null, url: "staging.internal", protected: true },
    });
    const [row] = await h.store.db.select().from(environments).where(eq(environments.id, id));
    expect(row).toMatchObject({ name: "staging-2", application: null, protected: true });

    await create({ name: "taken" });
    const clash = await h.call("PATCH", `/api/v1/environments/${id}`, {
      token: org.operator,
      json: { name: "taken" },
    });
    expect(clash.status).toBe(409);
    expect(errorOf(clash).code).toBe("already_exists");
    const unknownField = await h.call("PATCH", `/api/v1/environments/${id}`, {
      token: org.operator,
      json: { nmae: "typo" },
    });
    expect(unknownField.status).toBe(400);
    expect(errorOf(unknownField)).toEqual({
      code: "invalid_argument",
      message: "invalid request body: nmae: unknown field",
      details: { issues: [{ path: "nmae", message: "unknown field" }] },
    });

    const byOperator = await h.call("DELETE", `/api/v1/environments/${id}`, { token: org.operator });
    expect(byOperator.status).toBe(403);
    expect(errorOf(byOperator).message).toContain("admin role");
    expect((await h.call("DELETE", `/api/v1/environments/${id}`, { token: org.admin })).status).toBe(204);
    expect((await h.call("GET", `/api/v1/environments/${id}`, { token: org.viewer })).status).toBe(404);
    expect(
      await h.store.db.select().from(enrollmentTokens).where(eq(enrollmentTokens.environmentId, id)),
    ).toEqual([]);
  });

  it("answers 404 for unknown and non-UUID ids", async () => {
    for (const id of ["00000000-0000-4000-8000-000000000000", "qa", "1'; drop table environments;--"]) {
      const path = `/api/v1/environments/${encodeURIComponent(id)}`;
      for (const [method, token, json] of [
        ["GET", org.viewer, undefined],
        ["PATCH", org.operator, { name: "n" }],
        ["DELETE", org.admin, undefined],
      ] as const) {
        const res = await h.call(method, path, { token, json });
        expect(res.status, `${method} ${id}`).toBe(404);
        expect(errorOf(res)).toEqual({ code: "not_found", message: `environment ${id} was not found` });
      }
    }
  });
});

describe("POST /api/v1/environments/:id/enrollment-token", () => {
  it("issues a new token and expires the older unused one", async () => {
    const created = await create({ name: "repair" });
    const id = created.body.environment.id;
    const first: string = created.body.enrollmentToken;
    expect(
      (await h.call("POST", `/api/v1/environments/${id}/enrollment-token`, { token: org.viewer })).status,
    ).toBe(403);
    const res = await h.call("POST", `/api/v1/environments/${id}/enrollment-token`, { token: org.operator });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      enrollmentToken: expect.stringMatching(/^dray_enr_/),
      expiresAt: expect.any(String),
    });
    expect(res.body.enrollmentToken).not.toBe(first);
    expect(await redeem(first)).toBeUndefined();
    expect(await redeem(res.body.enrollmentToken)).toMatchObject({ environmentId: id });
    const third = await h.call("POST", `/api/v1/environments/${id}/enrollment-token`, {
      token: org.operator,
    });
    await h.store.db
      .update(enrollmentTokens)
      .set({ expiresAt: new Date(Date.now() - 1000) })
      .where(eq(enrollmentTokens.tokenHash, hashToken(third.body.enrollmentToken)));
    expect(await redeem(third.body.enrollmentToken)).toBeUndefined();
  });
});
