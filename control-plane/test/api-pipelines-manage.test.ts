import { randomUUID } from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SchemaSnapshot } from "../src/environments/schema-snapshot.js";
import { DEFAULT_BATCH_SIZE } from "../src/pipelines/pipeline-defaults.js";
import { executions, pipelines } from "../src/store/index.js";
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
/** Environments of `org` (prod and qa have snapshots, bare none) and of `other`. */
const env = { prod: "", qa: "", bare: "", otherProd: "", otherQa: "" };

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
  env.otherProd = await createEnvironment(other, "prod", sampleSnapshot("fp-b"));
  env.otherQa = await createEnvironment(other, "qa", sampleSnapshot("fp-b2"));
  const taken = { name: "taken", sourceEnvironmentId: env.otherProd, targetEnvironmentId: env.otherQa };
  expect((await create(body(taken), other.operator)).status).toBe(201);
  expect((await create(body({ name: "taken" }))).status).toBe(201);
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

async function insertExecution(
  pipelineId: string,
  status: string,
  createdAt = new Date(),
  db: Pick<ApiHarness["store"]["db"], "insert"> = h.store.db,
) {
  const id = randomUUID();
  await db.insert(executions).values({
    id,
    organisationId: org.id,
    pipelineId,
    pipelineToken: `pt-${randomUUID()}`,
    status: status as "queued",
    triggeredBy: { tokenId: randomUUID(), tokenName: "test", role: "operator" },
    snapshot: {},
    createdAt,
  });
  return id;
}

describe("GET /api/v1/pipelines", () => {
  it("lists the organisation's pipelines by name, case-insensitively, with LIKE wildcards escaped", async () => {
    for (const name of ["Zulu", "alpha list", "50%_off list", "500 list"]) {
      expect((await create(body({ name }))).status).toBe(201);
    }
    const all = await h.call("GET", "/api/v1/pipelines", { token: org.viewer });
    expect(all.status).toBe(200);
    const names: string[] = all.body.pipelines.map((p: { name: string }) => p.name);
    // Lower-cased, by code point (collate "C"), whatever the database's locale.
    const byCodePoint = (a: string, b: string) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1);
    expect(names).toEqual([...names].sort(byCodePoint));
    expect(names).toContain("Zulu");
    expect(names.indexOf("alpha list")).toBeLessThan(names.indexOf("Zulu"));
    expect(all.body.pipelines.every((p: { organisationId: string }) => p.organisationId === org.id)).toBe(
      true,
    );

    const search = async (text: string) =>
      (
        await h.call("GET", `/api/v1/pipelines?search=${encodeURIComponent(text)}`, { token: org.viewer })
      ).body.pipelines.map((p: { name: string }) => p.name);
    expect(await search("LIST")).toEqual(["50%_off list", "500 list", "alpha list"]);
    expect(await search("%_")).toEqual(["50%_off list"]);
    expect(await search("zul")).toEqual(["Zulu"]);
    expect(await search("  ")).toEqual(names);

    const otherList = await h.call("GET", "/api/v1/pipelines", { token: other.viewer });
    expect(otherList.body.pipelines.map((p: { name: string }) => p.name)).toEqual(["taken"]);
  });
});

describe("GET /api/v1/pipelines/{id}", () => {
  it("shows whether an execution runs and the latest one", async () => {
    const { body: created } = await create(body({ name: "with-runs" }));
    const old = await insertExecution(created.id, "completed", new Date(Date.now() - 60_000));
    let res = await h.call("GET", `/api/v1/pipelines/${created.id}`, { token: org.viewer });
    expect(res.status).toBe(200);
    expect(res.body.running).toBe(false);
    expect(res.body.lastExecution).toEqual({
      id: old,
      status: "completed",
      pipelineToken: expect.stringMatching(/^pt-/),
      createdAt: expect.any(String),
    });

    const queued = await insertExecution(created.id, "queued");
    res = await h.call("GET", `/api/v1/pipelines/${created.id}`, { token: org.viewer });
    expect(res.body).toMatchObject({ running: true, lastExecution: { id: queued, status: "queued" } });
    const list = await h.call("GET", "/api/v1/pipelines?search=with-runs", { token: org.viewer });
    expect(list.body.pipelines).toEqual([res.body]);
  });

  it("answers 404 for unknown, malformed and other organisations' ids", async () => {
    const { body: created } = await create(body({ name: "private" }));
    for (const [id, token] of [
      [randomUUID(), org.viewer],
      ["not-a-uuid", org.viewer],
      [created.id, other.admin],
    ] as const) {
      const res = await h.call("GET", `/api/v1/pipelines/${id}`, { token });
      expect(res.status).toBe(404);
      expect(errorOf(res)).toEqual({ code: "not_found", message: `pipeline ${id} was not found` });
    }
  });
});

describe("PATCH /api/v1/pipelines/{id}", () => {
  const patch = (id: string, json: unknown, token = org.operator) =>
    h.call("PATCH", `/api/v1/pipelines/${id}`, { token, json });

  it("updates any subset of fields and validates the merged result", async () => {
    const { body: created } = await create(body({ name: "editable" }));
    h.clock.now = new Date(Date.now() + 60_000);
    try {
      const res = await patch(created.id, {
        name: "edited",
        batchSize: 500,
        stopOnError: false,
        entities: ["public.orders"],
      });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        id: created.id,
        name: "edited",
        batchSize: 500,
        stopOnError: false,
        entities: ["public.orders"],
        writeStrategy: "merge",
        entityConcurrency: 4,
        createdAt: created.createdAt,
        updatedAt: h.clock.now.toISOString(),
      });
      const [row] = await h.store.db.select().from(pipelines).where(eq(pipelines.id, created.id));
      expect(row).toMatchObject({
        name: "edited",
        batchSize: 500,
        stopOnError: false,
        entities: ["public.orders"],
      });
    } finally {
      h.clock.now = undefined;
    }
    expect((await patch(created.id, {})).status).toBe(200);

    const invalid: [unknown, number, string][] = [
      [{ targetEnvironmentId: env.prod }, 400, "the same environment"],
      [
        { entities: ["public.orders", "public.gone"] },
        400,
        "entity public.gone does not exist in source environment prod",
      ],
      [{ sourceEnvironmentId: env.bare }, 409, "has no entity snapshot yet"],
      [{ targetEnvironmentId: env.otherQa }, 400, `environment ${env.otherQa} was not found`],
      [{ action: "transform" }, 400, "action transform needs at least one transformation"],
      [{ batchSize: 0 }, 400, "batchSize"],
      [{ name: null }, 400, "name"],
      [{ owner: "me" }, 400, "owner: unknown field"],
      [{ name: "taken" }, 409, 'a pipeline named "taken" already exists'],
    ];
    for (const [json, status, text] of invalid) {
      const res = await patch(created.id, json);
      expect(res.status, JSON.stringify(json)).toBe(status);
      expect(errorOf(res).message).toContain(text);
    }
    const [row] = await h.store.db.select().from(pipelines).where(eq(pipelines.id, created.id));
    expect(row).toMatchObject({
      name: "edited",
      targetEnvironmentId: env.qa,
      batchSize: 500,
      action: "copy",
    });
  });

  it("fetches a new source's snapshot from its connected agent when none is cached yet", async () => {
    const created = (await create(body({ name: "switch source" }))).body;
    const fresh = await createEnvironment(org, "fresh-source");
    const refused = await patch(created.id, { sourceEnvironmentId: fresh });
    expect(refused.status).toBe(409);
    expect(errorOf(refused).message).toContain("no agent of it is connected");
    h.agents.connected.add(fresh);
    try {
      const res = await patch(created.id, { sourceEnvironmentId: fresh });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.sourceEnvironmentId).toBe(fresh);
      expect(h.agents.calls).toContainEqual({ method: "describeSchema", environmentId: fresh });
    } finally {
      h.agents.connected.delete(fresh);
    }
  });

  it("answers 409 failed_precondition while an execution is queued or in progress", async () => {
    const { body: created } = await create(body({ name: "busy" }));
    const running = await insertExecution(created.id, "in_progress");
    const res = await patch(created.id, { batchSize: 10 });
    expect(res.status).toBe(409);
    expect(errorOf(res)).toMatchObject({
      code: "failed_precondition",
      message: expect.stringContaining(`pipeline busy has an execution in progress (${running})`),
      details: { executionId: running, status: "in_progress" },
    });
    await h.store.db.update(executions).set({ status: "completed" }).where(eq(executions.id, running));
    expect((await patch(created.id, { batchSize: 10 })).status).toBe(200);
  });

  it("waits for an execution being started concurrently, then refuses", async () => {
    const { body: created } = await create(body({ name: "racing" }));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let started!: () => void;
    const insertedUncommitted = new Promise<void>((resolve) => {
      started = resolve;
    });
    const starting = h.store.db.transaction(async (tx) => {
      await insertExecution(created.id, "queued", new Date(), tx);
      started();
      await gate;
    });
    await insertedUncommitted;
    const patching = patch(created.id, { batchSize: 10 });
    // Without the row lock the update would commit now, before the execution does.
    await new Promise((resolve) => setTimeout(resolve, 150));
    release();
    await starting;
    const res = await patching;
    expect(res.status).toBe(409);
    expect(errorOf(res).code).toBe("failed_precondition");
    const [row] = await h.store.db.select().from(pipelines).where(eq(pipelines.id, created.id));
    expect(row!.batchSize).toBe(DEFAULT_BATCH_SIZE);
  });

  it("needs the operator role and the pipeline's organisation", async () => {
    const { body: created } = await create(body({ name: "guarded" }));
    expect((await patch(created.id, { batchSize: 7 }, org.viewer)).status).toBe(403);
    const foreign = await patch(created.id, { batchSize: 7 }, other.admin);
    expect(foreign.status).toBe(404);
    expect((await patch("nope", { batchSize: 7 })).status).toBe(404);
    const [row] = await h.store.db.select().from(pipelines).where(eq(pipelines.id, created.id));
    expect(row!.batchSize).toBe(DEFAULT_BATCH_SIZE);
  });
});

describe("DELETE /api/v1/pipelines/{id}", () => {
  const remove = (id: string, token = org.admin) => h.call("DELETE", `/api/v1/pipelines/${id}`, { token });
  const stored = async (id: string) => h.store.db.select().from(pipelines).where(eq(pipelines.id, id));

  it("deletes a pipeline and its run history (admin only)", async () => {
    const { body: created } = await create(body({ name: "doomed" }));
    const execution = await insertExecution(created.id, "failed");
    expect((await remove(created.id, org.operator)).status).toBe(403);
    expect((await remove(created.id, other.admin)).status).toBe(404);
    expect(await stored(created.id)).toHaveLength(1);

    const res = await remove(created.id);
    expect(res.status).toBe(204);
    expect(res.body).toBeUndefined();
    expect(await stored(created.id)).toEqual([]);
    expect(await h.store.db.select().from(executions).where(eq(executions.id, execution))).toEqual([]);
    expect((await h.call("GET", `/api/v1/pipelines/${created.id}`, { token: org.viewer })).status).toBe(404);
    expect((await remove(created.id)).status).toBe(404);
    expect((await remove("not-a-uuid")).status).toBe(404);
  });

  it("answers 409 failed_precondition while an execution is queued", async () => {
    const { body: created } = await create(body({ name: "queued-delete" }));
    const queued = await insertExecution(created.id, "queued");
    const res = await remove(created.id);
    expect(res.status).toBe(409);
    expect(errorOf(res)).toMatchObject({
      code: "failed_precondition",
      details: { executionId: queued, status: "queued" },
    });
    expect(await stored(created.id)).toHaveLength(1);
  });
});
