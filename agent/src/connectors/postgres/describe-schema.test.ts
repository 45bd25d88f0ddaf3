import { describe, expect, it } from "vitest";
import { buildEntities, fingerprintOf, stableStringify } from "./describe-schema.js";

const row = (schema: string, name: string, reltuples = -1) => ({
  schema,
  name,
  reltuples,
  fields: [{ name: "id", type: "bigint", nullable: false, hasDefault: false, generated: false }],
  constraints: [
    { name: "pk", type: "p" as const, fields: ["id"], refSchema: null, refName: null, refFields: null },
    { name: "z_fk", type: "f" as const, fields: ["id"], refSchema: "s", refName: "a", refFields: ["id"] },
    { name: "a_fk", type: "f" as const, fields: ["id"], refSchema: "s", refName: "b", refFields: ["id"] },
  ],
});

describe("buildEntities", () => {
  it("sorts by schema then name in code-point order and shapes keys and references", () => {
    const entities = buildEntities([row("s", "b", 10.4), row("S", "z"), row("s", "a", 0), row("s", "B")]);
    expect(entities.map((e) => `${e.schema}.${e.name}`)).toEqual(["S.z", "s.B", "s.a", "s.b"]);
    const b = entities[3]!;
    expect(b.primaryKey).toEqual(["id"]);
    expect(b.references.map((r) => r.name)).toEqual(["a_fk", "z_fk"]);
    expect(b.references[0]).toEqual({
      name: "a_fk",
      fields: ["id"],
      referencedEntity: { schema: "s", name: "b" },
      referencedFields: ["id"],
    });
    expect(b.estimatedRows).toBe(10);
    expect(entities[0]!.estimatedRows).toBe(-1);
    expect(entities[2]!.estimatedRows).toBe(0);
  });
});

describe("stableStringify and fingerprintOf", () => {
  it("sorts object keys at every level", () => {
    expect(stableStringify({ b: 1, a: { d: [2, { f: 1, e: 0 }], c: null } })).toBe(
      '{"a":{"c":null,"d":[2,{"e":0,"f":1}]},"b":1}',
    );
  });

  it("ignores row estimates but sees structural changes", () => {
    const base = buildEntities([row("s", "a", 5)]);
    const analysed = buildEntities([row("s", "a", 5000)]);
    expect(fingerprintOf(base)).toBe(fingerprintOf(analysed));
    expect(fingerprintOf(base)).toMatch(/^[0-9a-f]{64}$/);
    const widened = buildEntities([row("s", "a", 5)]);
    widened[0]!.fields.push({
      name: "extra",
      type: "integer",
      nullable: true,
      hasDefault: false,
      generated: false,
    });
    expect(fingerprintOf(widened)).not.toBe(fingerprintOf(base));
  });
});
