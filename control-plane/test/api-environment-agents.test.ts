import { DrayError } from "@dray/common";
import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { environments, rowsOf } from "../src/store/index.js";
import {
  type ApiHarness,
  createTestDatabase,
  errorOf,
  openApiHarness,
  sampleSnapshot,
} from "./api-test-harness.js";

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let h: ApiHarness;
let a: Awaited<ReturnType<ApiHarness["tenant"]>>;
let b: Awaited<ReturnType<ApiHarness["tenant"]>>;

beforeAll(async () => {
  database = await createTestDatabase();
  h = await openApiHarness(database.url);
  a = await h.tenant("agents-a");
  b = await h.tenant("agents-b");
});
afterAll(async () => {
  await h?.close();
  await database?.drop();
});
beforeEach(() => {
  h.agents.connected.clear();
  h.agents.calls.length = 0;
  h.agents.failure = undefined;
  h.agents.snapshot = sampleSnapshot("fp-1");
});

let counter = 0;
const newEnvironment = async (token = a.operator): Promise<string> => {
  const res = await h.call("POST", "/api/v1/environments", { token, json: { name: `env-${++counter}` } });
  expect(res.status).toBe(201);
  return res.body.environment.id;
};
const rowOf = async (id: string) =>
  (await h.store.db.select().from(environments).where(eq(environments.id, id)))[0]!;

describe("POST /api/v1/environments/:id/test", () => {
  it("answers 503 unavailable with the agent's message when no agent is connected", async () => {
    const id = await newEnvironment();
    const res = await h.call("POST", `/api/v1/environments/${id}/test`, { token: a.operator });
    expect(res.status).toBe(503);
    expect(errorOf(res)).toEqual({
      code: "unavailable",
      message: `environment ${id} has no connected agent: start dray-agent with its enrollment token, then retry`,
    });
    expect((await rowOf(id)).lastTestAt).toBeNull();
  });

  it("runs the round trip and records when and how fast", async () => {
    const id = await newEnvironment();
    h.agents.connected.add(id);
    const testedAt = new Date("2026-06-02T09:30:00.000Z");
    h.clock.now = testedAt;
    try {
      const res = await h.call("POST", `/api/v1/environments/${id}/test`, { token: a.operator });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        ok: true,
        roundTripMs: 12,
        databaseLatencyMs: 3,
        serverVersion: "15.8",
        databaseName: "shop",
        testedAt: testedAt.toISOString(),
      });
    } finally {
      h.clock.now = undefined;
    }
    expect(await rowOf(id)).toMatchObject({ lastTestAt: testedAt, lastTestLatencyMs: 12 });
    const read = await h.call("GET", `/api/v1/environments/${id}`, { token: a.viewer });
    expect(read.body).toMatchObject({
      lastTestAt: testedAt.toISOString(),
      lastTestLatencyMs: 12,
      agent: { connected: true },
    });
    expect((await h.call("POST", `/api/v1/environments/${id}/test`, { token: a.viewer })).status).toBe(403);
  });

  it("maps the agent's other errors by code", async () => {
    const id = await newEnvironment();
    h.agents.connected.add(id);
    h.agents.failure = new DrayError("deadline_exceeded", "the agent did not answer within 10s");
    const res = await h.call("POST", `/api/v1/environments/${id}/test`, { token: a.operator });
    expect(res.status).toBe(504);
    expect(errorOf(res)).toEqual({
      code: "deadline_exceeded",
      message: "the agent did not answer within 10s",
    });
  });
});

describe("POST /api/v1/environments/:id/test: rate limit per environment", () => {
  it("allows one test in flight per environment, answering 429 with Retry-After meanwhile", async () => {
    const id = await newEnvironment();
    const other = await newEnvironment();
    h.agents.connected.add(id);
    h.agents.connected.add(other);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const original = h.agents.testConnection;
    h.agents.testConnection = async (environmentId: string) => {
      if (environmentId === id) await gate;
      return original.call(h.agents, environmentId);
    };
    try {
      const first = h.call("POST", `/api/v1/environments/${id}/test`, { token: a.operator });
      await new Promise((r) => setTimeout(r, 50));
      const second = await h.call("POST", `/api/v1/environments/${id}/test`, { token: a.operator });
      expect(second.status).toBe(429);
      expect(second.headers.get("retry-after")).toBe("1");
      expect(errorOf(second)).toMatchObject({
        code: "resource_exhausted",
        message: "a connection test of this environment is already running: wait for its answer, then retry",
      });
      // another environment is not held up
      expect((await h.call("POST", `/api/v1/environments/${other}/test`, { token: a.operator })).status).toBe(
        200,
      );
      release();
      expect((await first).status).toBe(200);
      expect((await h.call("POST", `/api/v1/environments/${id}/test`, { token: a.operator })).status).toBe(
        200,
      );
    } finally {
      h.agents.testConnection = original;
    }
  });

  it("allows 6 tests per minute per environment, then 429 until the minute has passed", async () => {
    const id = await newEnvironment();
    h.agents.connected.add(id);
    const start = new Date("2026-07-01T10:00:00.000Z");
    h.clock.now = start;
    try {
      for (let i = 0; i < 6; i++) {
        h.clock.now = new Date(start.getTime() + i * 1_000);
        expect((await h.call("POST", `/api/v1/environments/${id}/test`, { token: a.operator })).status).toBe(
          200,
        );
      }
      h.clock.now = new Date(start.getTime() + 20_000);
      const refused = await h.call("POST", `/api/v1/environments/${id}/test`, { token: a.operator });
      expect(refused.status).toBe(429);
      expect(refused.headers.get("retry-after")).toBe("40");
      expect(errorOf(refused).message).toBe(
        "this environment's connection was tested 6 times in the last 60 s, the most allowed: retry in 40 s",
      );
      // a minute after the first test it has left the window: one more fits, then the window is full again
      h.clock.now = new Date(start.getTime() + 60_000);
      expect((await h.call("POST", `/api/v1/environments/${id}/test`, { token: a.operator })).status).toBe(
        200,
      );
      expect((await h.call("POST", `/api/v1/environments/${id}/test`, { token: a.operator })).status).toBe(
        429,
      );
    } finally {
      h.clock.now = undefined;
    }
  });
});

describe("GET /api/v1/environments/:id/entities and POST …/refresh", () => {
  it("answers 503 when there is no snapshot and no agent", async () => {
    const id = await newEnvironment();
    const res = await h.call("GET", `/api/v1/environments/${id}/entities`, { token: a.viewer });
    expect(res.status).toBe(503);
    expect(errorOf(res)).toMatchObject({
      code: "unavailable",
      message: expect.stringContaining("start dray-agent"),
    });
  });

  it("fetches once, caches in the store, serves the cache, and refreshes on demand", async () => {
    const id = await newEnvironment();
    h.agents.connected.add(id);
    const first = await h.call("GET", `/api/v1/environments/${id}/entities`, { token: a.viewer });
    expect(first.status).toBe(200);
    expect(first.body).toEqual(sampleSnapshot("fp-1"));
    const stored = rowsOf<{ fp: string; n: number }>(
      await h.store.db.execute(
        sql`select schema_snapshot->>'fingerprint' as fp, jsonb_array_length(schema_snapshot->'entities') as n from environments where id = ${id}`,
      ),
    );
    expect(stored).toEqual([{ fp: "fp-1", n: 2 }]);
    expect(await rowOf(id)).toMatchObject({
      schemaFingerprint: "fp-1",
      schemaCapturedAt: new Date("2026-05-01T10:00:00.000Z"),
    });

    // Cached: the agent is not asked again, even once it is gone.
    h.agents.connected.delete(id);
    expect((await h.call("GET", `/api/v1/environments/${id}/entities`, { token: a.viewer })).body).toEqual(
      first.body,
    );
    expect(h.agents.calls.filter((c) => c.method === "describeSchema")).toHaveLength(1);
    const env = await h.call("GET", `/api/v1/environments/${id}`, { token: a.viewer });
    expect(env.body.schemaCapturedAt).toBe("2026-05-01T10:00:00.000Z");

    // Refresh without an agent: 503; the cache stays.
    expect((await h.call("POST", `/api/v1/environments/${id}/refresh`, { token: a.operator })).status).toBe(
      503,
    );
    h.agents.connected.add(id);
    h.agents.snapshot = { ...sampleSnapshot("fp-2"), capturedAt: "2026-05-02T10:00:00.000Z" };
    const refreshed = await h.call("POST", `/api/v1/environments/${id}/refresh`, { token: a.operator });
    expect(refreshed).toMatchObject({
      status: 200,
      body: { fingerprint: "fp-2", capturedAt: "2026-05-02T10:00:00.000Z" },
    });
    expect((await rowOf(id)).schemaFingerprint).toBe("fp-2");

    h.agents.snapshot = sampleSnapshot("fp-3");
    const viaQuery = await h.call("GET", `/api/v1/environments/${id}/entities?refresh=true`, {
      token: a.operator,
    });
    expect(viaQuery.body.fingerprint).toBe("fp-3");
    // first fetch, the refresh that found no agent, the refresh, the ?refresh=true
    expect(h.agents.calls.filter((c) => c.method === "describeSchema")).toHaveLength(4);
  });

  it("keeps refreshing for operators and validates the refresh flag", async () => {
    const id = await newEnvironment();
    h.agents.connected.add(id);
    expect(
      (await h.call("GET", `/api/v1/environments/${id}/entities?refresh=true`, { token: a.viewer })).status,
    ).toBe(403);
    expect((await h.call("POST", `/api/v1/environments/${id}/refresh`, { token: a.viewer })).status).toBe(
      403,
    );
    const bad = await h.call("GET", `/api/v1/environments/${id}/entities?refresh=yes`, { token: a.operator });
    expect(bad.status).toBe(400);
    expect(errorOf(bad).message).toMatch(/^invalid query parameters: refresh: /);
  });
});

describe("tenant isolation", () => {
  it("answers 404 to another organisation on every environment route and never lists its environments", async () => {
    const id = await newEnvironment(a.operator);
    h.agents.connected.add(id);
    const before = await rowOf(id);
    const attempts: [string, string, unknown][] = [
      ["GET", `/api/v1/environments/${id}`, undefined],
      ["PATCH", `/api/v1/environments/${id}`, { name: "hijacked", protected: false }],
      ["DELETE", `/api/v1/environments/${id}`, undefined],
      ["POST", `/api/v1/environments/${id}/test`, undefined],
      ["GET", `/api/v1/environments/${id}/entities`, undefined],
      ["GET", `/api/v1/environments/${id}/entities?refresh=true`, undefined],
      ["POST", `/api/v1/environments/${id}/refresh`, undefined],
      ["POST", `/api/v1/environments/${id}/enrollment-token`, undefined],
    ];
    for (const [method, path, json] of attempts) {
      const res = await h.call(method, path, { token: b.admin, json });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(errorOf(res)).toEqual({ code: "not_found", message: `environment ${id} was not found` });
    }
    expect(h.agents.calls).toEqual([]);
    expect(await rowOf(id)).toEqual(before);
    const listed = await h.call("GET", "/api/v1/environments?search=env", { token: b.admin });
    expect(listed.body.environments.map((e: { id: string }) => e.id)).not.toContain(id);
    const own = await h.call("GET", "/api/v1/environments", { token: a.viewer });
    expect(own.body.environments.map((e: { id: string }) => e.id)).toContain(id);
  });
});
