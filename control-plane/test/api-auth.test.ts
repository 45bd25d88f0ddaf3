import { silentLogger } from "@dray/common";
import { eq } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BOOTSTRAP_TOKEN_NAME, ensureSystemAdminToken, hashToken } from "../src/auth/index.js";
import { apiTokens } from "../src/store/index.js";
import { type ApiHarness, createTestDatabase, errorOf, openApiHarness } from "./api-test-harness.js";

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let h: ApiHarness;
let ready = true;

beforeAll(async () => {
  database = await createTestDatabase();
  h = await openApiHarness(database.url, { readiness: async () => ready });
});
afterEach(() => {
  h.clock.now = undefined;
});
afterAll(async () => {
  await h?.close();
  await database?.drop();
});

describe("health and OpenAPI (no token)", () => {
  it("GET /healthz is always 200", async () => {
    const res = await h.call("GET", "/healthz");
    expect(res).toMatchObject({ status: 200, body: { status: "ok" } });
  });

  it("GET /readyz is 200 when the store answers and readiness() holds, else 503 with the error shape", async () => {
    expect(await h.call("GET", "/readyz")).toMatchObject({ status: 200, body: { status: "ready" } });
    ready = false;
    try {
      const res = await h.call("GET", "/readyz");
      expect(res.status).toBe(503);
      expect(errorOf(res)).toMatchObject({ code: "unavailable", message: "not ready: readiness failing" });
    } finally {
      ready = true;
    }
  });

  it("serves an OpenAPI 3.1 document with the bearer scheme and every route", async () => {
    const res = await h.call("GET", "/api/v1/openapi.json");
    expect(res.status).toBe(200);
    expect(res.body.openapi).toBe("3.1.0");
    expect(res.body.components.securitySchemes.bearer).toEqual(
      expect.objectContaining({ type: "http", scheme: "bearer" }),
    );
    expect(Object.keys(res.body.paths).sort()).toEqual([
      "/api/v1/environments",
      "/api/v1/environments/{id}",
      "/api/v1/environments/{id}/enrollment-token",
      "/api/v1/environments/{id}/entities",
      "/api/v1/environments/{id}/refresh",
      "/api/v1/environments/{id}/test",
      "/api/v1/executions/{id}",
      "/api/v1/executions/{id}/batches",
      "/api/v1/executions/{id}/cancel",
      "/api/v1/executions/{id}/errors",
      "/api/v1/executions/{id}/events",
      "/api/v1/organisations",
      "/api/v1/organisations/{id}",
      "/api/v1/pipeline/status",
      "/api/v1/pipeline/upload",
      "/api/v1/pipelines",
      "/api/v1/pipelines/{id}",
      "/api/v1/pipelines/{id}/executions",
      "/api/v1/pipelines/{id}/files",
      "/api/v1/pipelines/{id}/files/{fileId}",
      "/api/v1/pipelines/{id}/plan",
      "/api/v1/pipelines/{id}/preview",
      "/api/v1/pipelines/{id}/reconcile",
      "/api/v1/pipelines/{id}/start",
      "/api/v1/pipelines/{id}/stop",
      "/api/v1/sign-in-links",
      "/api/v1/tokens",
      "/api/v1/tokens/{id}",
      "/api/v1/usage",
    ]);
    expect(res.body.paths["/api/v1/environments"].post.security).toEqual([{ bearer: [] }]);
    expect(
      res.body.paths["/api/v1/environments"].get.parameters.find((p: { name: string }) => p.name === "sort")
        .schema.enum,
    ).toEqual(["name", "health", "lastHeartbeat", "createdAt"]);
  });
});

describe("authentication", () => {
  const expect401 = (res: Awaited<ReturnType<ApiHarness["call"]>>) => {
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(errorOf(res).code).toBe("unauthenticated");
  };

  it("answers 401 with WWW-Authenticate and the error shape without a token", async () => {
    const res = await h.call("GET", "/api/v1/environments");
    expect401(res);
    expect(errorOf(res).message).toContain("Authorization: Bearer");
  });

  it("answers 401 for another scheme, an unknown token and an enrollment token", async () => {
    expect401(
      await h.call("GET", "/api/v1/tokens", { headers: { authorization: `Basic ${h.systemToken}` } }),
    );
    expect401(
      await h.call("GET", "/api/v1/tokens", { token: "dray_notARealTokenAtAll0000000000000000000000" }),
    );
    const org = await h.tenant("auth-enr");
    const env = await h.call("POST", "/api/v1/environments", { token: org.operator, json: { name: "e" } });
    expect401(await h.call("GET", "/api/v1/environments", { token: env.body.enrollmentToken }));
  });

  it("answers 401 invalid (not 500, not missing) for a token far too long", async () => {
    for (const token of ["x".repeat(600), ".".repeat(8_000), "\n".repeat(3)]) {
      const res = await h.call("GET", "/api/v1/environments", {
        headers: { authorization: `Bearer ${token}` },
      });
      expect401(res);
      expect(errorOf(res).message, JSON.stringify(token.slice(0, 5))).toMatch(/not valid|missing/);
    }
    const long = await h.call("GET", "/api/v1/environments", { token: "x".repeat(600) });
    expect(errorOf(long).message).toContain("not valid");
  });

  it("answers 401 for a revoked token", async () => {
    const org = await h.tenant("auth-revoked");
    expect((await h.call("GET", "/api/v1/environments", { token: org.viewer })).status).toBe(200);
    const [row] = await h.store.db
      .select()
      .from(apiTokens)
      .where(eq(apiTokens.tokenHash, hashToken(org.viewer)));
    expect((await h.call("DELETE", `/api/v1/tokens/${row!.id}`, { token: org.admin })).status).toBe(204);
    expect401(await h.call("GET", "/api/v1/environments", { token: org.viewer }));
  });

  it("records last_used_at at most once a minute", async () => {
    const org = await h.tenant("auth-last-used");
    const lastUsed = async () =>
      (
        await h.store.db
          .select()
          .from(apiTokens)
          .where(eq(apiTokens.tokenHash, hashToken(org.viewer)))
      )[0]!.lastUsedAt;
    expect(await lastUsed()).toBeNull();
    const t0 = new Date("2026-06-01T12:00:00.000Z");
    h.clock.now = t0;
    await h.call("GET", "/api/v1/environments", { token: org.viewer });
    expect(await lastUsed()).toEqual(t0);
    h.clock.now = new Date(t0.getTime() + 30_000);
    await h.call("GET", "/api/v1/environments", { token: org.viewer });
    expect(await lastUsed()).toEqual(t0);
    const t2 = new Date(t0.getTime() + 61_000);
    h.clock.now = t2;
    await h.call("GET", "/api/v1/environments", { token: org.viewer });
    expect(await lastUsed()).toEqual(t2);
  });

  it("answers 404 not_found for unknown routes (after authentication) and sets X-Request-Id", async () => {
    const res = await h.call("GET", "/api/v1/nothing-here", { token: h.systemToken });
    expect(res.status).toBe(404);
    expect(errorOf(res)).toMatchObject({
      code: "not_found",
      message: "no route for GET /api/v1/nothing-here",
    });
    expect(res.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    // Outside /api the web UI answers: without a session, its sign-in page.
    const page = await h.call("GET", "/nowhere");
    expect(page.status).toBe(303);
    expect(page.headers.get("location")).toBe("/sign-in?next=%2Fnowhere");
  });
});

describe("unexpected errors", () => {
  it("answer 500 internal with a generic message, logged with the request id, no stack in the body", async () => {
    const org = await h.tenant("auth-500");
    const env = await h.call("POST", "/api/v1/environments", { token: org.operator, json: { name: "boom" } });
    h.agents.connected.add(env.body.environment.id);
    h.agents.failure = new Error("driver exploded: secret internals");
    try {
      const res = await h.call("POST", `/api/v1/environments/${env.body.environment.id}/test`, {
        token: org.operator,
      });
      expect(res.status).toBe(500);
      const error = errorOf(res);
      expect(error.code).toBe("internal");
      const requestId = res.headers.get("x-request-id")!;
      expect(error.message).toBe(
        `internal error (request id ${requestId}); the details are in the control plane's log`,
      );
      expect(JSON.stringify(res.body)).not.toMatch(/secret internals|at .*\.ts/);
      const logged = h.logger.lines.find((l) => l.level === "error" && l.fields.requestId === requestId);
      expect(logged?.fields.error).toMatchObject({ message: "driver exploded: secret internals" });
    } finally {
      h.agents.failure = undefined;
    }
  });
});

describe("ensureSystemAdminToken", () => {
  it("generates a token only when no active system token exists", async () => {
    // The harness generated one at start; a second call does nothing.
    expect(await ensureSystemAdminToken(h.store.db, undefined, silentLogger)).toEqual({});
    expect((await h.call("GET", "/api/v1/tokens", { token: h.systemToken })).status).toBe(200);
  });

  it("stores DRAY_ADMIN_TOKEN hashed as an active system token, re-activates it and revokes a rotated one", async () => {
    const configured = "configured-admin-token-0123456789";
    expect(await ensureSystemAdminToken(h.store.db, configured, silentLogger)).toEqual({});
    const [row] = await h.store.db
      .select()
      .from(apiTokens)
      .where(eq(apiTokens.tokenHash, hashToken(configured)));
    expect(row).toMatchObject({
      name: BOOTSTRAP_TOKEN_NAME,
      role: "system",
      organisationId: null,
      revokedAt: null,
    });
    expect((await h.call("GET", "/api/v1/tokens", { token: configured })).status).toBe(200);

    await h.call("DELETE", `/api/v1/tokens/${row!.id}`, { token: h.systemToken });
    expect((await h.call("GET", "/api/v1/tokens", { token: configured })).status).toBe(401);
    await ensureSystemAdminToken(h.store.db, configured, silentLogger);
    expect((await h.call("GET", "/api/v1/tokens", { token: configured })).status).toBe(200);

    const rotated = "rotated-admin-token-abcdefghijklmnop";
    await ensureSystemAdminToken(h.store.db, rotated, silentLogger);
    expect((await h.call("GET", "/api/v1/tokens", { token: rotated })).status).toBe(200);
    expect((await h.call("GET", "/api/v1/tokens", { token: configured })).status).toBe(401);
    // The generated token is not a DRAY_ADMIN_TOKEN bootstrap and stays valid.
    expect((await h.call("GET", "/api/v1/tokens", { token: h.systemToken })).status).toBe(200);
  });
});

describe("failed-authentication rate limit (issue 9)", () => {
  // app.request() has no socket: the address comes from the Node bindings, as @hono/node-server passes them.
  const from = (address: string, token: string | undefined, path = "/api/v1/environments") =>
    h.app.request(
      path,
      { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } },
      { incoming: { socket: { remoteAddress: address, remotePort: 40_000, remoteFamily: "IPv4" } } },
    );

  it("answers 429 with Retry-After after 30 invalid tokens from one address, sparing tokens that worked from it", async () => {
    const org = await h.tenant("auth-limit");
    const attacker = "203.0.113.7";
    // A working client shares the address: its token succeeded from there before the failures.
    expect((await from(attacker, org.viewer)).status).toBe(200);
    for (let i = 0; i < 30; i++) {
      const res = await from(attacker, `dray_wrong${i}`);
      expect(res.status).toBe(401);
    }
    const limited = await from(attacker, "dray_wrong-again");
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(Number(limited.headers.get("retry-after"))).toBeLessThanOrEqual(60);
    const body = (await limited.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("resource_exhausted");
    expect(body.error.message).toContain("too many failed authentications");

    // A valid token not seen from the address waits too (no lookup, so no oracle for guesses)...
    expect((await from(attacker, org.operator)).status).toBe(429);
    // ...but the client whose token already worked from there is not locked out.
    expect((await from(attacker, org.viewer)).status).toBe(200);

    // Another address, and in-process calls without an address, are not affected.
    expect((await from("203.0.113.8", org.viewer)).status).toBe(200);
    expect((await h.call("GET", "/api/v1/environments", { token: "dray_wrong" })).status).toBe(401);
    expect((await h.call("GET", "/api/v1/environments", { token: org.viewer })).status).toBe(200);
  });

  it("never counts successful authentications", async () => {
    const org = await h.tenant("auth-limit-ok");
    for (let i = 0; i < 100; i++) expect((await from("198.51.100.1", org.viewer)).status).toBe(200);
    // A missing token is refused without a lookup and is not counted either.
    for (let i = 0; i < 40; i++) expect((await from("198.51.100.2", undefined)).status).toBe(401);
    expect((await from("198.51.100.2", org.viewer)).status).toBe(200);
  });
});
