import { DrayError } from "@dray/common";
import { describe, expect, it } from "vitest";
import { fileRowCheck, qualityEndEntry, rejectEntries } from "./file-quality.js";

const entity = { entity: "public.orders", fields: ["id", "name", "amount"] };
const types = new Map([
  ["id", "integer"],
  ["name", "text"],
  ["amount", "numeric"],
]);

describe("fileRowCheck", () => {
  it("is undefined without rules on the entity", () => {
    expect(fileRowCheck([], entity, types)).toBeUndefined();
    const other = [{ entity: "public.other", field: "name", rule: "not_null", options: {} }];
    expect(fileRowCheck(other, entity, types)).toBeUndefined();
  });

  it("checks values in field order and names the first rule a row fails, never the value", () => {
    const quality = fileRowCheck(
      [
        { entity: "public.orders", field: "name", rule: "not_null", options: {} },
        { entity: "public.orders", field: "amount", rule: "range", options: { min: 0, max: 100 } },
      ],
      entity,
      types,
    )!;
    expect(quality.rules).toBe(2);
    expect(quality.check(["1", "ann", "50"])).toBeNull();
    expect(quality.check(["1", null, "500"])).toBe("failed data-quality rule not_null on field name");
    expect(quality.check(["1", "ann", "500"])).toBe(
      'failed data-quality rule range {"min":0,"max":100} on field amount',
    );
  });

  it("refuses a rule on a field the target no longer has", () => {
    const rules = [{ entity: "public.orders", field: "colour", rule: "not_null", options: {} }];
    expect(() => fileRowCheck(rules, entity, types)).toThrow(DrayError);
    try {
      fileRowCheck(rules, entity, types);
    } catch (error) {
      expect((error as DrayError).code).toBe("failed_precondition");
    }
  });
});

describe("DataQuality entries", () => {
  it("journals each reject by line and one stage entry per kind", () => {
    const { errors, stages } = rejectEntries("public.orders", "orders.csv", {
      firstLine: 2,
      lastLine: 9,
      rejects: [
        { line: 3, message: "line 3 has 2 columns, the header has 3", kind: "parse" },
        { line: 5, message: "failed data-quality rule not_null on field name", kind: "quality" },
        { line: 7, message: "failed data-quality rule not_null on field name", kind: "quality" },
      ],
    });
    expect(errors.map((e) => [e.code, e.recordKey, e.message])).toEqual([
      ["bad_row", ["line 3"], "orders.csv line 3: line 3 has 2 columns, the header has 3"],
      ["data_quality", ["line 5"], "orders.csv line 5: failed data-quality rule not_null on field name"],
      ["data_quality", ["line 7"], "orders.csv line 7: failed data-quality rule not_null on field name"],
    ]);
    expect(stages.map((s) => s.description)).toEqual([
      "1 row(s) of lines 2–9 could not be read and were skipped (error log, code bad_row)",
      "2 row(s) of lines 2–9 failed data-quality rules and were skipped (error log, code data_quality)",
    ]);
  });

  it("has no stage entry for a kind without rejects, and ends by counting the failed rows", () => {
    const { stages } = rejectEntries("public.orders", "orders.csv", {
      firstLine: 1,
      lastLine: 1,
      rejects: [{ line: 1, message: "line 1 is not valid JSON", kind: "parse" }],
    });
    expect(stages).toHaveLength(1);
    expect(qualityEndEntry("public.orders", 2, 0).description).toBe(
      "Every row passed the 2 data-quality rules",
    );
    expect(qualityEndEntry("public.orders", 2, 4).description).toMatch(/^4 row\(s\) failed/);
  });
});
