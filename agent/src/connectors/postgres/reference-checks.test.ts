import { describe, expect, it } from "vitest";
import type { FieldInfo } from "./entity-catalog.js";
import {
  copiedRowsViolationSql,
  type ForeignKeyInfo,
  foreignKeysOf,
  keysToCheck,
  violationSql,
} from "./reference-checks.js";

type CatalogRow = Parameters<typeof foreignKeysOf>[0][number];

/** A catalog row as FOREIGN_KEYS_SQL returns it; `leaves` is the target's leaf partition count. */
const row = (name: string, extra: Partial<CatalogRow> = {}): CatalogRow => ({
  name,
  match_full: false,
  is_root: true,
  relid: "1",
  fields: ["customer_id"],
  ref_schema: "app",
  ref_name: "customer",
  ref_partitioned: false,
  ref_fields: ["id"],
  leaves: 0,
  ...extra,
});

const fk = (extra: Partial<ForeignKeyInfo> = {}): ForeignKeyInfo => ({
  name: "fk",
  fields: ["a"],
  referenced: { schema: "app", name: "parent" },
  referencedPartitioned: false,
  referencedFields: ["id"],
  matchFull: false,
  ...extra,
});

describe("foreignKeysOf", () => {
  it("keeps the keys of a plain table as they are", () => {
    expect(
      foreignKeysOf([
        row("orders_customer_fkey"),
        row("orders_pair_fkey", {
          fields: ["a", "b"],
          ref_name: "pairs",
          ref_fields: ["x", "y"],
          match_full: true,
        }),
      ]),
    ).toEqual([
      {
        name: "orders_customer_fkey",
        fields: ["customer_id"],
        referenced: { schema: "app", name: "customer" },
        referencedPartitioned: false,
        referencedFields: ["id"],
        matchFull: false,
      },
      {
        name: "orders_pair_fkey",
        fields: ["a", "b"],
        referenced: { schema: "app", name: "pairs" },
        referencedPartitioned: false,
        referencedFields: ["x", "y"],
        matchFull: true,
      },
    ]);
  });

  it("keeps a key of a partitioned root, with its own name over equivalent partition keys", () => {
    const keys = foreignKeysOf([
      row("a_part_fkey", { is_root: false, relid: "11", leaves: 2 }),
      row("events_customer_fkey", { relid: "10", leaves: 2, ref_partitioned: true }),
    ]);
    expect(keys.map((k) => [k.name, k.referencedPartitioned])).toEqual([["events_customer_fkey", true]]);
  });

  it("keeps a key every leaf partition declares, named after the first in name order", () => {
    const keys = foreignKeysOf([
      row("events_eu_fkey", { is_root: false, relid: "11", leaves: 2 }),
      row("events_us_fkey", { is_root: false, relid: "12", leaves: 2 }),
    ]);
    expect(keys.map((k) => [k.name, k.fields, k.referenced.name])).toEqual([
      ["events_eu_fkey", ["customer_id"], "customer"],
    ]);
  });

  it("leaves out a key only some leaf partitions declare", () => {
    expect(
      foreignKeysOf([
        row("visits_eu_fkey", { is_root: false, relid: "11", leaves: 2 }),
        // Two keys of the same partition do not make up for the missing one.
        row("visits_eu_fkey2", { is_root: false, relid: "11", leaves: 2 }),
      ]),
    ).toEqual([]);
  });

  it("does not merge keys that differ in fields, referenced table or match type", () => {
    const keys = foreignKeysOf([
      row("p1_fkey", { is_root: false, relid: "11", leaves: 2 }),
      row("p2_fkey", { is_root: false, relid: "12", leaves: 2, match_full: true }),
      row("p3_fkey", { is_root: false, relid: "11", leaves: 2, ref_name: "other" }),
      row("p4_fkey", { is_root: false, relid: "12", leaves: 2, ref_name: "other" }),
    ]);
    expect(keys.map((k) => k.name)).toEqual(["p3_fkey"]);
  });

  it("returns nothing without rows", () => {
    expect(foreignKeysOf([])).toEqual([]);
  });
});

describe("violationSql", () => {
  const sqlOf = (f: string) => `s.${f}`;

  it("checks a single-field key against ONLY the referenced table when it is not partitioned", () => {
    expect(violationSql(fk(), sqlOf)).toBe(
      '(s.a is not null and not exists (select 1 from only "app"."parent" r where r."id" = s.a))',
    );
  });

  it("reads a partitioned referenced table whole", () => {
    expect(violationSql(fk({ referencedPartitioned: true }), sqlOf)).toBe(
      '(s.a is not null and not exists (select 1 from "app"."parent" r where r."id" = s.a))',
    );
  });

  it("MATCH SIMPLE: a composite key with any NULL field references nothing", () => {
    expect(violationSql(fk({ fields: ["a", "b"], referencedFields: ["x", "y"] }), sqlOf)).toBe(
      '(s.a is not null and s.b is not null and not exists (select 1 from only "app"."parent" r where r."x" = s.a and r."y" = s.b))',
    );
  });

  it("MATCH FULL: a composite key with some but not all fields NULL is a violation too", () => {
    expect(
      violationSql(fk({ fields: ["a", "b"], referencedFields: ["x", "y"], matchFull: true }), sqlOf),
    ).toBe(
      '((s.a is not null and s.b is not null and not exists (select 1 from only "app"."parent" r where r."x" = s.a and r."y" = s.b))' +
        " or ((s.a is null or s.b is null) and not (s.a is null and s.b is null)))",
    );
  });

  it("MATCH FULL on a single field is MATCH SIMPLE", () => {
    expect(violationSql(fk({ matchFull: true }), sqlOf)).toBe(violationSql(fk(), sqlOf));
  });

  it("counts alsoPresent as the referenced row existing", () => {
    expect(violationSql(fk(), sqlOf, "exists (select 1 from stage s2 where s2.c1 = s.a)")).toBe(
      '(s.a is not null and not exists (select 1 from only "app"."parent" r where r."id" = s.a)' +
        " and not (exists (select 1 from stage s2 where s2.c1 = s.a)))",
    );
  });

  it("quotes referenced names", () => {
    const sql = violationSql(
      fk({ referenced: { schema: "odd schema", name: 'a "b"' }, referencedFields: ["Id"] }),
      sqlOf,
    );
    expect(sql).toContain('from only "odd schema"."a ""b""" r where r."Id" = s.a');
  });
});

describe("keysToCheck", () => {
  const field = (name: string): FieldInfo => ({
    name,
    type: "integer",
    castType: "integer",
    notNull: false,
    hasDefault: false,
    generated: false,
    identity: "",
  });
  const keys = [
    fk({ name: "one", fields: ["a"] }),
    fk({ name: "pair", fields: ["a", "b"], referencedFields: ["x", "y"] }),
    fk({ name: "other", fields: ["c"] }),
  ];

  it("keeps the keys whose fields are all written", () => {
    expect(
      keysToCheck(keys, { fields: [field("id"), field("a"), field("c")] }, []).map((k) => k.name),
    ).toEqual(["one", "other"]);
    expect(
      keysToCheck(keys, { fields: [field("a"), field("b"), field("c")] }, []).map((k) => k.name),
    ).toEqual(["one", "pair", "other"]);
    expect(keysToCheck(keys, { fields: [field("id")] }, [])).toEqual([]);
  });

  it("leaves out the keys named unchecked", () => {
    expect(
      keysToCheck(keys, { fields: [field("a"), field("b"), field("c")] }, ["pair", "other", "unknown"]).map(
        (k) => k.name,
      ),
    ).toEqual(["one"]);
  });
});

describe("copiedRowsViolationSql", () => {
  const rows = 'from only "app"."child" t where t."id" >= $1';
  it("is null without keys", () => {
    expect(copiedRowsViolationSql([], rows)).toBeNull();
  });

  it("ORs each key's check over the distinct values of the rows", () => {
    expect(
      copiedRowsViolationSql(
        [fk(), fk({ name: "b", fields: ["b"], referenced: { schema: "app", name: "q" } })],
        rows,
      ),
    ).toBe(
      `exists (select 1 from (select distinct t."a" as k1 ${rows} and t."a" is not null) d` +
        ' where (d.k1 is not null and not exists (select 1 from only "app"."parent" r where r."id" = d.k1)))' +
        ` or exists (select 1 from (select distinct t."b" as k1 ${rows} and t."b" is not null) d` +
        ' where (d.k1 is not null and not exists (select 1 from only "app"."q" r where r."id" = d.k1)))',
    );
  });

  it("adds the mixed-NULL rows of a MATCH FULL key", () => {
    const sql = copiedRowsViolationSql(
      [fk({ fields: ["a", "b"], referencedFields: ["x", "y"], matchFull: true })],
      rows,
    )!;
    expect(sql).toContain(
      `exists (select 1 ${rows} and (t."a" is null or t."b" is null) and not (t."a" is null and t."b" is null))`,
    );
  });
});
