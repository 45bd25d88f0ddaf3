import { isDrayError } from "@dray/common";
import { describe, expect, it } from "vitest";
import type { EntitySnapshot, SchemaSnapshot } from "../environments/schema-snapshot.js";
import { assertRunnable, buildRunPlan, estimateSourceOf } from "./run-plan.js";

type Field = EntitySnapshot["fields"][number];
const field = (name: string, nullable = false, extra: Partial<Field> = {}): Field => ({
  name,
  type: "bigint",
  nullable,
  hasDefault: false,
  generated: false,
  ...extra,
});

/** `public.<name>` with an `id` key and one field per reference `{ field: [target, nullable] }`. */
function entity(
  name: string,
  refs: Record<string, [string, boolean]> = {},
  extra: Partial<EntitySnapshot> = {},
): EntitySnapshot {
  return {
    entity: `public.${name}`,
    schema: "public",
    name,
    fields: [field("id"), ...Object.entries(refs).map(([f, [, nullable]]) => field(f, nullable))],
    primaryKey: ["id"],
    references: Object.entries(refs).map(([f, [to]]) => ({
      name: `${name}_${f}_fkey`,
      fields: [f],
      referencedEntity: `public.${to}`,
      referencedFields: ["id"],
    })),
    estimatedRows: 10,
    ...extra,
  };
}

const snapshot = (...entities: EntitySnapshot[]): SchemaSnapshot => ({
  capturedAt: "2026-05-01T10:00:00.000Z",
  fingerprint: "fp",
  entities,
});

const crm = [
  entity("accounts", { parent_id: ["accounts", true] }, { estimatedRows: 100 }),
  entity("contacts", { account_id: ["accounts", false] }, { estimatedRows: 200 }),
  entity("opportunities", { contact_id: ["contacts", false] }, { estimatedRows: -1 }),
  entity("activities", { opportunity_id: ["opportunities", false] }, { estimatedRows: 400 }),
];
const crmNames = ["public.activities", "public.opportunities", "public.contacts", "public.accounts"];

describe("buildRunPlan", () => {
  it("orders a CRM chain in four levels and defers the nullable self-reference", () => {
    const plan = buildRunPlan(snapshot(...crm), snapshot(...crm), crmNames, {
      writeStrategy: "merge",
      targetName: "qa",
    });
    expect(plan.levels).toEqual([
      ["public.accounts"],
      ["public.contacts"],
      ["public.opportunities"],
      ["public.activities"],
    ]);
    expect(plan.deferred).toEqual([
      {
        entity: "public.accounts",
        reference: "accounts_parent_id_fkey",
        fields: ["parent_id"],
        referencedEntity: "public.accounts",
      },
    ]);
    expect(plan.blocking).toEqual([]);
    expect(plan.warnings).toEqual([
      {
        code: "estimate_unknown",
        message: expect.stringContaining("could not estimate the rows of public.opportunities"),
        details: { entities: ["public.opportunities"] },
      },
    ]);
    expect(plan.estimatedRecords).toBe(700);
    // Entities keep the pipeline's order.
    expect(plan.entities).toEqual([
      entry("public.activities", 3, 400),
      { ...entry("public.opportunities", 2, 0), estimateSource: "unknown" },
      entry("public.contacts", 1, 200),
      entry("public.accounts", 0, 100),
    ]);
    expect(() => assertRunnable(plan)).not.toThrow();
  });

  it("warns (without blocking) when the target has no snapshot", () => {
    const plan = buildRunPlan(snapshot(...crm), null, crmNames, { writeStrategy: "merge", targetName: "qa" });
    expect(plan.blocking).toEqual([]);
    expect(plan.warnings).toEqual([
      {
        code: "target_not_checked",
        message: expect.stringMatching(
          /^target environment qa has no entity snapshot yet and no agent of it is connected, so compatibility/,
        ),
      },
      expect.objectContaining({ code: "estimate_unknown" }),
    ]);
    expect(plan.entities.every((e) => !e.missingInTarget && e.fieldsMissingInTarget.length === 0)).toBe(true);
  });

  it("blocks on an unresolvable cycle instead of throwing", () => {
    const a = entity("a", { b_id: ["b", false] });
    const b = entity("b", { a_id: ["a", false] });
    const plan = buildRunPlan(snapshot(a, b), snapshot(a, b), ["public.a", "public.b"], {
      writeStrategy: "merge",
      targetTriggers: "fire",
    });
    expect(plan.levels).toEqual([]);
    expect(plan.blocking).toEqual([
      {
        code: "unresolvable_cycle",
        message: expect.stringContaining("are all NOT NULL"),
        details: {
          reason: "unresolvable_cycle",
          cycle: ["public.a", "public.b"],
          references: ["a_b_id_fkey", "b_a_id_fkey"],
        },
      },
    ]);
    expect(plan.entities.map((e) => e.level)).toEqual([null, null]);
    let thrown: unknown;
    try {
      assertRunnable(plan);
    } catch (error) {
      thrown = error;
    }
    expect(isDrayError(thrown) && thrown.code).toBe("failed_precondition");
  });

  it("blocks on an entity without a row key (merge) and on entities missing in the source", () => {
    const logs = entity("logs", {}, { primaryKey: [] });
    const plan = buildRunPlan(snapshot(logs), null, ["public.logs", "public.gone"], {
      writeStrategy: "merge",
      sourceName: "prod",
    });
    expect(plan.blocking.map((b) => [b.code, b.entity])).toEqual([
      ["entity_missing_in_source", "public.gone"],
      ["no_row_key", "public.logs"],
    ]);
    expect(plan.blocking[0]!.message).toContain(
      "entity public.gone does not exist in source environment prod",
    );
    expect(plan.entities[1]).toEqual({
      entity: "public.gone",
      level: null,
      estimatedRows: 0,
      estimateSource: "unknown",
      primaryKey: [],
      rowKey: [],
      kind: "table",
      missingInTarget: false,
      fieldsMissingInTarget: [],
    });
  });

  it("blocks on entities and fields missing in the target and on required target-only fields", () => {
    const source = snapshot(entity("accounts"), {
      ...entity("contacts", { account_id: ["accounts", true] }),
      fields: [
        field("id"),
        field("account_id", true),
        field("email", true),
        field("full", true, { generated: true }),
      ],
    });
    const target = snapshot({
      ...entity("contacts"),
      fields: [field("id"), field("tenant", false), field("note", false, { hasDefault: true })],
    });
    const plan = buildRunPlan(source, target, ["public.accounts", "public.contacts"], {
      writeStrategy: "merge",
      targetName: "qa",
    });
    expect(plan.blocking).toEqual([
      {
        code: "entity_missing_in_target",
        entity: "public.accounts",
        message:
          "entity public.accounts does not exist in target environment qa: create it there or remove it from the pipeline",
      },
      {
        code: "fields_missing_in_target",
        entity: "public.contacts",
        message: expect.stringContaining(
          "fields account_id, email of public.contacts do not exist in target environment qa",
        ),
        details: { fields: ["account_id", "email"] },
      },
      {
        code: "target_field_required",
        entity: "public.contacts",
        message: expect.stringContaining("NOT NULL field tenant without a default"),
        details: { fields: ["tenant"] },
      },
    ]);
    expect(plan.entities.map((e) => [e.entity, e.missingInTarget, e.fieldsMissingInTarget])).toEqual([
      ["public.accounts", true, []],
      ["public.contacts", false, ["account_id", "email"]],
    ]);
  });

  it("reports references to unselected entities as warnings", () => {
    const plan = buildRunPlan(snapshot(...crm), null, ["public.contacts"], { writeStrategy: "insert" });
    expect(plan.blocking).toEqual([]);
    expect(plan.warnings.map((w) => [w.code, w.entity])).toEqual([
      ["unselected_reference", "public.contacts"],
      ["target_not_checked", undefined],
    ]);
    expect(plan.warnings[1]!.message).toMatch(/^the target environment has no entity snapshot/);
  });
});

describe("buildRunPlan for real schemas", () => {
  const store = entity("store", { manager_staff_id: ["staff", false] });
  const staff = entity("staff", { store_id: ["store", false] });
  const logs = entity("logs", {}, { primaryKey: [], rowKey: [], kind: "partitioned" });
  const names = ["public.store", "public.staff", "public.logs"];

  it("loads a NOT NULL cycle with targetTriggers off and says so", () => {
    const plan = buildRunPlan(snapshot(store, staff, logs), snapshot(store, staff, logs), names, {
      writeStrategy: "insert",
      targetTriggers: "off",
    });
    expect(plan.blocking).toEqual([]);
    expect(plan.targetTriggers).toBe("off");
    expect(plan.targetTriggersNote).toBe(
      "off: rows are written with the target's user triggers and rules off (like pg_restore --disable-triggers), " +
        "and the agent checks foreign keys itself; 1 reference of NOT NULL cycles or self-references is written " +
        "unchecked and validated once its tables are loaded",
    );
    const postponed = {
      entity: "public.staff",
      reference: "staff_store_id_fkey",
      fields: ["store_id"],
      referencedEntity: "public.store",
    };
    expect(plan.postponed).toEqual([postponed]);
    expect(plan.cycles).toEqual([
      {
        entities: ["public.staff", "public.store"],
        handling: "checked_after_load",
        resolvedBy: [],
        postponed: [postponed],
      },
    ]);
    expect(plan.warnings.map((w) => [w.code, w.entity])).toEqual([["no_row_key", "public.logs"]]);
    expect(plan.entities.map((e) => [e.entity, e.rowKey, e.kind])).toEqual([
      ["public.store", ["id"], "table"],
      ["public.staff", ["id"], "table"],
      ["public.logs", [], "partitioned"],
    ]);
  });

  it("reports every blocking problem at once with merge and targetTriggers fire", () => {
    const eggs = entity("eggs", { chicken_id: ["chickens", false] });
    const chickens = entity("chickens", { egg_id: ["eggs", false] });
    const all = snapshot(store, staff, logs, eggs, chickens);
    const plan = buildRunPlan(all, all, [...names, "public.eggs", "public.chickens"], {
      writeStrategy: "merge",
      targetTriggers: "fire",
    });
    expect(plan.targetTriggersNote).toMatch(/^fire: /);
    expect(plan.levels).toEqual([]);
    expect(
      plan.blocking.map((b) => [b.code, b.entity ?? (b.details as { cycle: string[] }).cycle.join(",")]),
    ).toEqual([
      ["unresolvable_cycle", "public.chickens,public.eggs"],
      ["unresolvable_cycle", "public.staff,public.store"],
      ["no_row_key", "public.logs"],
    ]);
    expect(() => assertRunnable(plan)).toThrow(/public\.logs has no primary key/);
  });

  it("loads every entity at once with loadOrder parallel and says how many references are checked after", () => {
    const plan = buildRunPlan(snapshot(store, staff, logs), snapshot(store, staff, logs), names, {
      writeStrategy: "insert",
      loadOrder: "parallel",
    });
    expect(plan.blocking).toEqual([]);
    expect(plan.loadOrder).toBe("parallel");
    expect(plan.loadOrderNote).toBe(
      "parallel: every table loads at once, like pg_restore; the 2 references between selected tables are " +
        "checked once all are loaded (a violation fails the run and is listed by key)",
    );
    expect(plan.targetTriggersNote).toContain("2 references between selected tables are written unchecked");
    expect(plan.levels).toEqual([["public.logs", "public.staff", "public.store"]]);
    expect(plan.entities.map((e) => e.level)).toEqual([0, 0, 0]);
    expect(plan.cycles).toEqual([]);
    expect(plan.deferred).toEqual([]);
    expect(plan.postponed.map((r) => r.reference)).toEqual([
      "staff_store_id_fkey",
      "store_manager_staff_id_fkey",
    ]);
  });

  it("blocks loadOrder parallel with targetTriggers fire", () => {
    const a = entity("a");
    const b = entity("b", { a_id: ["a", false] });
    const plan = buildRunPlan(snapshot(a, b), snapshot(a, b), ["public.a", "public.b"], {
      writeStrategy: "merge",
      targetTriggers: "fire",
      loadOrder: "parallel",
    });
    expect(plan.blocking.map((b) => b.code)).toEqual(["parallel_needs_triggers_off"]);
    expect(plan.loadOrderNote).toMatch(/^parallel: cannot run with targetTriggers "fire"/);
    expect(() => assertRunnable(plan)).toThrow(/loadOrder "parallel" needs targetTriggers "off"/);
  });

  it("reads the primary key as the row key of a snapshot stored before row keys", () => {
    const plan = buildRunPlan(snapshot(entity("accounts")), null, ["public.accounts"], {
      writeStrategy: "merge",
    });
    expect(plan.blocking).toEqual([]);
    expect(plan.targetTriggers).toBe("off");
    expect(plan.loadOrder).toBe("dependencies");
    expect(plan.loadOrderNote).toMatch(/^dependencies: /);
    expect(plan.entities[0]).toMatchObject({ rowKey: ["id"], kind: "table" });
  });
});

describe("estimateSourceOf", () => {
  it("keeps the agent's label, defaults to statistics and marks a missing estimate unknown", () => {
    const labelled = (estimateSource: string) => ({ estimatedRows: 67_000, estimateSource });
    expect(estimateSourceOf(labelled("exact"))).toBe("exact");
    expect(estimateSourceOf(labelled("sampled"))).toBe("sampled");
    expect(estimateSourceOf(labelled("guessed"))).toBe("statistics");
    expect(estimateSourceOf({ estimatedRows: 12 })).toBe("statistics");
    expect(estimateSourceOf({ estimatedRows: -1 })).toBe("unknown");
  });

  it("shows the label of each planned entity", () => {
    const counted = Object.assign(entity("contacts", {}), { estimatedRows: 67_000, estimateSource: "exact" });
    const plan = buildRunPlan(snapshot(counted), null, ["public.contacts"], { writeStrategy: "insert" });
    expect(plan.entities[0]).toMatchObject({ estimatedRows: 67_000, estimateSource: "exact" });
    expect(plan.estimatedRecords).toBe(67_000);
  });
});

function entry(entity: string, level: number, estimatedRows: number) {
  return {
    entity,
    level,
    estimatedRows,
    estimateSource: "statistics",
    primaryKey: ["id"],
    rowKey: ["id"],
    kind: "table",
    missingInTarget: false,
    fieldsMissingInTarget: [],
  };
}

describe("buildRunPlan with data-quality rules", () => {
  const staff = entity("staff", { manager_id: ["staff", true], team_id: ["teams", true] });
  const teams = entity("teams");
  const names = ["public.teams", "public.staff"];

  it("lists each entity's rules", () => {
    const plan = buildRunPlan(snapshot(teams, staff), snapshot(teams, staff), names, {
      writeStrategy: "merge",
      qualityRules: [{ entity: "public.staff", field: "team_id", rule: "range", options: { min: 1 } }],
    });
    expect(plan.blocking).toEqual([]);
    expect(plan.entities.find((e) => e.entity === "public.staff")?.qualityRules).toEqual([
      { field: "team_id", rule: "range", options: { min: 1 } },
    ]);
    expect(plan.entities.find((e) => e.entity === "public.teams")?.qualityRules).toBeUndefined();
  });

  it("blocks a rule on a reference deferred to break a cycle, naming the field", () => {
    const plan = buildRunPlan(snapshot(teams, staff), snapshot(teams, staff), names, {
      writeStrategy: "merge",
      qualityRules: [{ entity: "public.staff", field: "manager_id", rule: "range", options: { max: 3 } }],
    });
    expect(plan.deferred.map((d) => d.fields)).toEqual([["manager_id"]]);
    expect(plan.blocking).toHaveLength(1);
    expect(plan.blocking[0]).toMatchObject({ code: "quality_rule_invalid", entity: "public.staff" });
    expect(plan.blocking[0]!.message).toContain(
      "data-quality rule range on public.staff.manager_id cannot be checked",
    );
  });

  it("blocks a rule that no longer holds against the source, saying the schema changed", () => {
    const plan = buildRunPlan(snapshot(teams, staff), snapshot(teams, staff), names, {
      writeStrategy: "merge",
      qualityRules: [{ entity: "public.staff", field: "gone", rule: "not_null", options: {} }],
    });
    expect(plan.blocking[0]).toMatchObject({ code: "quality_rule_invalid" });
    expect(plan.blocking[0]!.message).toContain("the source's schema changed since the pipeline was saved");
  });
});
