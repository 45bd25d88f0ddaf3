import { describe, expect, it } from "vitest";
import { buildEntities, fingerprintOf, mergeReferences, stableStringify } from "./describe-schema.js";

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
      validated: false,
    });
    expect(b.estimatedRows).toBe(10);
    expect(entities[0]!.estimatedRows).toBe(-1);
    expect(entities[2]!.estimatedRows).toBe(0);
    expect(b.rowKey).toEqual(["id"]);
    expect(b.kind).toBe("table");
  });

  it("takes the row key from the primary key, else the narrowest unique index of NOT NULL fields", () => {
    const field = (name: string, nullable: boolean) => ({
      name,
      type: "integer",
      nullable,
      hasDefault: false,
      generated: false,
    });
    const base = {
      schema: "s",
      name: "t",
      reltuples: 1,
      kind: "inheritance_parent" as const,
      fields: [field("a", false), field("b", false), field("c", true)],
      constraints: [],
    };
    const [withPk] = buildEntities([
      {
        ...base,
        constraints: [
          {
            name: "t_pkey",
            type: "p" as const,
            fields: ["b"],
            refSchema: null,
            refName: null,
            refFields: null,
          },
        ],
        unique_indexes: [
          { name: "a_key", primary: false, columns: ["a"] },
          { name: "t_pkey", primary: true, columns: ["b"] },
        ],
      },
    ]);
    expect(withPk).toMatchObject({ primaryKey: ["b"], rowKey: ["b"], kind: "inheritance_parent" });
    const [unique] = buildEntities([
      {
        ...base,
        unique_indexes: [
          { name: "z_ab", primary: false, columns: ["a", "b"] },
          { name: "y_b", primary: false, columns: ["b"] },
          { name: "x_c", primary: false, columns: ["c"] },
          { name: "w_nothing", primary: false, columns: null },
        ],
      },
    ]);
    expect(unique).toMatchObject({ primaryKey: [], rowKey: ["b"] });
    const [nullable] = buildEntities([
      { ...base, unique_indexes: [{ name: "x_c", primary: false, columns: ["c"] }] },
    ]);
    expect(nullable!.rowKey).toEqual([]);
  });
});

describe("mergeReferences", () => {
  const fk = (name: string, level: number, refName = "customer", fields = ["customer_id"]) => ({
    name,
    type: "f" as const,
    level,
    fields,
    refSchema: "s",
    refName,
    refFields: ["id"],
  });

  it("merges equal foreign keys of partitions under the first partition's name", () => {
    const refs = mergeReferences([
      fk("p2_fk", 1),
      fk("p1_fk", 1),
      fk("p1_staff_fk", 1, "staff", ["staff_id"]),
    ]);
    expect(refs).toEqual([
      {
        name: "p1_fk",
        fields: ["customer_id"],
        referencedEntity: { schema: "s", name: "customer" },
        referencedFields: ["id"],
        validated: false,
      },
      {
        name: "p1_staff_fk",
        fields: ["staff_id"],
        referencedEntity: { schema: "s", name: "staff" },
        referencedFields: ["id"],
        validated: false,
      },
    ]);
  });

  it("prefers the name of the foreign key declared on the table itself", () => {
    expect(mergeReferences([fk("a_part_fk", 2), fk("z_parent_fk", 0)]).map((r) => r.name)).toEqual([
      "z_parent_fk",
    ]);
  });

  it("calls a reference validated only when the table itself declares it and the catalog says so", () => {
    const validated = (level: number, flag: boolean | undefined) =>
      mergeReferences([{ ...fk("f", level), ...(flag === undefined ? {} : { validated: flag }) }])[0]!
        .validated;
    expect(validated(0, true)).toBe(true);
    expect(validated(0, false)).toBe(false);
    expect(validated(0, undefined)).toBe(false);
    // Declared on partitions only: some partition may lack it, so the source does not vouch for every row.
    expect(validated(1, true)).toBe(false);
  });

  it("keeps foreign keys that differ in fields or referenced entity apart", () => {
    expect(mergeReferences([fk("a", 1), fk("b", 1, "other"), fk("c", 1, "customer", ["x"])])).toHaveLength(3);
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
    const keyed = buildEntities([row("s", "a", 5)]);
    keyed[0]!.rowKey = [];
    expect(fingerprintOf(keyed)).not.toBe(fingerprintOf(base));
    const parent = buildEntities([row("s", "a", 5)]);
    parent[0]!.kind = "inheritance_parent";
    expect(fingerprintOf(parent)).not.toBe(fingerprintOf(base));
  });
});
