import { describe, expect, it } from "vitest";
import {
  operatorSql,
  type ReferenceDeclaration,
  referenceCheckSql,
  sequenceDecision,
  violationMessage,
} from "./finish-entity.js";

const INT4_MAX = 2147483647n;

describe("sequenceDecision", () => {
  it("moves a fresh sequence up to the maximum", () => {
    expect(sequenceDecision({ lastValue: 1n, isCalled: false }, 100n, INT4_MAX, 1n)).toEqual({
      move: true,
      to: 100n,
    });
  });

  it("moves a fresh sequence whose first value is the maximum (it would be handed out again)", () => {
    expect(sequenceDecision({ lastValue: 1n, isCalled: false }, 1n, INT4_MAX, 1n)).toEqual({
      move: true,
      to: 1n,
    });
  });

  it("never moves a sequence down or to where it already is", () => {
    expect(sequenceDecision({ lastValue: 500n, isCalled: true }, 100n, INT4_MAX, 1n)).toEqual({
      move: false,
      reason: "ahead",
    });
    expect(sequenceDecision({ lastValue: 100n, isCalled: true }, 100n, INT4_MAX, 1n)).toEqual({
      move: false,
      reason: "ahead",
    });
    expect(sequenceDecision({ lastValue: 101n, isCalled: false }, 100n, INT4_MAX, 1n)).toEqual({
      move: false,
      reason: "ahead",
    });
  });

  it("leaves a sequence alone for an empty table, past MAXVALUE, or descending", () => {
    expect(sequenceDecision({ lastValue: 1n, isCalled: false }, null, INT4_MAX, 1n)).toEqual({
      move: false,
      reason: "empty",
    });
    expect(sequenceDecision({ lastValue: 1n, isCalled: false }, INT4_MAX + 1n, INT4_MAX, 1n)).toEqual({
      move: false,
      reason: "above_max_value",
    });
    expect(sequenceDecision({ lastValue: -1n, isCalled: false }, 5n, -1n, -1n)).toEqual({
      move: false,
      reason: "descending",
    });
  });
});

describe("violationMessage", () => {
  it("says it the way Postgres does", () => {
    expect(
      violationMessage("rental", "rental_customer_fkey", "customer", ["customer_id"], ["7"], false),
    ).toBe(
      'insert or update on table "rental" violates foreign key constraint "rental_customer_fkey" Key (customer_id)=(7) is not present in table "customer".',
    );
    expect(violationMessage("t", "fk", "p", ["a", "b"], ["1", null], false)).toBe(
      'insert or update on table "t" violates foreign key constraint "fk" Key (a, b)=(1, null) is not present in table "p".',
    );
    expect(violationMessage("t", "fk", "p", ["a", "b"], ["1", null], true)).toBe(
      'insert or update on table "t" violates foreign key constraint "fk" MATCH FULL does not allow mixing of null and nonnull key values.',
    );
  });
});

describe("referenceCheckSql", () => {
  const declaration: ReferenceDeclaration = {
    name: "fk",
    depth: 0,
    match: "s",
    schema: "app",
    table_name: 'or"ders',
    partitioned: false,
    ref_schema: "app",
    ref_table: "customers",
    ref_partitioned: true,
    fields: ["a", "b"],
    ref_fields: ["x", "y"],
    operators: [
      ["pg_catalog", "="],
      ["pg_catalog", "="],
    ],
  };

  it("reads a plain table with ONLY and a partitioned one without, quoting every name", () => {
    const sql = referenceCheckSql(declaration, ["id"]);
    expect(sql).toContain('from only "app"."or""ders" r');
    expect(sql).toContain('from "app"."customers" p');
    expect(sql).toContain('p."x" operator("pg_catalog".=) r."a"');
    expect(sql).not.toContain("num_nulls");
  });

  it("adds the mixed-null rows for MATCH FULL", () => {
    expect(referenceCheckSql({ ...declaration, match: "f" }, ["id"])).toContain(
      'pg_catalog.num_nulls(r."a", r."b") between 1 and 1',
    );
  });
});

describe("operatorSql", () => {
  it("refuses a name that is no operator", () => {
    expect(operatorSql(["pg_catalog", "="])).toBe('operator("pg_catalog".=)');
    expect(() => operatorSql(["s", "=) or (true"])).toThrow(/unexpected operator/);
  });
});
