import { describe, expect, it } from "vitest";
import type { WriteBatchRequest } from "../../connector.js";
import type { EntityInfo, FieldInfo } from "./entity-catalog.js";
import { conflictQueries } from "./unique-checks.js";
import { planWrite } from "./write-plan.js";

const field = (name: string, castType = "integer", notNull = true): FieldInfo => ({
  name,
  type: castType,
  castType,
  notNull,
  hasDefault: false,
  generated: false,
  identity: "",
});
const info = (extra: Partial<EntityInfo> = {}): EntityInfo => ({
  entity: { schema: "app", name: "people" },
  fields: [
    field("id"),
    field("email", "text", false),
    field("name", "text", false),
    field("code", "text", false),
  ],
  primaryKey: ["id"],
  uniqueKeys: [["id"], ["email"], ["code", "name"]],
  uniqueIndexes: [
    { name: "people_pkey", columns: ["id"], primary: true },
    { name: "people_code_name_key", columns: ["code", "name"], primary: false },
    { name: "people_email_key", columns: ["email"], primary: false },
  ],
  partitioned: false,
  inheritanceParent: false,
  hasRules: false,
  ...extra,
});
const request = (extra: Partial<WriteBatchRequest> = {}): WriteBatchRequest => ({
  batchId: "b1",
  entity: { schema: "app", name: "people" },
  strategy: "insert",
  keyFields: ["id"],
  rows: { encoding: "copy_text", fields: ["id", "email", "name"], rowCount: 0, data: new Uint8Array() },
  rejectPolicy: "isolate",
  ...extra,
});
const queries = (extra: Partial<WriteBatchRequest> = {}, target = info()) => {
  const req = request(extra);
  return conflictQueries(target, planWrite(target, req), req.strategy);
};

describe("conflictQueries", () => {
  it("insert: checks every unique index whose fields are written, against the target and within the batch", () => {
    const all = queries();
    // people_code_name_key is left out: code is not written.
    // Every check against the target first, then the repeats within the batch.
    expect(all.map((q) => [q.index, q.kind, q.columns])).toEqual([
      ["people_pkey", "exists", ["id"]],
      ["people_email_key", "exists", ["email"]],
      ["people_pkey", "repeated", ["id"]],
      ["people_email_key", "repeated", ["email"]],
    ]);
    const [pkeyExists, emailExists, pkeyRepeated, emailRepeated] = all;
    expect(pkeyExists!.sql).toBe(
      "select s.dray_ord::text as dray_ord, pg_catalog.to_json(array[s.c1]::text[])::text as key, pg_catalog.to_json(array[s.c1]::text[])::text as shown" +
        ' from pg_temp.dray_stage s where s.c1::integer is not null and exists (select 1 from only "app"."people" t where t."id" = s.c1::integer)',
    );
    expect(pkeyRepeated!.sql).toBe(
      "select dray_ord, key, shown from (select s.dray_ord::text as dray_ord, pg_catalog.to_json(array[s.c1]::text[])::text as key, pg_catalog.to_json(array[s.c1]::text[])::text as shown," +
        " row_number() over (partition by s.c1::integer order by s.dray_ord) as n from pg_temp.dray_stage s where s.c1::integer is not null) d where n > 1",
    );
    expect(emailExists!.sql).toContain(
      "pg_catalog.to_json(array[s.c1]::text[])::text as key, pg_catalog.to_json(array[s.c2]::text[])::text as shown",
    );
    expect(emailExists!.sql).toContain("where s.c2::text is not null and exists");
    expect(emailExists!.sql).toContain('where t."email" = s.c2::text)');
    expect(emailExists!.sql).not.toContain("is distinct from");
    expect(emailRepeated!.sql).toContain("partition by s.c2::text order by s.dray_ord");
  });

  it("insert: checks a composite index with every field written, NULLs excluded", () => {
    const all = queries({ rows: { ...request().rows, fields: ["id", "name", "code"] } });
    const composite = all.filter((q) => q.index === "people_code_name_key");
    expect(composite.map((q) => q.kind)).toEqual(["exists", "repeated"]);
    expect(composite[0]!.sql).toContain("where s.c3::text is not null and s.c2::text is not null and exists");
    expect(composite[0]!.sql).toContain('t."code" = s.c3::text and t."name" = s.c2::text');
    expect(composite[0]!.sql).toContain("pg_catalog.to_json(array[s.c3, s.c2]::text[])::text as shown");
    expect(composite[1]!.sql).toContain("partition by s.c3::text, s.c2::text order by s.dray_ord");
  });

  it("merge: skips the merge key, checks other indexes against rows with another key and within the batch", () => {
    const all = queries({ strategy: "merge" });
    expect(all.map((q) => [q.index, q.kind])).toEqual([
      ["people_email_key", "exists"],
      ["people_email_key", "repeated"],
    ]);
    expect(all[0]!.sql).toContain(
      'exists (select 1 from only "app"."people" t where t."email" = s.c2::text and (t."id") is distinct from (s.c1::integer))',
    );
  });

  it("merge on a composite key skips exactly the index on those fields", () => {
    const target = info({
      uniqueKeys: [["id"], ["email"], ["code", "name"]],
    });
    const all = queries(
      {
        strategy: "merge",
        keyFields: ["name", "code"],
        rows: { ...request().rows, fields: ["id", "name", "code"] },
      },
      { ...target, fields: target.fields.map((f) => ({ ...f, notNull: true })) },
    );
    expect(all.map((q) => [q.index, q.kind])).toEqual([
      ["people_pkey", "exists"],
      ["people_pkey", "repeated"],
    ]);
    expect(all[0]!.sql).toContain('(t."name", t."code") is distinct from (s.c2::text, s.c3::text)');
  });

  it("update: checks nothing", () => {
    expect(queries({ strategy: "update" })).toEqual([]);
  });

  it("reads a partitioned target whole", () => {
    const all = queries({}, info({ partitioned: true }));
    expect(all[0]!.sql).toContain('exists (select 1 from "app"."people" t where');
    expect(all[0]!.sql).not.toContain("only");
  });
});
