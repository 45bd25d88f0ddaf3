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
  const deferred = new Set(plan.deferred.map((d) => `${d.entity}/${d.reference}`));
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

function plan(entities: EntitySnapshot[], allEntities?: EntitySnapshot[]): DependencyPlan {
  const input: PlanInput = allEntities ? { entities, allEntities } : { entities };
  const result = planDependencies(input);
  expectValidLevels(input, result);
  return result;
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

    it("keeps a NOT NULL self-reference and warns instead of deferring", () => {
      const result = plan([ent("nodes", [{ name: "nodes_parent_fk", fields: ["parent_id"], to: "nodes" }])]);
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
      const result = plan([e]);
      expect(result.selfReferences).toEqual([]);
      expect(result.warnings.map((w) => w.code)).toEqual(["self_reference"]);
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
      expect(result.cycles).toEqual([{ entities: [p("accounts"), p("contacts")], resolvedBy: [deferred] }]);
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

    it("fails with failed_precondition naming the cycle when no reference is nullable", () => {
      const error = thrown(() =>
        planDependencies({
          entities: [
            ent("contacts", [{ fields: ["account_id"], to: "accounts" }]),
            ent("accounts", [{ fields: ["contact_id"], to: "contacts" }]),
          ],
        }),
      );
      expect(isDrayError(error) && error.code).toBe("failed_precondition");
      const e = error as Error & { details: unknown };
      expect(e.message).toBe(
        "cannot order entities: cycle public.accounts → public.contacts → public.accounts has no nullable reference " +
          "to defer; make one of its reference fields nullable or leave one entity out",
      );
      expect(e.details).toEqual({ reason: "unresolvable_cycle", cycle: [p("accounts"), p("contacts")] });
    });

    it("names the cycle in reference order for a longer NOT NULL cycle", () => {
      const error = thrown(() =>
        planDependencies({
          entities: [
            ent("a", [{ fields: ["c_id"], to: "c" }]),
            ent("b", [{ fields: ["a_id"], to: "a" }]),
            ent("c", [{ fields: ["b_id"], to: "b" }]),
          ],
        }),
      );
      expect((error as Error).message).toContain("cycle public.a → public.c → public.b → public.a");
      expect((error as { details: unknown }).details).toEqual({
        reason: "unresolvable_cycle",
        cycle: [p("a"), p("c"), p("b")],
      });
    });

    it("fails on the NOT NULL sub-cycle that remains after deferring what it can", () => {
      const error = thrown(() =>
        planDependencies({
          entities: [
            ent("a", [{ fields: ["b_id"], to: "b", nullable: true }]),
            ent("b", [
              { fields: ["a_id"], to: "a" },
              { fields: ["c_id"], to: "c" },
            ]),
            ent("c", [{ fields: ["b_id"], to: "b" }]),
          ],
        }),
      );
      expect((error as { details: unknown }).details).toEqual({
        reason: "unresolvable_cycle",
        cycle: [p("b"), p("c")],
      });
    });

    it("treats a composite reference with a NOT NULL field as not deferrable", () => {
      const a = ent("a", [{ name: "a_fk", fields: ["b_org", "b_id"], to: "b" }]);
      a.fields.find((f) => f.name === "b_org")!.nullable = true;
      const error = thrown(() =>
        planDependencies({ entities: [a, ent("b", [{ fields: ["a_id"], to: "a" }])] }),
      );
      expect(isDrayError(error) && error.code).toBe("failed_precondition");
    });

    it("treats a reference field missing from the snapshot as NOT NULL", () => {
      const a = ent("a", [{ fields: ["b_id"], to: "b", nullable: true }]);
      a.fields = a.fields.filter((f) => f.name !== "b_id");
      const error = thrown(() =>
        planDependencies({ entities: [a, ent("b", [{ fields: ["a_id"], to: "a" }])] }),
      );
      expect(isDrayError(error) && error.code).toBe("failed_precondition");
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

    it("warns about entities without a primary key but still plans them", () => {
      const result = plan([ent("logs", [], { primaryKey: [] }), ent("accounts")]);
      expect(result.levels).toEqual([[p("accounts"), p("logs")]]);
      expect(result.warnings).toEqual([
        {
          code: "missing_primary_key",
          entity: p("logs"),
          message: expect.stringContaining("no primary key"),
        },
      ]);
    });

    it("orders warnings by entity, then reference", () => {
      const result = plan([
        ent("z", [{ name: "z_fk", fields: ["x_id"], to: "x" }]),
        ent(
          "b",
          [
            { name: "b_2", fields: ["y_id"], to: "y" },
            { name: "b_1", fields: ["x_id"], to: "x" },
          ],
          { primaryKey: [] },
        ),
      ]);
      expect(
        result.warnings.map((w) => [w.entity, w.code, (w.details as { reference?: string })?.reference]),
      ).toEqual([
        [p("b"), "missing_primary_key", undefined],
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
        const n = 2 + Math.floor(random() * 8);
        const entities = Array.from({ length: n }, (_, i) => {
          const refs: RefSpec[] = [];
          for (let j = 0; j < n; j++) {
            if (j !== i && random() < 0.3) {
              refs.push({
                name: `e${i}_e${j}_fk`,
                fields: [`e${j}_id`],
                to: `e${j}`,
                nullable: random() < 0.7,
              });
            }
          }
          return ent(`e${i}`, refs);
        });
        let result: DependencyPlan;
        try {
          result = plan(entities);
        } catch (error) {
          expect(isDrayError(error) && error.code).toBe("failed_precondition");
          continue;
        }
        for (const d of result.deferred) {
          const e = entities.find((x) => x.entity === d.entity)!;
          expect(d.fields.every((f) => e.fields.find((x) => x.name === f)!.nullable)).toBe(true);
        }
        // Restoring any single cycle deferral must reintroduce a cycle (inclusion-minimal).
        for (const d of result.deferred) {
          const rest = result.deferred.filter((x) => x !== d);
          const restored = entities.map((e) => ({
            ...e,
            fields: e.fields.map((f) => ({
              ...f,
              nullable: rest.some((r) => r.entity === e.entity && r.fields.includes(f.name)),
            })),
          }));
          expect(() => planDependencies({ entities: restored })).toThrow(/cannot order entities/);
        }
      }
    });
  });
});

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
