import { randomUUID } from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SchemaSnapshot } from "../src/environments/schema-snapshot.js";
import { DEFAULT_BATCH_SIZE } from "../src/pipelines/pipeline-defaults.js";
import { environments, pipelines } from "../src/store/index.js";
import {
  type ApiHarness,
  createEnvironmentWithSnapshot,
  createTestDatabase,
  errorOf,
  openApiHarness,
  sampleSnapshot,
} from "./api-test-harness.js";

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let h: ApiHarness;
type Tenant = Awaited<ReturnType<ApiHarness["tenant"]>>;
let org: Tenant;
let other: Tenant;
/** Environments of `org` (prod has a snapshot, qa too, bare none, legacy is mysql) and of `other`. */
const env = { prod: "", qa: "", bare: "", legacy: "", otherProd: "", otherQa: "" };

const createEnvironment = (tenant: Tenant, name: string, snapshot?: SchemaSnapshot) =>
  createEnvironmentWithSnapshot(h, tenant, name, snapshot);

beforeAll(async () => {
  database = await createTestDatabase();
  h = await openApiHarness(database.url);
  org = await h.tenant("pipes");
  other = await h.tenant("pipes-other");
  env.prod = await createEnvironment(org, "prod", sampleSnapshot("fp-prod"));
  env.qa = await createEnvironment(org, "qa", sampleSnapshot("fp-qa"));
  env.bare = await createEnvironment(org, "bare");
  env.legacy = await createEnvironment(org, "legacy", sampleSnapshot("fp-legacy"));
  await h.store.db.update(environments).set({ platform: "mysql" }).where(eq(environments.id, env.legacy));
  env.otherProd = await createEnvironment(other, "prod", sampleSnapshot("fp-b"));
  env.otherQa = await createEnvironment(other, "qa", sampleSnapshot("fp-b2"));
});
afterAll(async () => {
  await h?.close();
  await database?.drop();
});

const body = (overrides: Record<string, unknown> = {}) => ({
  name: "prod to qa",
  sourceEnvironmentId: env.prod,
  targetEnvironmentId: env.qa,
  writeStrategy: "merge",
  entities: ["public.customers", "public.orders"],
  ...overrides,
});
const create = (json: unknown, token = org.operator) => h.call("POST", "/api/v1/pipelines", { token, json });
const rowsNamed = (name: string) => h.store.db.select().from(pipelines).where(eq(pipelines.name, name));

describe("POST /api/v1/pipelines", () => {
  it("creates a pipeline with the default options and stores it", async () => {
    const res = await create(body({ name: "defaults" }));
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      organisationId: org.id,
      name: "defaults",
      sourceEnvironmentId: env.prod,
      targetEnvironmentId: env.qa,
      action: "copy",
      writeStrategy: "merge",
      entities: ["public.customers", "public.orders"],
      batchSize: DEFAULT_BATCH_SIZE,
      batchBytes: 8 * 1024 * 1024,
      maxRetriesPerBatch: 4,
      stopOnError: true,
      entityConcurrency: 4,
      targetTriggers: "off",
      loadOrder: "dependencies",
      sourceKind: "environment",
      mode: "once",
      cursorField: null,
      batchIntervalMs: 2500,
      safetyLagMs: 5000,
      maxFailedPolls: 5,
      reconcileEveryPolls: 0,
      fileSettings: null,
      createdAt: expect.any(String),
      updatedAt: res.body.createdAt,
      running: false,
      lastExecution: null,
    });
    expect(DEFAULT_BATCH_SIZE).toBe(50_000);
    const [row] = await rowsNamed("defaults");
    expect(row).toMatchObject({
      id: res.body.id,
      organisationId: org.id,
      action: "copy",
      writeStrategy: "merge",
      entities: ["public.customers", "public.orders"],
      batchSize: 50_000,
      batchBytes: 8_388_608,
      maxRetriesPerBatch: 4,
      stopOnError: true,
      entityConcurrency: 4,
      loadOrder: "dependencies",
    });
    expect(row!.createdAt.toISOString()).toBe(res.body.createdAt);
  });

  it("keeps explicit options, entity order and a trimmed name", async () => {
    const options = {
      batchSize: 1,
      batchBytes: 65_536,
      maxRetriesPerBatch: 0,
      stopOnError: false,
      entityConcurrency: 16,
    };
    const res = await create(
      body({
        name: "  explicit  ",
        action: "copy",
        writeStrategy: "clean",
        entities: ["public.orders", "public.customers"],
        ...options,
      }),
    );
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      name: "explicit",
      writeStrategy: "clean",
      entities: ["public.orders", "public.customers"],
      ...options,
    });
    const [row] = await rowsNamed("explicit");
    expect(row).toMatchObject({ entities: ["public.orders", "public.customers"], ...options });
  });

  it("rejects malformed bodies with 400 invalid_argument naming the field, and stores nothing", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ name: undefined }, "name"],
      [{ name: "" }, "name"],
      [{ name: "x".repeat(101) }, "name"],
      [{ sourceEnvironmentId: undefined }, "sourceEnvironmentId"],
      [{ targetEnvironmentId: 42 }, "targetEnvironmentId"],
      [{ writeStrategy: undefined }, "writeStrategy"],
      [{ writeStrategy: "upsert" }, "writeStrategy"],
      [{ action: "move" }, "action"],
      [{ entities: undefined }, "entities"],
      [{ entities: [] }, "entities"],
      [{ entities: "public.customers" }, "entities"],
      [{ entities: ["customers"] }, "entities.0"],
      [{ entities: Array.from({ length: 501 }, (_, i) => `public.t${i}`) }, "entities"],
      [{ batchSize: "10" }, "batchSize"],
      [{ batchSize: 0 }, "batchSize"],
      [{ batchSize: 100_001 }, "batchSize"],
      [{ batchSize: 1.5 }, "batchSize"],
      [{ batchBytes: 65_535 }, "batchBytes"],
      [{ batchBytes: 48 * 1024 * 1024 + 1 }, "batchBytes"],
      [{ maxRetriesPerBatch: 21 }, "maxRetriesPerBatch"],
      [{ maxRetriesPerBatch: -1 }, "maxRetriesPerBatch"],
      [{ stopOnError: "yes" }, "stopOnError"],
      [{ entityConcurrency: 0 }, "entityConcurrency"],
      [{ entityConcurrency: 17 }, "entityConcurrency"],
      [{ loadOrder: "random" }, "loadOrder"],
      [{ schedule: "daily" }, "schedule"],
    ];
    for (const [overrides, path] of cases) {
      const res = await create(body({ name: "malformed", ...overrides }));
      expect(res.status, JSON.stringify(overrides)).toBe(400);
      const error = errorOf(res);
      expect(error.code).toBe("invalid_argument");
      expect(error.message).toContain(path);
      expect((error.details as { issues: { path: string }[] }).issues.map((i) => i.path)).toContain(path);
    }
    expect(errorOf(await create(body({ name: "malformed", schedule: "daily" }))).message).toBe(
      "invalid request body: schedule: unknown field",
    );
    expect(await rowsNamed("malformed")).toEqual([]);
  });

  it("refuses delete as not supported yet", async () => {
    for (const action of ["delete"]) {
      const res = await create(body({ name: "unsupported", action }));
      expect(res.status).toBe(400);
      expect(errorOf(res)).toEqual({
        code: "invalid_argument",
        message: `action "${action}" is not supported yet: use "copy" or "transform"`,
        details: { issues: [{ path: "action", message: "not supported yet" }] },
      });
    }
    expect(await rowsNamed("unsupported")).toEqual([]);
  });

  it("answers 400 naming which environment id is unknown in the organisation", async () => {
    const missing = randomUUID();
    const source = await create(body({ name: "bad-env", sourceEnvironmentId: missing }));
    expect(source.status).toBe(400);
    expect(errorOf(source)).toEqual({
      code: "invalid_argument",
      message: `sourceEnvironmentId: environment ${missing} was not found in this organisation`,
      details: {
        issues: [
          {
            path: "sourceEnvironmentId",
            message: `environment ${missing} was not found in this organisation`,
          },
        ],
      },
    });
    const both = await create(
      body({ name: "bad-env", sourceEnvironmentId: "nope", targetEnvironmentId: missing }),
    );
    expect(both.status).toBe(400);
    expect(errorOf(both).message).toBe(
      `sourceEnvironmentId: environment nope was not found in this organisation; ` +
        `targetEnvironmentId: environment ${missing} was not found in this organisation`,
    );
    // Another organisation cannot use these environments: to it they do not exist.
    const foreign = await create(body({ name: "bad-env" }), other.operator);
    expect(foreign.status).toBe(400);
    expect(errorOf(foreign).message).toBe(
      `sourceEnvironmentId: environment ${env.prod} was not found in this organisation; ` +
        `targetEnvironmentId: environment ${env.qa} was not found in this organisation`,
    );
    expect(await rowsNamed("bad-env")).toEqual([]);
  });

  it("answers 400 when source and target are the same or differ in platform", async () => {
    const same = await create(body({ name: "bad", targetEnvironmentId: env.prod }));
    expect(same.status).toBe(400);
    expect(errorOf(same)).toMatchObject({
      code: "invalid_argument",
      message: expect.stringContaining(
        "sourceEnvironmentId and targetEnvironmentId are the same environment (prod)",
      ),
    });
    const platform = await create(body({ name: "bad", targetEnvironmentId: env.legacy }));
    expect(platform.status).toBe(400);
    expect(errorOf(platform).message).toBe(
      "source environment prod (postgres) and target environment legacy (mysql) must share a platform",
    );
    expect(await rowsNamed("bad")).toEqual([]);
  });

  it("answers 400 naming every entity missing in the source snapshot", async () => {
    const res = await create(
      body({ name: "bad", entities: ["public.customers", "public.nope", "crm.leads"] }),
    );
    expect(res.status).toBe(400);
    const error = errorOf(res);
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toMatch(
      /^entities public\.nope, crm\.leads do not exist in source environment prod/,
    );
    expect(error.details).toEqual({
      issues: [
        { path: "entities.1", message: "public.nope is not in the source's entity snapshot" },
        { path: "entities.2", message: "crm.leads is not in the source's entity snapshot" },
      ],
    });
  });

  it("answers 400 for duplicate entities", async () => {
    const res = await create(
      body({ name: "bad", entities: ["public.orders", "public.customers", "public.orders"] }),
    );
    expect(res.status).toBe(400);
    expect(errorOf(res)).toEqual({
      code: "invalid_argument",
      message: "entities are selected more than once: public.orders",
      details: {
        issues: [{ path: "entities.2", message: "public.orders is already selected at entities.0" }],
      },
    });
  });

  it("answers 409 already_exists for a name taken in the organisation, not across organisations", async () => {
    expect((await create(body({ name: "taken" }))).status).toBe(201);
    const dup = await create(body({ name: "taken" }));
    expect(dup.status).toBe(409);
    expect(errorOf(dup)).toMatchObject({
      code: "already_exists",
      message: 'a pipeline named "taken" already exists in this organisation',
    });
    const elsewhere = await create(
      body({ name: "taken", sourceEnvironmentId: env.otherProd, targetEnvironmentId: env.otherQa }),
      other.operator,
    );
    expect(elsewhere.status).toBe(201);
    expect(await rowsNamed("taken")).toHaveLength(2);
  });

  it("answers 409 failed_precondition when the source has no entity snapshot yet and no connected agent", async () => {
    const res = await create(body({ name: "no-snapshot", sourceEnvironmentId: env.bare }));
    expect(res.status).toBe(409);
    const error = errorOf(res);
    expect(error.code).toBe("failed_precondition");
    expect(error.message).toContain(`environment bare (${env.bare}) has no entity snapshot yet`);
    expect(error.message).toContain("no agent of it is connected: start its dray-agent");
    expect(error.details).toEqual({ environmentId: env.bare, reason: "no_entity_snapshot" });
    expect(await rowsNamed("no-snapshot")).toEqual([]);
    expect(h.agents.calls.filter((c) => c.environmentId === env.bare)).toEqual([]);
  });

  it("fetches the source's snapshot from its connected agent when none is cached yet", async () => {
    const fresh = await createEnvironment(org, "fresh-source");
    h.agents.connected.add(fresh);
    try {
      const res = await create(body({ name: "right after healthy", sourceEnvironmentId: fresh }));
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      expect(res.body.sourceEnvironmentId).toBe(fresh);
      expect(h.agents.calls).toContainEqual({ method: "describeSchema", environmentId: fresh });
      const [stored] = await h.store.db.select().from(environments).where(eq(environments.id, fresh));
      expect(stored!.schemaFingerprint).toBe(h.agents.snapshot.fingerprint);
      expect((stored!.schemaSnapshot as SchemaSnapshot).entities.map((e) => e.entity)).toEqual([
        "public.customers",
        "public.orders",
      ]);
      // The snapshot is cached now: a second pipeline does not ask the agent again.
      const asked = h.agents.calls.length;
      expect((await create(body({ name: "second", sourceEnvironmentId: fresh }))).status).toBe(201);
      expect(h.agents.calls.length).toBe(asked);
    } finally {
      h.agents.connected.delete(fresh);
    }
  });

  it("still checks the entities against the fetched snapshot", async () => {
    const fresh = await createEnvironment(org, "fresh-source-2");
    h.agents.connected.add(fresh);
    try {
      const res = await create(
        body({ name: "unknown entity", sourceEnvironmentId: fresh, entities: ["public.nope"] }),
      );
      expect(res.status).toBe(400);
      expect(errorOf(res).message).toContain(
        "public.nope does not exist in source environment fresh-source-2",
      );
    } finally {
      h.agents.connected.delete(fresh);
    }
  });

  it("needs the operator role", async () => {
    const res = await create(body({ name: "by-viewer" }), org.viewer);
    expect(res.status).toBe(403);
    expect(errorOf(res).code).toBe("permission_denied");
    expect((await h.call("POST", "/api/v1/pipelines", { json: body() })).status).toBe(401);
    expect((await create(body({ name: "by-system" }), h.systemToken)).status).toBe(403);
    expect(await rowsNamed("by-viewer")).toEqual([]);
  });
});
