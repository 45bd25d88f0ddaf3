/** Data-quality rules applied to a page of COPY text with processCopyPage (transform-rows.ts). */
import { compileQualityRule } from "@dray/common";
import { describe, expect, it } from "vitest";
import { processCopyPage } from "../transform/transform-rows.js";

const page = (rows: string[][]) => Buffer.from(rows.map((r) => `${r.join("\t")}\n`).join(""));
const lines = (data: Buffer) => data.toString("utf8").split("\n").slice(0, -1);
const fields = ["id", "email", "age"];

const rule = (field: string, name: string, options: Record<string, unknown>, type = "text") => ({
  index: fields.indexOf(field),
  field,
  rule: name,
  options,
  check: compileQualityRule(name, options, type),
});

describe("processCopyPage with data-quality rules", () => {
  const data = page([
    ["1", "ada@example.com", "36"],
    ["2", "\\N", "40"],
    ["3", "not-an-email", "\\N"],
    ["4", "bob@example.com", "200"],
    ["5", "tab\\there@example.com", "7"],
  ]);
  const rules = [
    rule("email", "not_null", {}),
    rule("email", "matches", { pattern: "^[^@]+@[^@]+$" }),
    rule("age", "range", { min: 0, max: 150 }, "integer"),
  ];

  it("leaves out the rows that fail, keeps the others byte for byte, and counts them", () => {
    const out = processCopyPage(data, { transforms: [], rules, fieldNames: fields, keyIndexes: [0] });
    expect(lines(out.data)).toEqual(["1\tada@example.com\t36", "5\ttab\\there@example.com\t7"]);
    expect(out.rowCount).toBe(2);
    expect(out.rejected).toEqual([
      {
        key: ["2"],
        field: "email",
        rule: "not_null",
        message: "failed data-quality rule not_null on field email",
      },
      {
        key: ["3"],
        field: "email",
        rule: "matches",
        message: 'failed data-quality rule matches {"pattern":"^[^@]+@[^@]+$"} on field email',
      },
      {
        key: ["4"],
        field: "age",
        rule: "range",
        message: 'failed data-quality rule range {"min":0,"max":150} on field age',
      },
    ]);
  });

  it("checks raw values, then transforms the rows that pass, and reports a transformed key", () => {
    const transforms = [
      { index: 0, field: "id", transformer: "test", apply: (v: string) => `k${Number(v) * 7}` },
      { index: 1, field: "email", transformer: "test", apply: (v: string) => v.toUpperCase() },
    ];
    const out = processCopyPage(data, { transforms, rules, fieldNames: fields, keyIndexes: [0] });
    expect(lines(out.data)).toEqual(["k7\tADA@EXAMPLE.COM\t36", "k35\tTAB\\tHERE@EXAMPLE.COM\t7"]);
    expect(out.rejected.map((r) => r.key)).toEqual([["k14"], ["k21"], ["k28"]]);
    // The raw value that failed is nowhere in the report.
    expect(JSON.stringify(out.rejected)).not.toContain("not-an-email");
  });

  it("returns an empty page, and every row reported, when every row fails", () => {
    const out = processCopyPage(page([["1", "\\N", "1"]]), {
      transforms: [],
      rules,
      fieldNames: fields,
      keyIndexes: [0],
    });
    expect(out.data.length).toBe(0);
    expect(out.rowCount).toBe(0);
    expect(out.rejected).toHaveLength(1);
  });

  it("reports the first rule a row fails, in rule order", () => {
    const out = processCopyPage(page([["9", "\\N", "999"]]), {
      transforms: [],
      rules: [rule("age", "range", { max: 1 }, "integer"), rule("email", "not_null", {})],
      fieldNames: fields,
      keyIndexes: [0],
    });
    expect(out.rejected.map((r) => r.rule)).toEqual(["range"]);
  });
});
