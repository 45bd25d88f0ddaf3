import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { organisations, usage } from "../src/store/index.js";
import { type ApiHarness, createTestDatabase, openApiHarness, TEST_CONFIG } from "./api-test-harness.js";

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let h: ApiHarness;
let org: Awaited<ReturnType<ApiHarness["tenant"]>>;
let other: typeof org;
beforeAll(async () => {
  database = await createTestDatabase();
  h = await openApiHarness(database.url);
  org = await h.tenant("usage");
  other = await h.tenant("usage-other");
});
afterAll(async () => {
  await h?.close();
  await database?.drop();
});

const getUsage = (token = org.viewer) => h.call("GET", "/api/v1/usage", { token });

describe("GET /api/v1/usage", () => {
  it("shows zeros and the organisation's limit before anything was used", async () => {
    h.clock.now = new Date("2026-05-31T23:59:59.999Z");
    try {
      const res = await getUsage();
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        month: "2026-05",
        used: 0,
        reserved: 0,
        limit: TEST_CONFIG.defaultMonthlyRecordLimit,
        remaining: TEST_CONFIG.defaultMonthlyRecordLimit,
      });
    } finally {
      h.clock.now = undefined;
    }
  });

  it("counts the current UTC month's committed and reserved records only, per organisation", async () => {
    await h.store.db.insert(usage).values([
      { organisationId: org.id, month: "2026-05", records: 1_200, reserved: 300 },
      { organisationId: org.id, month: "2026-04", records: 40_000, reserved: 0 },
      { organisationId: other.id, month: "2026-05", records: 7, reserved: 0 },
    ]);
    h.clock.now = new Date("2026-05-15T12:00:00Z");
    try {
      expect((await getUsage()).body).toEqual({
        month: "2026-05",
        used: 1_200,
        reserved: 300,
        limit: 50_000,
        remaining: 48_500,
      });
      expect((await getUsage(other.operator)).body).toMatchObject({ used: 7, remaining: 49_993 });
      h.clock.now = new Date("2026-06-01T00:00:00Z");
      expect((await getUsage()).body).toMatchObject({
        month: "2026-06",
        used: 0,
        reserved: 0,
        remaining: 50_000,
      });
    } finally {
      h.clock.now = undefined;
    }
  });

  it("reflects a limit changed with PATCH /organisations/:id, never going below 0 remaining", async () => {
    h.clock.now = new Date("2026-05-20T08:00:00Z");
    try {
      const patched = await h.call("PATCH", `/api/v1/organisations/${org.id}`, {
        token: h.systemToken,
        json: { monthlyRecordLimit: 1_000 },
      });
      expect(patched.status).toBe(200);
      expect(patched.body.monthlyRecordLimit).toBe(1_000);
      const [row] = await h.store.db.select().from(organisations).where(eq(organisations.id, org.id));
      expect(row!.monthlyRecordLimit).toBe(1_000);
      expect((await getUsage()).body).toEqual({
        month: "2026-05",
        used: 1_200,
        reserved: 300,
        limit: 1_000,
        remaining: 0,
      });
      // An organisation's own tokens cannot change the limit.
      const denied = await h.call("PATCH", `/api/v1/organisations/${org.id}`, {
        token: org.admin,
        json: { monthlyRecordLimit: 10_000_000 },
      });
      expect(denied.status).toBe(403);
      await h.call("PATCH", `/api/v1/organisations/${org.id}`, {
        token: h.systemToken,
        json: { monthlyRecordLimit: 2_000 },
      });
      expect((await getUsage()).body).toMatchObject({ limit: 2_000, remaining: 500 });
    } finally {
      h.clock.now = undefined;
    }
  });

  it("needs an organisation token", async () => {
    expect((await h.call("GET", "/api/v1/usage")).status).toBe(401);
    expect((await getUsage(h.systemToken)).status).toBe(403);
  });
});
