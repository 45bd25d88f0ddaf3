/**
 * Issue 10: real production schemas plan as they copy. The agent's row key and
 * entity kind reach the entities API and the plan; a pipeline's targetTriggers
 * (default "off") lets a cycle of NOT NULL references load with one reference
 * checked after load, and blocks it with "fire"; a table without a row key
 * blocks only merge; and every blocking problem is reported at once.
 */
import type { Entity } from "@dray/proto";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { entitySnapshotOf } from "../src/gateway/environment-agents-impl.js";
import { pipelines } from "../src/store/index.js";
import { type ApiHarness, createTestDatabase, errorOf, openApiHarness } from "./api-test-harness.js";

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let h: ApiHarness;
let org: Awaited<ReturnType<ApiHarness["tenant"]>>;
const env = { source: "", target: "" };

interface Spec {
  name: string;
  /** NOT NULL reference fields `{ field: referenced table }`. */
  refs?: Record<string, string>;
  primaryKey?: string[];
  rowKey?: string[];
  kind?: string;
}

/** A described table of schema `public` as the agent sends it (row_key and kind included). */
function described({
  name,
  refs = {},
  primaryKey = ["id"],
  rowKey = primaryKey,
  kind = "table",
}: Spec): Entity {
  const field = (f: string) => ({
    name: f,
    type: "bigint",
    nullable: false,
    hasDefault: false,
    generated: false,
  });
  return {
    schema: "public",
    name,
    fields: [field("id"), field("email"), ...Object.keys(refs).map(field)],
    primaryKey,
    rowKey,
    kind,
    references: Object.entries(refs).map(([f, to]) => ({
      name: `${name}_${f}_fkey`,
      fields: [f],
      referencedEntity: { schema: "public", name: to },
      referencedFields: ["id"],
    })),
    estimatedRows: 10n,
    estimateSource: "",
  } as unknown as Entity;
}

/** Sakila's store ↔ staff (both NOT NULL), a second NOT NULL cycle, a heap, a unique-keyed table, a partitioned one. */
const tables: Spec[] = [
  { name: "store", refs: { manager_staff_id: "staff" } },
  { name: "staff", refs: { store_id: "store" } },
  { name: "eggs", refs: { chicken_id: "chickens" } },
  { name: "chickens", refs: { egg_id: "eggs" } },
  { name: "event_log", primaryKey: [], rowKey: [] },
  { name: "subscribers", primaryKey: [], rowKey: ["email"] },
  { name: "measurements", kind: "partitioned" },
  { name: "cities", kind: "inheritance_parent" },
];
const all = tables.map((t) => `public.${t.name}`);

beforeAll(async () => {
  database = await createTestDatabase();
  h = await openApiHarness(database.url);
  org = await h.tenant("real-schemas");
  // Through the gateway's conversion, as a real agent's description would be.
  h.agents.snapshot = {
    capturedAt: "2026-05-01T10:00:00.000Z",
    fingerprint: "fp-real",
    entities: tables.map(described).map(entitySnapshotOf),
  };
  for (const name of ["source", "target"] as const) {
    const res = await h.call("POST", "/api/v1/environments", { token: org.operator, json: { name } });
    expect(res.status).toBe(201);
    env[name] = res.body.environment.id;
    h.agents.connected.add(env[name]);
  }
});
afterAll(async () => {
  await h?.close();
  await database?.drop();
});

async function createPipeline(name: string, body: Record<string, unknown>) {
  const res = await h.call("POST", "/api/v1/pipelines", {
    token: org.operator,
    json: { name, sourceEnvironmentId: env.source, targetEnvironmentId: env.target, entities: all, ...body },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}
const patch = async (id: string, json: Record<string, unknown>) => {
  const res = await h.call("PATCH", `/api/v1/pipelines/${id}`, { token: org.operator, json });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
};
const plan = async (id: string) => {
  const res = await h.call("GET", `/api/v1/pipelines/${id}/plan`, { token: org.viewer });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
};
const cycleOf = (b: { details?: unknown }) =>
  (b.details as { cycle?: string[] } | undefined)?.cycle?.join(" ⇄ ");

describe("real schemas in the entities API and the plan", () => {
  it("serves each entity's row key and kind", async () => {
    const res = await h.call("GET", `/api/v1/environments/${env.source}/entities?refresh=true`, {
      token: org.operator,
    });
    expect(res.status).toBe(200);
    const byName = new Map(
      res.body.entities.map((e: { entity: string; rowKey: string[]; kind: string }) => [e.entity, e]),
    );
    expect(byName.get("public.store")).toMatchObject({ primaryKey: ["id"], rowKey: ["id"], kind: "table" });
    expect(byName.get("public.event_log")).toMatchObject({ primaryKey: [], rowKey: [], kind: "table" });
    expect(byName.get("public.subscribers")).toMatchObject({ primaryKey: [], rowKey: ["email"] });
    expect(byName.get("public.measurements")).toMatchObject({ kind: "partitioned" });
    expect(byName.get("public.cities")).toMatchObject({ kind: "inheritance_parent" });
  });

  it("stores targetTriggers (default off), shows it, and refuses an unknown value", async () => {
    const created = await createPipeline("defaults", { writeStrategy: "insert" });
    expect(created.targetTriggers).toBe("off");
    const fired = await createPipeline("fired", { writeStrategy: "insert", targetTriggers: "fire" });
    expect(fired.targetTriggers).toBe("fire");
    const [row] = await h.store.db
      .select({ targetTriggers: pipelines.targetTriggers })
      .from(pipelines)
      .where(and(eq(pipelines.id, fired.id), eq(pipelines.organisationId, org.id)));
    expect(row).toEqual({ targetTriggers: "fire" });
    expect((await patch(fired.id, { targetTriggers: "off" })).targetTriggers).toBe("off");
    const shown = await h.call("GET", `/api/v1/pipelines/${fired.id}`, { token: org.viewer });
    expect(shown.body.targetTriggers).toBe("off");

    const bad = await h.call("PATCH", `/api/v1/pipelines/${fired.id}`, {
      token: org.operator,
      json: { targetTriggers: "sometimes" },
    });
    expect(bad.status).toBe(400);
    expect(errorOf(bad).code).toBe("invalid_argument");
  });

  it("with merge and targetTriggers off: loads both NOT NULL cycles and blocks only the table without a row key", async () => {
    const { id } = await createPipeline("merge off", { writeStrategy: "merge" });
    const body = await plan(id);
    expect(body.targetTriggers).toBe("off");
    expect(body.targetTriggersNote).toBe(
      "off: rows are written with the target's user triggers and rules off (like pg_restore --disable-triggers), " +
        "and the agent checks foreign keys itself; 2 references of NOT NULL cycles or self-references are written " +
        "unchecked and validated once their tables are loaded",
    );
    expect(
      body.cycles.map((c: { entities: string[]; handling: string }) => [c.entities, c.handling]),
    ).toEqual([
      [["public.chickens", "public.eggs"], "checked_after_load"],
      [["public.staff", "public.store"], "checked_after_load"],
    ]);
    expect(body.postponed).toEqual([
      {
        entity: "public.chickens",
        reference: "chickens_egg_id_fkey",
        fields: ["egg_id"],
        referencedEntity: "public.eggs",
      },
      {
        entity: "public.staff",
        reference: "staff_store_id_fkey",
        fields: ["store_id"],
        referencedEntity: "public.store",
      },
    ]);
    expect(body.cycles[1].postponed).toEqual([body.postponed[1]]);
    expect(body.deferred).toEqual([]);
    expect(body.blocking).toEqual([
      {
        code: "no_row_key",
        entity: "public.event_log",
        message:
          "public.event_log has no primary key and no unique key of NOT NULL fields, so writeStrategy merge cannot " +
          "match its rows in the target: add a primary key or a unique key of NOT NULL fields to public.event_log, " +
          "or copy it with writeStrategy clean or insert",
        details: { writeStrategy: "merge" },
      },
    ]);
    expect(
      body.entities.map((e: { entity: string; rowKey: string[]; kind: string }) => [
        e.entity,
        e.rowKey,
        e.kind,
      ]),
    ).toEqual([
      ["public.store", ["id"], "table"],
      ["public.staff", ["id"], "table"],
      ["public.eggs", ["id"], "table"],
      ["public.chickens", ["id"], "table"],
      ["public.event_log", [], "table"],
      ["public.subscribers", ["email"], "table"],
      ["public.measurements", ["id"], "partitioned"],
      ["public.cities", ["id"], "inheritance_parent"],
    ]);
  });

  it("with merge and targetTriggers fire: reports every blocking problem at once", async () => {
    const { id } = await createPipeline("merge fire", { writeStrategy: "merge", targetTriggers: "fire" });
    const body = await plan(id);
    expect(body.targetTriggers).toBe("fire");
    expect(body.levels).toEqual([]);
    expect(body.postponed).toEqual([]);
    expect(
      body.blocking.map((b: { code: string; entity?: string; details?: unknown }) => [
        b.code,
        b.entity ?? cycleOf(b),
      ]),
    ).toEqual([
      ["unresolvable_cycle", "public.chickens ⇄ public.eggs"],
      ["unresolvable_cycle", "public.staff ⇄ public.store"],
      ["no_row_key", "public.event_log"],
    ]);
    for (const cycle of body.blocking.slice(0, 2)) {
      expect(cycle.message).toContain("are all NOT NULL");
      expect(cycle.message).toContain('set the pipeline\'s targetTriggers to "off" (the default)');
    }
  });

  it("with insert: a table without a row key is a warning, and fire still blocks the cycles", async () => {
    const { id } = await createPipeline("insert", { writeStrategy: "insert", targetTriggers: "fire" });
    let body = await plan(id);
    expect(body.blocking.map((b: { code: string }) => b.code)).toEqual([
      "unresolvable_cycle",
      "unresolvable_cycle",
    ]);
    expect(body.warnings).toContainEqual({
      code: "no_row_key",
      entity: "public.event_log",
      message: expect.stringContaining("read in one consistent snapshot in physical order"),
      details: { writeStrategy: "insert" },
    });
    await patch(id, { targetTriggers: "off" });
    body = await plan(id);
    expect(body.blocking).toEqual([]);
    expect(body.levels.flat().sort()).toEqual([...all].sort());
  });
});
