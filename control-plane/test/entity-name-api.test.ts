/**
 * Issue 9, security 7: entity names are unambiguous at the API. Two tables
 * `"sch.ema"."t"` and `"sch"."ema.t"` used to share the name `sch.ema.t`; now
 * both are listed under distinct canonical names, each can be selected in a
 * pipeline (by canonical name, fully quoted name or `{ schema, table }`), the
 * plan shows them apart, and the ambiguous unquoted name is refused.
 */
import type { Entity } from "@dray/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { entitySnapshotOf } from "../src/gateway/environment-agents-impl.js";
import { type ApiHarness, createTestDatabase, errorOf, openApiHarness } from "./api-test-harness.js";

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let h: ApiHarness;
let org: Awaited<ReturnType<ApiHarness["tenant"]>>;
const env = { source: "", target: "" };

/** A described table as the agent sends it, with `id` and an optional reference. */
function described(
  schema: string,
  name: string,
  references: Array<{ schema: string; name: string }> = [],
): Entity {
  const field = (f: string) => ({
    name: f,
    type: "bigint",
    nullable: f !== "id",
    hasDefault: false,
    generated: false,
  });
  return {
    schema,
    name,
    fields: [field("id"), ...references.map((_, i) => field(`ref${i}`))],
    primaryKey: ["id"],
    references: references.map((r, i) => ({
      name: `${name}_ref${i}_fkey`,
      fields: [`ref${i}`],
      referencedEntity: r,
      referencedFields: ["id"],
    })),
    estimatedRows: 10n,
  } as unknown as Entity;
}

beforeAll(async () => {
  database = await createTestDatabase();
  h = await openApiHarness(database.url);
  org = await h.tenant("entity-names");
  // Wire entities through the gateway's conversion, as a real agent's description would be.
  h.agents.snapshot = {
    capturedAt: "2026-05-01T10:00:00.000Z",
    fingerprint: "fp-dots",
    entities: [
      described("sch.ema", "t"),
      described("sch", "ema.t", [{ schema: "sch.ema", name: "t" }]),
      described("public", 'say "hi"'),
    ].map(entitySnapshotOf),
  };
  for (const name of ["source", "target"] as const) {
    const res = await h.call("POST", "/api/v1/environments", { token: org.operator, json: { name } });
    expect(res.status).toBe(201);
    env[name] = res.body.environment.id;
    h.agents.connected.add(env[name]);
    const entities = await h.call("GET", `/api/v1/environments/${env[name]}/entities?refresh=true`, {
      token: org.operator,
    });
    expect(entities.status).toBe(200);
  }
});
afterAll(async () => {
  await h?.close();
  await database?.drop();
});

const pipeline = (name: string, entities: unknown[]) =>
  h.call("POST", "/api/v1/pipelines", {
    token: org.operator,
    json: {
      name,
      sourceEnvironmentId: env.source,
      targetEnvironmentId: env.target,
      writeStrategy: "merge",
      entities,
    },
  });

describe("entity names at the API", () => {
  it("lists the two tables under distinct canonical names, references included", async () => {
    const res = await h.call("GET", `/api/v1/environments/${env.source}/entities`, { token: org.viewer });
    expect(res.status).toBe(200);
    const names = res.body.entities.map((e: { entity: string }) => e.entity);
    expect(names).toEqual(expect.arrayContaining(['"sch.ema".t', 'sch."ema.t"', 'public."say ""hi"""']));
    expect(new Set(names).size).toBe(names.length);
    const child = res.body.entities.find((e: { entity: string }) => e.entity === 'sch."ema.t"');
    expect(child).toMatchObject({ schema: "sch", name: "ema.t" });
    expect(child.references[0].referencedEntity).toBe('"sch.ema".t');
  });

  it("selects each table exactly, whichever accepted form names it", async () => {
    const quoted = await pipeline("fully quoted", ['"sch.ema"."t"']);
    expect(quoted.status).toBe(201);
    expect(quoted.body.entities).toEqual(['"sch.ema".t']);

    const parts = await pipeline("by parts", [{ schema: "sch", table: "ema.t" }]);
    expect(parts.status).toBe(201);
    expect(parts.body.entities).toEqual(['sch."ema.t"']);

    const both = await pipeline("both", ['sch."ema.t"', '"sch.ema".t', 'public."say ""hi"""']);
    expect(both.status, JSON.stringify(both.body)).toBe(201);
    expect(both.body.entities).toHaveLength(3);
    expect(new Set(both.body.entities).size).toBe(3);

    const plan = await h.call("GET", `/api/v1/pipelines/${both.body.id}/plan`, { token: org.viewer });
    expect(plan.status).toBe(200);
    // The child references the parent: two levels, parent first, each under its own name.
    expect(plan.body.levels.flat()).toEqual(expect.arrayContaining(['"sch.ema".t', 'sch."ema.t"']));
    const levelOf = (entity: string) =>
      plan.body.entities.find((e: { entity: string }) => e.entity === entity)?.level as number;
    expect(levelOf('"sch.ema".t')).toBeLessThan(levelOf('sch."ema.t"'));
  });

  it("refuses the ambiguous unquoted name, naming it and showing the quoted alternatives", async () => {
    const res = await pipeline("ambiguous", ["sch.ema.t"]);
    expect(res.status).toBe(400);
    const error = errorOf(res);
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toContain("entities.0: entity sch.ema.t is ambiguous");
    expect(error.message).toContain('sch."ema.t"');
    expect(error.message).toContain('"sch.ema".t');
  });

  it("counts two spellings of one table as a duplicate", async () => {
    const res = await pipeline("duplicate", ['"sch.ema".t', '"sch.ema"."t"']);
    expect(res.status).toBe(400);
    expect(errorOf(res).message).toContain('"sch.ema".t');
  });

  it("refuses a malformed object name naming the field", async () => {
    const res = await pipeline("bad object", [{ schema: "sch", table: "" }]);
    expect(res.status).toBe(400);
    expect(errorOf(res).message).toContain("entities.0");
    const extra = await pipeline("extra key", [{ schema: "sch", table: "t", column: "x" }]);
    expect(extra.status).toBe(400);
  });

  it("filters an execution's errors and batches by any accepted form of a name", async () => {
    const res = await h.call(
      "GET",
      `/api/v1/executions/00000000-0000-4000-8000-000000000000/errors?entity=${encodeURIComponent("sch.ema.t")}`,
      { token: org.viewer },
    );
    expect(res.status).toBe(400);
    expect(errorOf(res).message).toContain("ambiguous");
    const fine = await h.call(
      "GET",
      `/api/v1/executions/00000000-0000-4000-8000-000000000000/batches?entity=${encodeURIComponent('"sch"."ema.t"')}`,
      { token: org.viewer },
    );
    expect(fine.status).toBe(404);
  });
});
