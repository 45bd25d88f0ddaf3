import { isDrayError } from "@dray/common";
import { describe, expect, it } from "vitest";
import type { EntitySnapshot } from "../environments/schema-snapshot.js";
import { type DependencyPlan, estimatedTotal, type PlanInput, planDependencies } from "./dependency-plan.js";

interface RefSpec {
  name?: string;
  fields: string[];
  to: string;
  nullable?: boolean;
  toFields?: string[];
}

/** An entity `public.<name>` with an `id` primary key and one field per reference field. */
function ent(name: string, refs: RefSpec[] = [], extra: Partial<EntitySnapshot> = {}): EntitySnapshot {
  const fields: EntitySnapshot["fields"] = [
    { name: "id", type: "bigint", nullable: false, hasDefault: false, generated: false },
  ];
  for (const r of refs) {
    for (const f of r.fields) {
      if (!fields.some((x) => x.name === f)) {
        fields.push({
          name: f,
          type: "bigint",
          nullable: r.nullable ?? false,
          hasDefault: false,
          generated: false,
        });
      }
    }
  }
  return {
    entity: `public.${name}`,
    schema: "public",
    name,
    fields,
    primaryKey: ["id"],
    references: refs.map((r) => ({
      name: r.name ?? `${name}_${r.fields.join("_")}_fkey`,
      fields: r.fields,
      referencedEntity: `public.${r.to}`,
      referencedFields: r.toFields ?? r.fields.map(() => "id"),
    })),
    estimatedRows: 100,
    ...extra,
  };
}

const p = (name: string) => `public.${name}`;

function levelOf(plan: DependencyPlan): Map<string, number> {
  const out = new Map<string, number>();
  plan.levels.forEach((level, i) => {
    for (const e of level) out.set(e, i);
  });
  return out;
}

/** Every entity appears exactly once, and every kept (non-deferred, non-self) edge points to an earlier level. */
function expectValidLevels(input: PlanInput, plan: DependencyPlan): void {
  const all = plan.levels.flat();
  expect(new Set(all).size).toBe(all.length);
  expect([...all].sort()).toEqual([...new Set(input.entities.map((e) => e.entity))].sort());
  for (const level of plan.levels) expect(level).toEqual([...level].sort());
  const levels = levelOf(plan);
  const deferred = new Set([...plan.deferred, ...plan.postponed].map((d) => `${d.entity}/${d.reference}`));
  for (const e of input.entities) {
    for (const r of e.references) {
      if (r.referencedEntity === e.entity || !levels.has(r.referencedEntity)) continue;
      if (deferred.has(`${e.entity}/${r.name}`)) continue;
      expect(levels.get(r.referencedEntity)!, `${e.entity} → ${r.referencedEntity}`).toBeLessThan(
        levels.get(e.entity)!,
      );
    }
  }
}

function plan(
  entities: EntitySnapshot[],
  allEntities?: EntitySnapshot[],
  options: Pick<PlanInput, "writeStrategy" | "targetTriggers" | "loadOrder"> = {},
): DependencyPlan {
  const input: PlanInput = allEntities ? { entities, allEntities, ...options } : { entities, ...options };
  const result = planDependencies(input);
  expect(result.blocking).toEqual([]);
  expectValidLevels(input, result);
  return result;
}

/** The plan under targetTriggers "fire" (nothing postponed), blocking problems included. */
function planFiring(entities: EntitySnapshot[]): DependencyPlan {
  return planDependencies({ entities, targetTriggers: "fire" });
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected a throw");
}

/** Small deterministic PRNG (mulberry32) so property tests are reproducible. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const chain = () => [
  ent("accounts"),
  ent("contacts", [{ fields: ["account_id"], to: "accounts" }]),
  ent("opportunities", [{ fields: ["contact_id"], to: "contacts" }]),
  ent("activities", [{ fields: ["opportunity_id"], to: "opportunities" }]),
];

describe("planDependencies", () => {
  it("orders a reference chain into one level per entity, parents first", () => {
    const result = plan(chain());
    expect(result.levels).toEqual([
      [p("accounts")],
      [p("contacts")],
      [p("opportunities")],
      [p("activities")],
    ]);
    expect(result.deferred).toEqual([]);
    expect(result.cycles).toEqual([]);
    expect(result.selfReferences).toEqual([]);
    expect(result.warnings).toEqual([]);
  });

  it("puts independent entities in the same level, sorted", () => {
    const result = plan([
      ent("zebras"),
      ent("apples"),
      ent("orders", [
        { fields: ["zebra_id"], to: "zebras" },
        { fields: ["apple_id"], to: "apples" },
      ]),
      ent("mangos"),
    ]);
    expect(result.levels).toEqual([[p("apples"), p("mangos"), p("zebras")], [p("orders")]]);
  });

  it("places an entity one level below its deepest parent", () => {
    const result = plan([
      ent("a"),
      ent("b", [{ fields: ["a_id"], to: "a" }]),
      ent("c", [
        { fields: ["a_id"], to: "a" },
        { fields: ["b_id"], to: "b" },
      ]),
    ]);
    expect(result.levels).toEqual([[p("a")], [p("b")], [p("c")]]);
  });

  it("rejects an empty selection with invalid_argument", () => {
    const error = thrown(() => planDependencies({ entities: [] }));
    expect(isDrayError(error) && error.code).toBe("invalid_argument");
    expect((error as Error).message).toBe("select at least one entity");
  });

  it("plans a single entity and ignores a duplicate selection", () => {
    const result = plan([ent("a"), ent("a")]);
    expect(result.levels).toEqual([[p("a")]]);
  });

  describe("self-references", () => {
    it("defers a nullable self-reference without blocking the order", () => {
      const employees = ent("employees", [
        { name: "employees_manager_fk", fields: ["manager_id"], to: "employees", nullable: true },
      ]);
      const result = plan([employees, ent("badges", [{ fields: ["employee_id"], to: "employees" }])]);
      const expected = {
        entity: p("employees"),
        reference: "employees_manager_fk",
        fields: ["manager_id"],
        referencedEntity: p("employees"),
      };
      expect(result.levels).toEqual([[p("employees")], [p("badges")]]);
      expect(result.selfReferences).toEqual([expected]);
      expect(result.deferred).toEqual([expected]);
      expect(result.cycles).toEqual([]);
      expect(result.warnings).toEqual([]);
    });

    it("postpones a NOT NULL self-reference with targetTriggers off (checked after load)", () => {
      const result = plan([ent("nodes", [{ name: "nodes_parent_fk", fields: ["parent_id"], to: "nodes" }])]);
      expect(result.levels).toEqual([[p("nodes")]]);
      expect(result.selfReferences).toEqual([]);
      expect(result.deferred).toEqual([]);
      expect(result.postponed).toEqual([
        {
          entity: p("nodes"),
          reference: "nodes_parent_fk",
          fields: ["parent_id"],
          referencedEntity: p("nodes"),
        },
      ]);
      expect(result.warnings).toEqual([]);
    });

    it("keeps a NOT NULL self-reference and warns instead of deferring with targetTriggers fire", () => {
      const result = planFiring([
        ent("nodes", [{ name: "nodes_parent_fk", fields: ["parent_id"], to: "nodes" }]),
      ]);
      expect(result.blocking).toEqual([]);
      expect(result.postponed).toEqual([]);
      expect(result.levels).toEqual([[p("nodes")]]);
      expect(result.selfReferences).toEqual([]);
      expect(result.deferred).toEqual([]);
      expect(result.warnings).toHaveLength(1);
      const [warning] = result.warnings;
      expect(warning).toMatchObject({ code: "self_reference", entity: p("nodes") });
      expect(warning!.message).toContain("parent_id");
      expect(warning!.message).toContain("lower key");
      expect(warning!.message).toContain("rejected");
    });

    it("only defers a composite self-reference when all its fields are nullable", () => {
      const e = ent("tree", [{ name: "tree_parent_fk", fields: ["parent_org", "parent_id"], to: "tree" }]);
      e.fields.find((f) => f.name === "parent_org")!.nullable = true;
      const result = planFiring([e]);
      expect(result.selfReferences).toEqual([]);
      expect(result.warnings.map((w) => w.code)).toEqual(["self_reference"]);
      expect(plan([e]).postponed.map((r) => r.reference)).toEqual(["tree_parent_fk"]);
    });
  });

  describe("cycles", () => {
    it("breaks a two-entity cycle on the nullable side", () => {
      const result = plan([
        ent("accounts", [
          {
            name: "accounts_primary_contact_fk",
            fields: ["primary_contact_id"],
            to: "contacts",
            nullable: true,
          },
        ]),
        ent("contacts", [{ name: "contacts_account_fk", fields: ["account_id"], to: "accounts" }]),
      ]);
      const deferred = {
        entity: p("accounts"),
        reference: "accounts_primary_contact_fk",
        fields: ["primary_contact_id"],
        referencedEntity: p("contacts"),
      };
      expect(result.deferred).toEqual([deferred]);
      expect(result.cycles).toEqual([
        {
          entities: [p("accounts"), p("contacts")],
          handling: "deferred_references",
          resolvedBy: [deferred],
          postponed: [],
        },
      ]);
      expect(result.postponed).toEqual([]);
      expect(result.levels).toEqual([[p("accounts")], [p("contacts")]]);
    });

    it("breaks it on the other side when only that side is nullable", () => {
      const result = plan([
        ent("accounts", [{ fields: ["primary_contact_id"], to: "contacts" }]),
        ent("contacts", [{ fields: ["account_id"], to: "accounts", nullable: true }]),
      ]);
      expect(result.deferred.map((d) => d.entity)).toEqual([p("contacts")]);
      expect(result.levels).toEqual([[p("contacts")], [p("accounts")]]);
    });

    it("defers a single reference when both sides are nullable (first by entity, then constraint)", () => {
      const result = plan([
        ent("b", [{ name: "b_fk", fields: ["a_id"], to: "a", nullable: true }]),
        ent("a", [{ name: "a_fk", fields: ["b_id"], to: "b", nullable: true }]),
      ]);
      expect(result.deferred.map((d) => d.reference)).toEqual(["a_fk"]);
      expect(result.levels).toEqual([[p("a")], [p("b")]]);
    });

    it("breaks a three-entity cycle with one deferred reference", () => {
      const result = plan([
        ent("a", [{ name: "a_fk", fields: ["b_id"], to: "b" }]),
        ent("b", [{ name: "b_fk", fields: ["c_id"], to: "c" }]),
        ent("c", [{ name: "c_fk", fields: ["a_id"], to: "a", nullable: true }]),
      ]);
      expect(result.deferred.map((d) => d.reference)).toEqual(["c_fk"]);
      expect(result.cycles).toHaveLength(1);
      expect(result.cycles[0]!.entities).toEqual([p("a"), p("b"), p("c")]);
      expect(result.levels).toEqual([[p("c")], [p("b")], [p("a")]]);
    });

    it("defers only what is needed in a three-entity cycle where every reference is nullable", () => {
      const result = plan([
        ent("a", [{ name: "a_fk", fields: ["b_id"], to: "b", nullable: true }]),
        ent("b", [{ name: "b_fk", fields: ["c_id"], to: "c", nullable: true }]),
        ent("c", [{ name: "c_fk", fields: ["a_id"], to: "a", nullable: true }]),
      ]);
      expect(result.deferred.map((d) => d.reference)).toEqual(["a_fk"]);
      expect(result.levels).toEqual([[p("a")], [p("c")], [p("b")]]);
    });

    it("does not defer a nullable reference that a NOT NULL reference between the same entities makes useless", () => {
      const result = plan([
        ent("a", [
          { name: "a_fk1", fields: ["b1"], to: "b", nullable: true },
          { name: "a_fk2", fields: ["b2"], to: "b" },
        ]),
        ent("b", [{ name: "b_fk", fields: ["a_id"], to: "a", nullable: true }]),
      ]);
      expect(result.deferred.map((d) => d.reference)).toEqual(["b_fk"]);
      expect(result.levels).toEqual([[p("b")], [p("a")]]);
    });

    it("handles two cycles sharing an entity and entities hanging off them", () => {
      const result = plan([
        ent("a", [{ name: "a_fk", fields: ["b_id"], to: "b", nullable: true }]),
        ent("b", [
          { name: "b_a_fk", fields: ["a_id"], to: "a" },
          { name: "b_c_fk", fields: ["c_id"], to: "c" },
        ]),
        ent("c", [{ name: "c_fk", fields: ["b_id"], to: "b", nullable: true }]),
        ent("d", [{ fields: ["a_id"], to: "a" }]),
        ent("root"),
        ent("e", [{ fields: ["root_id"], to: "root" }]),
      ]);
      expect(result.cycles).toHaveLength(1);
      expect(result.cycles[0]!.entities).toEqual([p("a"), p("b"), p("c")]);
      expect(result.deferred.map((d) => d.reference)).toEqual(["a_fk", "c_fk"]);
      expect(result.levels).toEqual([
        [p("a"), p("c"), p("root")],
        [p("b"), p("d"), p("e")],
      ]);
    });

    it("reports separate cycles separately, sorted", () => {
      const result = plan([
        ent("y", [{ fields: ["z_id"], to: "z", nullable: true }]),
        ent("z", [{ fields: ["y_id"], to: "y" }]),
        ent("a", [{ fields: ["b_id"], to: "b", nullable: true }]),
        ent("b", [{ fields: ["a_id"], to: "a" }]),
      ]);
      expect(result.cycles.map((c) => c.entities)).toEqual([
        [p("a"), p("b")],
        [p("y"), p("z")],
      ]);
      expect(result.deferred.map((d) => d.entity)).toEqual([p("a"), p("y")]);
    });

    it("blocks a cycle without a nullable reference under targetTriggers fire, naming it and the way out", () => {
      const result = planFiring([
        ent("contacts", [{ fields: ["account_id"], to: "accounts" }]),
        ent("accounts", [{ fields: ["contact_id"], to: "contacts" }]),
      ]);
      expect(result.levels).toEqual([]);
      expect(result.cycles).toEqual([]);
      expect(result.blocking).toEqual([
        {
          code: "unresolvable_cycle",
          message:
            "cannot order entities: the references of cycle public.accounts → public.contacts → public.accounts " +
            "(accounts_contact_id_fkey, contacts_account_id_fkey) are all NOT NULL, so no load order satisfies " +
            "them while the target's triggers fire: set the pipeline's targetTriggers to \"off\" (the default), " +
            "which loads the cycle and checks those references once its tables are loaded, or make one of " +
            "those reference fields nullable, or leave one entity out",
          details: {
            reason: "unresolvable_cycle",
            cycle: [p("accounts"), p("contacts")],
            references: ["accounts_contact_id_fkey", "contacts_account_id_fkey"],
          },
        },
      ]);
    });

    it("names the cycle in reference order for a longer NOT NULL cycle", () => {
      const result = planFiring([
        ent("a", [{ fields: ["c_id"], to: "c" }]),
        ent("b", [{ fields: ["a_id"], to: "a" }]),
        ent("c", [{ fields: ["b_id"], to: "b" }]),
      ]);
      expect(result.blocking[0]!.message).toContain("cycle public.a → public.c → public.b → public.a");
      expect(result.blocking[0]!.details).toMatchObject({
        reason: "unresolvable_cycle",
        cycle: [p("a"), p("c"), p("b")],
      });
    });

    it("blocks on the NOT NULL sub-cycle that remains after deferring what it can (fire)", () => {
      const result = planFiring([
        ent("a", [{ fields: ["b_id"], to: "b", nullable: true }]),
        ent("b", [
          { fields: ["a_id"], to: "a" },
          { fields: ["c_id"], to: "c" },
        ]),
        ent("c", [{ fields: ["b_id"], to: "b" }]),
      ]);
      expect(result.blocking.map((b) => b.details)).toEqual([
        { reason: "unresolvable_cycle", cycle: [p("b"), p("c")], references: ["b_c_id_fkey", "c_b_id_fkey"] },
      ]);
    });

    it("treats a composite reference with a NOT NULL field as not deferrable", () => {
      const a = ent("a", [{ name: "a_fk", fields: ["b_org", "b_id"], to: "b" }]);
      a.fields.find((f) => f.name === "b_org")!.nullable = true;
      const result = planFiring([a, ent("b", [{ fields: ["a_id"], to: "a" }])]);
      expect(result.blocking.map((b) => b.code)).toEqual(["unresolvable_cycle"]);
    });

    it("treats a reference field missing from the snapshot as NOT NULL", () => {
      const a = ent("a", [{ fields: ["b_id"], to: "b", nullable: true }]);
      a.fields = a.fields.filter((f) => f.name !== "b_id");
      const result = planFiring([a, ent("b", [{ fields: ["a_id"], to: "a" }])]);
      expect(result.blocking.map((b) => b.code)).toEqual(["unresolvable_cycle"]);
    });
  });

  describe("NOT NULL cycles", () => {
    // store.manager_staff_id NOT NULL → staff, staff.store_id NOT NULL → store (the Sakila pair).
    const sakila = () => [
      ent("store", [{ name: "store_manager_staff_id_fkey", fields: ["manager_staff_id"], to: "staff" }]),
      ent("staff", [{ name: "staff_store_id_fkey", fields: ["store_id"], to: "store" }]),
    ];
    const managerRef = {
      entity: p("staff"),
      reference: "staff_store_id_fkey",
      fields: ["store_id"],
      referencedEntity: p("store"),
    };

    it("postpones one NOT NULL reference of store ↔ staff with targetTriggers off (the default)", () => {
      for (const result of [plan(sakila()), plan(sakila(), undefined, { targetTriggers: "off" })]) {
        expect(result.cycles).toEqual([
          {
            entities: [p("staff"), p("store")],
            handling: "checked_after_load",
            resolvedBy: [],
            postponed: [managerRef],
          },
        ]);
        expect(result.postponed).toEqual([managerRef]);
        expect(result.deferred).toEqual([]);
        expect(result.levels).toEqual([[p("staff")], [p("store")]]);
      }
    });

    it("blocks store ↔ staff with targetTriggers fire, saying targetTriggers off loads it", () => {
      const result = planFiring(sakila());
      expect(result.levels).toEqual([]);
      expect(result.postponed).toEqual([]);
      expect(result.blocking).toHaveLength(1);
      expect(result.blocking[0]).toMatchObject({
        code: "unresolvable_cycle",
        details: { cycle: [p("staff"), p("store")] },
      });
      expect(result.blocking[0]!.message).toContain("are all NOT NULL");
      expect(result.blocking[0]!.message).toContain('targetTriggers to "off" (the default)');
    });

    it("uses the nullable reference of a mixed cycle and postpones nothing", () => {
      const result = plan([
        ent("store", [
          { name: "store_manager_fk", fields: ["manager_staff_id"], to: "staff", nullable: true },
        ]),
        ent("staff", [{ name: "staff_store_fk", fields: ["store_id"], to: "store" }]),
      ]);
      expect(result.cycles).toEqual([
        {
          entities: [p("staff"), p("store")],
          handling: "deferred_references",
          resolvedBy: [expect.objectContaining({ reference: "store_manager_fk" })],
          postponed: [],
        },
      ]);
      expect(result.postponed).toEqual([]);
      expect(result.deferred.map((d) => d.reference)).toEqual(["store_manager_fk"]);
    });

    it("defers the nullable references it can and postpones only the NOT NULL ones still needed", () => {
      // a → b nullable, b ⇄ c NOT NULL, b → a NOT NULL: deferring a.b_id leaves b ⇄ c.
      const result = plan([
        ent("a", [{ fields: ["b_id"], to: "b", nullable: true }]),
        ent("b", [
          { fields: ["a_id"], to: "a" },
          { fields: ["c_id"], to: "c" },
        ]),
        ent("c", [{ fields: ["b_id"], to: "b" }]),
      ]);
      expect(result.cycles).toHaveLength(1);
      expect(result.cycles[0]!.handling).toBe("checked_after_load");
      expect(result.cycles[0]!.resolvedBy.map((r) => r.reference)).toEqual(["a_b_id_fkey"]);
      expect(result.cycles[0]!.postponed.map((r) => r.reference)).toEqual(["b_c_id_fkey"]);
    });

    it("postpones a minimal set: one reference for a three-entity NOT NULL ring", () => {
      const result = plan([
        ent("a", [{ name: "a_fk", fields: ["b_id"], to: "b" }]),
        ent("b", [{ name: "b_fk", fields: ["c_id"], to: "c" }]),
        ent("c", [{ name: "c_fk", fields: ["a_id"], to: "a" }]),
      ]);
      expect(result.postponed.map((r) => r.reference)).toEqual(["a_fk"]);
      expect(result.levels).toEqual([[p("a")], [p("c")], [p("b")]]);
    });

    it("reports two independent unresolvable cycles at once under fire", () => {
      const result = planFiring([
        ...sakila(),
        ent("eggs", [{ fields: ["chicken_id"], to: "chickens" }]),
        ent("chickens", [{ fields: ["egg_id"], to: "eggs" }]),
        ent("films"),
      ]);
      expect(result.levels).toEqual([]);
      expect(result.blocking.map((b) => (b.details as { cycle: string[] }).cycle)).toEqual([
        [p("chickens"), p("eggs")],
        [p("staff"), p("store")],
      ]);
    });

    it("does not defer the nullable reference of an entity without a row key: postpones it (off) or blocks (fire)", () => {
      const entities = () => [
        ent("a", [{ name: "a_fk", fields: ["b_id"], to: "b", nullable: true }], { primaryKey: [] }),
        ent("b", [{ name: "b_fk", fields: ["a_id"], to: "a" }]),
      ];
      const off = plan(entities(), undefined, { writeStrategy: "insert" });
      expect(off.deferred).toEqual([]);
      expect(off.postponed.map((r) => r.reference)).toEqual(["a_fk"]);
      const fire = planDependencies({
        entities: entities(),
        writeStrategy: "insert",
        targetTriggers: "fire",
      });
      expect(fire.blocking.map((b) => b.code)).toEqual(["unresolvable_cycle"]);
      expect(fire.blocking[0]!.message).toContain("without a row key");
    });
  });

  describe("row keys", () => {
    it("blocks every entity without a row key at once when the strategy is merge", () => {
      const result = planDependencies({
        entities: [
          ent("logs", [], { primaryKey: [] }),
          ent("audit", [], { primaryKey: [], rowKey: [] }),
          ent("accounts"),
        ],
        writeStrategy: "merge",
      });
      expect(result.levels).toEqual([[p("accounts"), p("audit"), p("logs")]]);
      expect(result.warnings).toEqual([]);
      expect(result.blocking).toEqual([
        {
          code: "no_row_key",
          entity: p("audit"),
          message:
            "public.audit has no primary key and no unique key of NOT NULL fields, so writeStrategy merge cannot " +
            "match its rows in the target: add a primary key or a unique key of NOT NULL fields to public.audit, " +
            "or copy it with writeStrategy clean or insert",
          details: { writeStrategy: "merge" },
        },
        expect.objectContaining({ code: "no_row_key", entity: p("logs") }),
      ]);
    });

    it("only warns about an entity without a row key with insert or clean", () => {
      for (const writeStrategy of ["insert", "clean"] as const) {
        const result = plan([ent("logs", [], { primaryKey: [] }), ent("accounts")], undefined, {
          writeStrategy,
        });
        expect(result.warnings).toEqual([
          {
            code: "no_row_key",
            entity: p("logs"),
            message: expect.stringContaining("read in one consistent snapshot in physical order"),
            details: { writeStrategy },
          },
        ]);
      }
    });

    it("uses the row key when there is no primary key, and the primary key when a snapshot has no row key", () => {
      const keyedByUnique = ent("users", [{ fields: ["team_id"], to: "users", nullable: true }], {
        primaryKey: [],
        rowKey: ["email"],
      });
      const result = plan([keyedByUnique], undefined, { writeStrategy: "merge" });
      expect(result.warnings).toEqual([]);
      // It has a key to back-fill by, so its nullable self-reference is deferred.
      expect(result.deferred.map((d) => d.entity)).toEqual([p("users")]);
      expect(plan([ent("old")], undefined, { writeStrategy: "merge" }).blocking).toEqual([]);
    });
  });

  describe("composite references", () => {
    it("orders entities by a multi-field reference", () => {
      const result = plan([
        ent("lines", [{ fields: ["order_org", "order_no"], to: "orders", toFields: ["org", "no"] }]),
        ent("orders", [], { primaryKey: ["org", "no"] }),
      ]);
      expect(result.levels).toEqual([[p("orders")], [p("lines")]]);
    });

    it("defers an all-nullable composite reference to break a cycle, listing every field", () => {
      const result = plan([
        ent("a", [{ name: "a_fk", fields: ["b_org", "b_id"], to: "b", nullable: true }]),
        ent("b", [{ name: "b_fk", fields: ["a_org", "a_id"], to: "a" }]),
      ]);
      expect(result.deferred).toEqual([
        { entity: p("a"), reference: "a_fk", fields: ["b_org", "b_id"], referencedEntity: p("b") },
      ]);
    });
  });

  describe("warnings", () => {
    it("warns about a reference to an unselected entity without creating an edge", () => {
      const accounts = ent("accounts");
      const contacts = ent("contacts", [
        { name: "contacts_account_fk", fields: ["account_id"], to: "accounts" },
      ]);
      const result = plan([contacts], [accounts, contacts]);
      expect(result.levels).toEqual([[p("contacts")]]);
      expect(result.warnings).toHaveLength(1);
      const [warning] = result.warnings;
      expect(warning).toMatchObject({
        code: "unselected_reference",
        entity: p("contacts"),
        details: {
          reference: "contacts_account_fk",
          fields: ["account_id"],
          referencedEntity: p("accounts"),
          inSourceSnapshot: true,
        },
      });
      expect(warning!.message).toContain("public.accounts");
      expect(warning!.message).toContain("account_id");
      expect(warning!.message).toContain("rejected by the target's foreign key");
      expect(warning!.message).not.toContain("not in the source snapshot");
    });

    it("says when the unselected referenced entity is not in the snapshot at all", () => {
      const contacts = ent("contacts", [{ fields: ["account_id"], to: "accounts" }]);
      const result = plan([contacts], [contacts]);
      expect(result.warnings[0]!.message).toContain("not in the source snapshot");
      expect(result.warnings[0]!.details).toMatchObject({ inSourceSnapshot: false });
    });

    it("orders warnings by entity, then reference", () => {
      const result = plan(
        [
          ent("z", [{ name: "z_fk", fields: ["x_id"], to: "x" }]),
          ent(
            "b",
            [
              { name: "b_2", fields: ["y_id"], to: "y" },
              { name: "b_1", fields: ["x_id"], to: "x" },
            ],
            { primaryKey: [] },
          ),
        ],
        undefined,
        { writeStrategy: "insert" },
      );
      expect(
        result.warnings.map((w) => [w.entity, w.code, (w.details as { reference?: string })?.reference]),
      ).toEqual([
        [p("b"), "no_row_key", undefined],
        [p("b"), "unselected_reference", "b_1"],
        [p("b"), "unselected_reference", "b_2"],
        [p("z"), "unselected_reference", "z_fk"],
      ]);
    });
  });

  describe("determinism and invariants", () => {
    const mixed = () => [
      ...chain(),
      ent("employees", [{ fields: ["manager_id"], to: "employees", nullable: true }]),
      ent("x", [{ name: "x_fk", fields: ["y_id"], to: "y", nullable: true }]),
      ent("y", [
        { name: "y_fk", fields: ["x_id"], to: "x", nullable: true },
        { name: "y_acc_fk", fields: ["account_id"], to: "accounts" },
      ]),
      ent(
        "w",
        [
          { name: "w_2", fields: ["users_id"], to: "users" },
          { name: "w_1", fields: ["x_id"], to: "x" },
        ],
        { primaryKey: [] },
      ),
    ];

    it("gives the same plan whatever the order of entities and references", () => {
      const expected = planDependencies({ entities: mixed() });
      const random = rng(7);
      for (let i = 0; i < 20; i++) {
        const entities = shuffle(mixed(), random).map((e) => ({
          ...e,
          references: shuffle(e.references, random),
        }));
        expect(planDependencies({ entities })).toEqual(expected);
      }
    });

    it("keeps the level invariant on random acyclic graphs", () => {
      const random = rng(42);
      for (let run = 0; run < 50; run++) {
        const n = 2 + Math.floor(random() * 12);
        const entities = Array.from({ length: n }, (_, i) => {
          const refs: RefSpec[] = [];
          for (let j = 0; j < i; j++) {
            if (random() < 0.3) refs.push({ name: `e${i}_e${j}_fk`, fields: [`e${j}_id`], to: `e${j}` });
          }
          return ent(`e${i}`, refs);
        });
        const result = plan(shuffle(entities, random));
        expect(result.deferred).toEqual([]);
        expect(result.cycles).toEqual([]);
        // Longest-path levels: every entity beyond level 0 has a parent exactly one level up.
        const levels = levelOf(result);
        for (const e of entities) {
          const level = levels.get(e.entity)!;
          if (level === 0) continue;
          expect(e.references.some((r) => levels.get(r.referencedEntity) === level - 1)).toBe(true);
        }
      }
    });

    it("resolves random cyclic graphs of nullable references into valid levels with a minimal deferral set", () => {
      const random = rng(2024);
      for (let run = 0; run < 50; run++) {
        const entities = randomCyclicGraph(random);
        const result = planFiring(entities);
        if (result.blocking.length > 0) {
          expect(result.blocking.every((b) => b.code === "unresolvable_cycle")).toBe(true);
          expect(result.levels).toEqual([]);
          continue;
        }
        expectValidLevels({ entities }, result);
        expect(result.postponed).toEqual([]);
        for (const d of result.deferred) {
          const e = entities.find((x) => x.entity === d.entity)!;
          expect(d.fields.every((f) => e.fields.find((x) => x.name === f)!.nullable)).toBe(true);
        }
        // Restoring any single deferral must reintroduce a cycle (inclusion-minimal).
        for (const d of result.deferred) {
          const rest = result.deferred.filter((x) => x !== d);
          expect(cyclic(entities, rest)).toBe(true);
        }
      }
    });

    it("resolves every random cyclic graph with targetTriggers off, preferring nullable references, minimally", () => {
      const random = rng(99);
      for (let run = 0; run < 80; run++) {
        const entities = randomCyclicGraph(random);
        const result = plan(entities);
        const removed = [...result.deferred, ...result.postponed];
        expect(cyclic(entities, removed)).toBe(false);
        for (const r of removed) {
          expect(
            cyclic(
              entities,
              removed.filter((x) => x !== r),
            ),
          ).toBe(true);
        }
        for (const d of result.postponed) {
          const e = entities.find((x) => x.entity === d.entity)!;
          expect(d.fields.some((f) => !e.fields.find((x) => x.name === f)!.nullable)).toBe(true);
        }
        // Whenever nullable references suffice (fire plans it), nothing is postponed and the plans agree.
        const firing = planFiring(entities);
        if (firing.blocking.length === 0) {
          expect(result.postponed).toEqual([]);
          expect(result.deferred).toEqual(firing.deferred);
          expect(result.levels).toEqual(firing.levels);
        } else {
          expect(result.postponed.length).toBeGreaterThan(0);
        }
      }
    });
  });
});

/** 2–9 entities `e<i>` with random references between distinct entities, 70 % of them nullable. */
function randomCyclicGraph(random: () => number): EntitySnapshot[] {
  const n = 2 + Math.floor(random() * 8);
  return Array.from({ length: n }, (_, i) => {
    const refs: RefSpec[] = [];
    for (let j = 0; j < n; j++) {
      if (j !== i && random() < 0.3) {
        refs.push({ name: `e${i}_e${j}_fk`, fields: [`e${j}_id`], to: `e${j}`, nullable: random() < 0.7 });
      }
    }
    return ent(`e${i}`, refs);
  });
}

/** Whether the references between distinct entities, less `removed`, still form a cycle. */
function cyclic(
  entities: readonly EntitySnapshot[],
  removed: readonly { entity: string; reference: string }[],
): boolean {
  const gone = new Set(removed.map((r) => `${r.entity}/${r.reference}`));
  const next = new Map<string, string[]>();
  for (const e of entities) {
    next.set(
      e.entity,
      e.references
        .filter((r) => r.referencedEntity !== e.entity && !gone.has(`${e.entity}/${r.name}`))
        .map((r) => r.referencedEntity),
    );
  }
  const state = new Map<string, "open" | "done">();
  const visit = (n: string): boolean => {
    if (state.get(n) === "open") return true;
    if (state.get(n) === "done") return false;
    state.set(n, "open");
    const found = (next.get(n) ?? []).some(visit);
    state.set(n, "done");
    return found;
  };
  return entities.some((e) => visit(e.entity));
}

describe("estimatedTotal", () => {
  it("sums estimated rows, counting unknown (negative) estimates as zero", () => {
    expect(
      estimatedTotal([
        ent("a", [], { estimatedRows: 10 }),
        ent("b", [], { estimatedRows: -1 }),
        ent("c", [], { estimatedRows: 5 }),
      ]),
    ).toBe(15);
    expect(estimatedTotal([])).toBe(0);
  });
});

describe("planDependencies with loadOrder parallel", () => {
  const parallel = (entities: EntitySnapshot[], allEntities?: EntitySnapshot[]) =>
    plan(entities, allEntities, { loadOrder: "parallel", targetTriggers: "off" });
  const ref = (entity: string, reference: string, fields: string[], to: string) => ({
    entity: p(entity),
    reference,
    fields,
    referencedEntity: p(to),
  });

  it("loads a chain a → b → c in one level, postponing both references", () => {
    const entities = [
      ent("c", [{ name: "c_b_fk", fields: ["b_id"], to: "b" }]),
      ent("a"),
      ent("b", [{ name: "b_a_fk", fields: ["a_id"], to: "a", nullable: true }]),
    ];
    const result = parallel(entities);
    expect(result.levels).toEqual([[p("a"), p("b"), p("c")]]);
    expect(result.postponed).toEqual([ref("b", "b_a_fk", ["a_id"], "a"), ref("c", "c_b_fk", ["b_id"], "b")]);
    expect(result.deferred).toEqual([]);
    expect(result.cycles).toEqual([]);
    expect(result.warnings).toEqual([]);
    // The same chain under dependencies takes three levels and postpones nothing.
    const ordered = plan(entities, undefined, { loadOrder: "dependencies" });
    expect(ordered.levels).toEqual([[p("a")], [p("b")], [p("c")]]);
    expect(ordered.postponed).toEqual([]);
  });

  it("postpones every reference of a NOT NULL 2-cycle and of a nullable 2-cycle, deferring nothing", () => {
    const result = parallel([
      ent("store", [{ name: "store_manager_fk", fields: ["manager_id"], to: "staff" }]),
      ent("staff", [{ name: "staff_store_fk", fields: ["store_id"], to: "store" }]),
      ent("emp", [{ name: "emp_dept_fk", fields: ["dept_id"], to: "dept", nullable: true }]),
      ent("dept", [{ name: "dept_head_fk", fields: ["head_id"], to: "emp", nullable: true }]),
    ]);
    expect(result.levels).toEqual([[p("dept"), p("emp"), p("staff"), p("store")]]);
    expect(result.cycles).toEqual([]);
    expect(result.deferred).toEqual([]);
    expect(result.selfReferences).toEqual([]);
    expect(result.postponed).toEqual([
      ref("dept", "dept_head_fk", ["head_id"], "emp"),
      ref("emp", "emp_dept_fk", ["dept_id"], "dept"),
      ref("staff", "staff_store_fk", ["store_id"], "store"),
      ref("store", "store_manager_fk", ["manager_id"], "staff"),
    ]);
    expect(result.warnings).toEqual([]);
  });

  it("postpones nullable and NOT NULL self-references without a self_reference warning", () => {
    const result = parallel([
      ent("nodes", [{ name: "nodes_parent_fk", fields: ["parent_id"], to: "nodes" }]),
      ent("employees", [
        { name: "employees_manager_fk", fields: ["manager_id"], to: "employees", nullable: true },
      ]),
    ]);
    expect(result.levels).toEqual([[p("employees"), p("nodes")]]);
    expect(result.postponed).toEqual([
      ref("employees", "employees_manager_fk", ["manager_id"], "employees"),
      ref("nodes", "nodes_parent_fk", ["parent_id"], "nodes"),
    ]);
    expect(result.selfReferences).toEqual([]);
    expect(result.deferred).toEqual([]);
    expect(result.warnings).toEqual([]);
  });

  it("still warns about a reference to an unselected entity, and does not postpone it", () => {
    const accounts = ent("accounts");
    const contacts = ent("contacts", [
      { name: "contacts_account_fk", fields: ["account_id"], to: "accounts" },
    ]);
    const notes = ent("notes", [{ name: "notes_contact_fk", fields: ["contact_id"], to: "contacts" }]);
    const result = parallel([contacts, notes], [accounts, contacts, notes]);
    expect(result.levels).toEqual([[p("contacts"), p("notes")]]);
    expect(result.postponed).toEqual([ref("notes", "notes_contact_fk", ["contact_id"], "contacts")]);
    expect(result.warnings.map((w) => [w.code, w.entity])).toEqual([["unselected_reference", p("contacts")]]);
  });

  it("keeps the row key rules: an entity without one blocks merge only", () => {
    const logs = ent("logs", [{ name: "logs_account_fk", fields: ["account_id"], to: "accounts" }], {
      primaryKey: [],
    });
    const entities = [ent("accounts"), logs];
    const merged = planDependencies({ entities, loadOrder: "parallel", writeStrategy: "merge" });
    expect(merged.blocking.map((b) => [b.code, b.entity])).toEqual([["no_row_key", p("logs")]]);
    const result = plan(entities, undefined, { loadOrder: "parallel", writeStrategy: "insert" });
    expect(result.levels).toEqual([[p("accounts"), p("logs")]]);
    expect(result.postponed).toEqual([ref("logs", "logs_account_fk", ["account_id"], "accounts")]);
    expect(result.warnings.map((w) => [w.code, w.entity])).toEqual([["no_row_key", p("logs")]]);
  });

  it("blocks parallel with targetTriggers fire, saying triggers must be off", () => {
    const result = planDependencies({
      entities: [ent("a"), ent("b", [{ name: "b_a_fk", fields: ["a_id"], to: "a" }])],
      loadOrder: "parallel",
      targetTriggers: "fire",
    });
    expect(result.blocking).toHaveLength(1);
    expect(result.blocking[0]).toMatchObject({ code: "parallel_needs_triggers_off" });
    expect(result.blocking[0]!.entity).toBeUndefined();
    expect(result.blocking[0]!.message).toContain('targetTriggers "off"');
    expect(result.blocking[0]!.message).toContain('loadOrder to "dependencies"');
    expect(result.postponed).toEqual([]);
  });

  it("plans as dependencies when loadOrder is left out", () => {
    const entities = [ent("a"), ent("b", [{ name: "b_a_fk", fields: ["a_id"], to: "a" }])];
    expect(planDependencies({ entities })).toEqual(planDependencies({ entities, loadOrder: "dependencies" }));
  });
});
