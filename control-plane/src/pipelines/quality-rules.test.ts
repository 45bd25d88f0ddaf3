import { describe, expect, it } from "vitest";
import type { EntitySnapshot, SchemaSnapshot } from "../environments/schema-snapshot.js";
import { type PipelineQualityRule, resolveQualityRules } from "./quality-rules.js";

type Field = EntitySnapshot["fields"][number];
const f = (name: string, type: string, extra: Partial<Field> = {}): Field => ({
  name,
  type,
  nullable: true,
  hasDefault: false,
  generated: false,
  ...extra,
});

const snapshot: SchemaSnapshot = {
  capturedAt: "2026-12-07T00:00:00.000Z",
  entities: [
    {
      entity: "public.people",
      schema: "public",
      name: "people",
      fields: [
        f("id", "bigint", { nullable: false }),
        f("email", "character varying(200)"),
        f("age", "integer"),
        f("score", "numeric(5,2)"),
        f("born", "date"),
        f("seen", "timestamp with time zone"),
        f("status", "text"),
        f("search", "tsvector", { generated: true }),
      ],
      primaryKey: ["id"],
      references: [],
      estimatedRows: 10,
    },
  ],
} as unknown as SchemaSnapshot;

const rule = (field: string, name: string, options: Record<string, unknown> = {}): PipelineQualityRule => ({
  entity: "public.people",
  field,
  rule: name,
  options,
});

const resolve = (rules: PipelineQualityRule[]) => resolveQualityRules(["public.people"], rules, snapshot);

/** The message of the error `fn` throws. */
function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("expected a refusal");
}

describe("resolveQualityRules", () => {
  it("keeps valid rules per entity, in order, several on one field", () => {
    const rules = [
      rule("email", "not_null"),
      rule("email", "matches", { pattern: "^[^@]+@[^@]+$", flags: "i" }),
      rule("age", "range", { min: 0, max: 150 }),
      rule("born", "range", { min: "1900-01-01" }),
      rule("seen", "range", { max: "2030-01-01T00:00:00" }),
      rule("status", "one_of", { values: ["active", "closed"] }),
      rule("email", "max_length", { length: 120 }),
    ];
    const out = resolve(rules);
    expect(out.get("public.people")?.map((r) => `${r.field}:${r.rule}`)).toEqual([
      "email:not_null",
      "email:matches",
      "age:range",
      "born:range",
      "seen:range",
      "status:one_of",
      "email:max_length",
    ]);
  });

  it("returns nothing for no rules", () => {
    expect(resolve([]).size).toBe(0);
  });

  it.each([
    [rule("nope", "not_null"), "qualityRules[0] (public.people.nope): field nope does not exist"],
    [rule("search", "not_null"), "is generated"],
    [rule("email", "unique"), 'rule "unique" is not known'],
    [rule("age", "max_length", { length: 3 }), "rule max_length does not fit column type integer"],
    [rule("email", "range", { min: 1 }), "rule range does not fit column type character varying(200)"],
    [rule("email", "matches", { pattern: "(a)\\1" }), "backreference"],
    [rule("email", "matches", { pattern: "(?=a)b" }), "lookaround"],
    [rule("email", "matches", { pattern: "a".repeat(1001) }), "at most 1000"],
    [rule("email", "matches", { pattern: "([a-z" }), "not a valid RE2 pattern"],
    [rule("email", "matches", { pattern: "a", flags: "g" }), 'flags may only hold i, m and s, not "g"'],
    [rule("email", "matches", {}), "option pattern of matches is required"],
    [rule("age", "range", {}), "range needs min, max or both"],
    [rule("age", "range", { min: "ten" }), "option min must be a number"],
    [rule("age", "range", { min: 10, max: 1 }), "option min (10) is above max (1)"],
    [rule("born", "range", { min: 2020 }), "option min must be an ISO date"],
    [rule("email", "max_length", { length: 0 }), "at least 1"],
    [rule("status", "one_of", { values: [] }), "at least one value"],
    [rule("status", "one_of", { values: [1, 2] }), "array of strings"],
    [
      rule("email", "not_null", { strict: true }),
      "option strict is not an option of not_null (it takes no options)",
    ],
  ])("refuses %j", (bad, message) => {
    expect(refusal(() => resolve([bad]))).toContain(message);
  });

  it("refuses a rule on an entity that is not selected, naming the selection", () => {
    const message = refusal(() =>
      resolveQualityRules(
        ["public.people"],
        [{ ...rule("id", "not_null"), entity: "public.other" }],
        snapshot,
      ),
    );
    expect(message).toContain("entity public.other is not selected in this pipeline");
  });

  it("names the rule's index and path in the error details", () => {
    try {
      resolve([rule("email", "not_null"), rule("age", "max_length", { length: 3 })]);
      throw new Error("expected a refusal");
    } catch (error) {
      expect((error as { code?: string }).code).toBe("invalid_argument");
      expect((error as { details?: unknown }).details).toMatchObject({
        issues: [{ path: "qualityRules.1.rule" }],
        rule: 1,
        field: "age",
      });
    }
  });
});
