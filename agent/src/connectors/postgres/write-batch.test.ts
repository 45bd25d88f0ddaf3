import { describe, expect, it } from "vitest";
import type { WriteBatchRequest } from "../../connector.js";
import type { EntityInfo, FieldInfo } from "./entity-catalog.js";
import { blamedField, fieldByTypeInMessage, prepareRows, validateWriteRequest } from "./write-batch.js";
import { changedCondition, planWrite } from "./write-plan.js";

const field = (name: string, extra: Partial<FieldInfo> = {}): FieldInfo => ({
  name,
  type: "bigint",
  castType: "bigint",
  notNull: true,
  hasDefault: false,
  generated: false,
  identity: "",
  ...extra,
});
const info = (extra: Partial<EntityInfo> = {}): EntityInfo => ({
  entity: { schema: "s", name: "t" },
  fields: [
    field("id"),
    field("name", { type: "character varying(3)", castType: "character varying", notNull: false }),
  ],
  primaryKey: ["id"],
  uniqueKeys: [["id"]],
  uniqueIndexes: [{ name: "t_pkey", columns: ["id"], primary: true }],
  partitioned: false,
  inheritanceParent: false,
  hasRules: false,
  ...extra,
});
const request = (extra: Partial<WriteBatchRequest> = {}): WriteBatchRequest => ({
  batchId: "b1",
  entity: { schema: "s", name: "t" },
  strategy: "insert",
  keyFields: ["id"],
  rows: { encoding: "copy_text", fields: ["id", "name"], rowCount: 0, data: new Uint8Array() },
  rejectPolicy: "fail",
  ...extra,
});

describe("prepareRows", () => {
  it("passes clean data through untouched", () => {
    const data = Buffer.from("1\ta\n2\tb\n");
    const prepared = prepareRows(data, 2, 2);
    expect(prepared.data).toBe(data);
    expect(prepared).toMatchObject({ loadCount: 2, malformed: [] });
  });

  it("adds a missing final newline and drops malformed lines", () => {
    const prepared = prepareRows(Buffer.from("1\ta\n2\n3\tc\\.\n4\td"), 2, 4);
    expect(Buffer.from(prepared.data).toString()).toBe("1\ta\n4\td\n");
    expect(prepared.loadCount).toBe(2);
    expect(prepared.malformed.map((m) => [m.index, m.problem])).toEqual([
      [1, "line has 1 fields, expected 2"],
      [2, "\\. (end-of-data marker) inside data"],
    ]);
  });

  it("passes a clean view into a larger buffer through, and only appends a missing final newline", () => {
    const view = Buffer.from("xx1\ta\n2\tb\nyy").subarray(2, 10);
    expect(prepareRows(view, 2, 2).data).toBe(view);
    const open = prepareRows(Buffer.from("1\ta\n2\tb"), 2, 2);
    expect(Buffer.from(open.data).toString()).toBe("1\ta\n2\tb\n");
    expect(open).toMatchObject({ loadCount: 2, malformed: [] });
  });

  it("drops lines with a CR, invalid UTF-8 or a short last line, keeping the rest in order", () => {
    const data = Buffer.concat([
      Buffer.from("1\ta\n2\tb\r\n3\t"),
      Buffer.from([0xff]),
      Buffer.from("\n4\td\n5\te\n6"),
    ]);
    const prepared = prepareRows(data, 2, 6);
    expect(Buffer.from(prepared.data).toString()).toBe("1\ta\n4\td\n5\te\n");
    expect(prepared.loadCount).toBe(3);
    expect(
      prepared.malformed.map((m) => [m.index, Buffer.from(m.line).toString("latin1"), m.problem]),
    ).toEqual([
      [1, "2\tb\r", "raw carriage return in data (must be escaped as \\r)"],
      [2, "3\t\xff", "line is not valid UTF-8"],
      [5, "6", "line has 1 fields, expected 2"],
    ]);
  });

  it("loads nothing when every line is malformed", () => {
    const prepared = prepareRows(Buffer.from("1\n2\n"), 2, 2);
    expect(prepared.data).toHaveLength(0);
    expect(prepared.loadCount).toBe(0);
    expect(prepared.malformed).toHaveLength(2);
  });

  it("refuses a row count that disagrees with the data", () => {
    expect(() => prepareRows(Buffer.from("1\ta\n"), 2, 2)).toThrow(
      /rowCount is 2 but rows.data holds 1 lines/,
    );
  });
});

describe("planWrite", () => {
  it("loads text into a staging table and casts on insert", () => {
    const plan = planWrite(info(), request());
    expect(plan.createStageSql).toBe(
      "create temp table dray_stage (dray_ord int8 generated always as identity, c1 text, c2 text) on commit drop",
    );
    expect(plan.copySql).toBe("copy pg_temp.dray_stage (c1, c2) from stdin");
    expect(plan.writeSql).toContain(
      'insert into "s"."t" as dray_t ("id", "name") select c1::bigint, c2::character varying from pg_temp.dray_stage where dray_ord between $1::int8 and $2::int8',
    );
    expect(plan.writeSql).not.toContain("on conflict");
    expect(plan.keyPositions).toEqual([0]);
  });

  it("merges on the key, updating the other fields, counting by xmax", () => {
    const plan = planWrite(info(), request({ strategy: "merge" }));
    expect(plan.writeSql).toContain('on conflict ("id") do update set "name" = excluded."name"');
    expect(plan.writeSql).toContain("returning (xmax = 0) as inserted");
  });

  it("leaves rows equal to their source alone, comparing each type safely", () => {
    const plan = planWrite(info(), request({ strategy: "merge" }));
    expect(plan.writeSql).toContain(
      'do update set "name" = excluded."name" where (dray_t."name" collate "C") is distinct from (excluded."name" collate "C")',
    );
    // Unchanged rows are not returned: updated = rows in the range minus those inserted.
    expect(plan.writeSql).toContain(
      "(select count(*) from pg_temp.dray_stage where dray_ord between $1::int8 and $2::int8) - count(*) filter (where inserted)",
    );
    const fields = [
      { name: "n", type: "numeric(10,2)", castType: "numeric" },
      { name: "at", type: "timestamp with time zone", castType: "timestamp with time zone" },
      { name: "doc", type: "json", castType: "json" },
    ].map((f) => ({ ...f, notNull: false, hasDefault: false, generated: false, identity: "" }));
    expect(changedCondition(fields)).toBe(
      '(dray_t."n"::text collate "C", dray_t."at", dray_t."doc"::text collate "C") is distinct from (excluded."n"::text collate "C", excluded."at", excluded."doc"::text collate "C")',
    );
  });

  it("counts present keys instead of xmax for partitioned tables", () => {
    const plan = planWrite(info({ partitioned: true }), request({ strategy: "merge" }));
    expect(plan.writeSql).not.toContain("xmax");
    expect(plan.writeSql).toContain('exists (select 1 from "s"."t" t where t."id" = s.c1::bigint)');
  });

  it("overrides GENERATED ALWAYS identities and refuses generated columns", () => {
    const identity = info({ fields: [field("id", { identity: "a" }), field("name")] });
    expect(planWrite(identity, request()).writeSql).toContain("overriding system value");
    const generated = info({ fields: [field("id"), field("name", { generated: true })] });
    expect(() => planWrite(generated, request())).toThrow(/generated fields/);
  });

  it("needs the key among the written fields and a key for merge", () => {
    expect(() =>
      planWrite(
        info(),
        request({ rows: { encoding: "copy_text", fields: ["name"], rowCount: 0, data: new Uint8Array() } }),
      ),
    ).toThrow(/not among rows.fields/);
    expect(() =>
      planWrite(
        info({ primaryKey: [], uniqueKeys: [], uniqueIndexes: [] }),
        request({ strategy: "merge", keyFields: [] }),
      ),
    ).toThrow(expect.objectContaining({ code: "failed_precondition" }));
    expect(
      planWrite(info({ primaryKey: [], uniqueKeys: [], uniqueIndexes: [] }), request({ keyFields: [] }))
        .keyPositions,
    ).toEqual([]);
  });
});

describe("validateWriteRequest", () => {
  it("refuses malformed requests", () => {
    for (const bad of [
      { batchId: "" },
      { strategy: "upsert" },
      { rejectPolicy: "skip" },
      { rows: { encoding: "csv", fields: ["id"], rowCount: 0, data: new Uint8Array() } },
      { rows: { encoding: "copy_text", fields: [], rowCount: 0, data: new Uint8Array() } },
      { rows: { encoding: "copy_text", fields: ["id"], rowCount: -1, data: new Uint8Array() } },
    ])
      expect(() => validateWriteRequest(request(bad as Partial<WriteBatchRequest>))).toThrow(
        expect.objectContaining({ code: "invalid_argument" }),
      );
  });
});

describe("blaming a field", () => {
  const pg = (extra: Record<string, string>) =>
    Object.assign(new Error(extra.message ?? "x"), { name: "PostgresError", code: "23505", ...extra });

  it("uses the error's column, else the key in its detail", () => {
    expect(blamedField(pg({ column_name: "name" }))).toBe("name");
    expect(blamedField(pg({ detail: 'Key (parent_id)=(9) is not present in table "p".' }))).toBe("parent_id");
    expect(blamedField(pg({ detail: "Key (a, b)=(1, 2) already exists." }))).toBe("a, b");
    expect(blamedField(pg({}))).toBeUndefined();
  });

  it("matches a unique field type named in the message", () => {
    const fields = info().fields;
    expect(fieldByTypeInMessage(fields, new Error("value too long for type character varying(3)"))).toBe(
      "name",
    );
    expect(fieldByTypeInMessage(fields, new Error("numeric field overflow"))).toBeUndefined();
  });
});
