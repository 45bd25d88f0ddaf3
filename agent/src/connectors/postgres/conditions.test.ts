import { DrayError } from "@dray/common";
import { describe, expect, it } from "vitest";
import type { Condition } from "../../connector.js";
import { BoundParams, type ConditionField, conditionSql, conditionsSql } from "./conditions.js";

const fields: Record<string, ConditionField> = {
  id: { name: "id", castType: "bigint" },
  name: { name: "name", castType: "character varying" },
  'we"ird': { name: 'we"ird', castType: "timestamp with time zone" },
};
const resolve = (name: string) => {
  const field = fields[name];
  if (!field) throw new DrayError("not_found", `field ${name} was not found`);
  return field;
};

function build(conditions: Condition[]) {
  const params = new BoundParams();
  return { sql: conditionsSql(conditions, resolve, params), params: params.values };
}

describe("conditionSql", () => {
  it("compares typed, with bound values", () => {
    expect(build([{ field: "id", operator: "eq", values: ["7"] }])).toEqual({
      sql: ['"id" = $1::bigint'],
      params: ["7"],
    });
    expect(build([{ field: "id", operator: "lt", values: ["1"] }]).sql).toEqual(['"id" < $1::bigint']);
    expect(build([{ field: "id", operator: "lte", values: ["1"] }]).sql).toEqual(['"id" <= $1::bigint']);
    expect(build([{ field: "id", operator: "gt", values: ["1"] }]).sql).toEqual(['"id" > $1::bigint']);
    expect(build([{ field: "id", operator: "gte", values: ["1"] }]).sql).toEqual(['"id" >= $1::bigint']);
    expect(build([{ field: "name", operator: "neq", values: ["x"] }]).sql).toEqual([
      '"name" is distinct from $1::character varying',
    ]);
  });

  it("handles null checks and lists", () => {
    expect(build([{ field: "name", operator: "is_null", values: [] }])).toEqual({
      sql: ['"name" is null'],
      params: [],
    });
    expect(build([{ field: "name", operator: "is_not_null", values: [] }]).sql).toEqual([
      '"name" is not null',
    ]);
    expect(build([{ field: "id", operator: "in", values: ["1", "2"] }])).toEqual({
      sql: ['"id" = any(array(select pg_catalog.json_array_elements_text($1::text::json)::bigint))'],
      params: ['["1","2"]'],
    });
    expect(build([{ field: "id", operator: "in", values: [] }])).toEqual({ sql: ["false"], params: [] });
  });

  it("numbers parameters across conditions and after earlier ones", () => {
    const params = new BoundParams();
    params.add("cursor");
    const sql = conditionsSql(
      [
        { field: "id", operator: "gt", values: ["1"] },
        { field: 'we"ird', operator: "lt", values: ["2024-01-01 00:00:00+00"] },
      ],
      resolve,
      params,
    );
    expect(sql).toEqual(['"id" > $2::bigint', '"we""ird" < $3::timestamp with time zone']);
    expect(params.values).toEqual(["cursor", "1", "2024-01-01 00:00:00+00"]);
  });

  it("never puts a value into the SQL text", () => {
    const hostile = "1'; drop table users; --";
    const { sql, params } = build([{ field: "name", operator: "eq", values: [hostile] }]);
    expect(sql.join(" ")).not.toContain("drop table");
    expect(params).toEqual([hostile]);
  });

  it("refuses wrong value counts, NUL, non-strings and unknown operators", () => {
    const refuse = (condition: Condition) =>
      expect(() => build([condition])).toThrow(expect.objectContaining({ code: "invalid_argument" }));
    refuse({ field: "id", operator: "eq", values: [] });
    refuse({ field: "id", operator: "eq", values: ["1", "2"] });
    refuse({ field: "id", operator: "is_null", values: ["1"] });
    refuse({ field: "id", operator: "eq", values: ["a\0"] });
    refuse({ field: "id", operator: "in", values: [1 as unknown as string] });
    refuse({ field: "id", operator: "like" as Condition["operator"], values: ["1"] });
    refuse({ field: "", operator: "eq", values: ["1"] });
  });

  it("lets the resolver report unknown fields", () => {
    expect(() => build([{ field: "nope", operator: "eq", values: ["1"] }])).toThrow(
      expect.objectContaining({ code: "not_found" }),
    );
  });

  it("writes placeholders with a custom renderer that sees each value", () => {
    const params = new BoundParams((index, value) => (value === null ? "null" : `setting(${index})`));
    const sql = conditionsSql(
      [
        { field: "id", operator: "gt", values: ["1"] },
        { field: "name", operator: "in", values: ["a", "b"] },
      ],
      resolve,
      params,
    );
    expect(sql).toEqual([
      '"id" > setting(1)::bigint',
      '"name" = any(array(select pg_catalog.json_array_elements_text(setting(2)::text::json)::character varying))',
    ]);
    expect(params.add(null)).toBe("null");
    expect(params.values).toEqual(["1", '["a","b"]', null]);
  });

  it("builds one term directly", () => {
    expect(conditionSql({ field: "id", operator: "eq", values: ["3"] }, fields.id!, new BoundParams())).toBe(
      '"id" = $1::bigint',
    );
  });
});
