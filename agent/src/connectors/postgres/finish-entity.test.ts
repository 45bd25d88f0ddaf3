import { describe, expect, it } from "vitest";
import {
  operatorSql,
  type ReferenceDeclaration,
  referenceCheckSql,
  violationMessage,
} from "./finish-entity.js";

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
