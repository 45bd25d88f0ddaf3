import { describe, expect, it } from "vitest";
import type { ReadBatchRequest } from "../../connector.js";
import { buildCopyRead, settingPlaceholder, settingsCanCarry, settingsStatement } from "./copy-read.js";
import type { FieldInfo } from "./entity-catalog.js";
import type { KeysetPlan } from "./keyset-read.js";

const field = (name: string, castType: string): FieldInfo => ({
  name,
  type: castType,
  castType,
  notNull: true,
  hasDefault: false,
  generated: false,
  identity: "",
});
const id = field("id", "bigint");
const body = field("body", "text");
const plan = (fields: FieldInfo[]): KeysetPlan => ({
  from: 'only "s"."t"',
  fields,
  key: [id],
  nulled: new Set(),
  resolve: (name) => (name === "id" ? id : body),
});
const request = (extra: Partial<ReadBatchRequest> = {}): ReadBatchRequest => ({
  entity: { schema: "s", name: "t" },
  keyFields: ["id"],
  maxRows: 100,
  maxBytes: 1000,
  ...extra,
});

describe("settingsStatement", () => {
  it("stores every non-NULL value, bound, in its transaction-local setting (prepared: its text is shared)", () => {
    expect(settingsStatement(["41", null, 100])).toEqual({
      text: "select pg_catalog.set_config('dray.p1', $1::text, true), pg_catalog.set_config('dray.p3', $2::text, true)",
      params: ["41", 100],
      prepared: true,
    });
    expect(settingsStatement([])).toBeNull();
    expect(settingsStatement([null])).toBeNull();
  });
});

describe("settingPlaceholder", () => {
  it("reads a setting back, and writes NULL as a literal", () => {
    expect(settingPlaceholder(3, "x")).toBe("pg_catalog.current_setting('dray.p3')");
    expect(settingPlaceholder(3, null)).toBe("null");
    expect(settingPlaceholder(3, undefined)).toBe("null");
  });
});

describe("settingsCanCarry", () => {
  it("accepts text, numbers and NULL only", () => {
    expect(settingsCanCarry(["a", 1, null, undefined])).toBe(true);
    expect(settingsCanCarry(["a\0"])).toBe(false);
    expect(settingsCanCarry([Number.NaN])).toBe(false);
    expect(settingsCanCarry([{}])).toBe(false);
  });
});

describe("buildCopyRead", () => {
  it("wraps the keyset select in COPY with every value in a setting", () => {
    const hostile = "1'); drop table t; --";
    const read = buildCopyRead(
      request({
        after: ["41"],
        until: ["90"],
        where: [{ field: "body", operator: "eq", values: [hostile] }],
      }),
      plan([id, body]),
    )!;
    expect(read.copySql).toBe(
      `copy (select "id", "body" from only "s"."t" where "id" > pg_catalog.current_setting('dray.p1')::bigint` +
        ` and "id" <= pg_catalog.current_setting('dray.p2')::bigint` +
        ` and "body" = pg_catalog.current_setting('dray.p3')::text` +
        ` order by "id" limit pg_catalog.current_setting('dray.p4')::int8) to stdout`,
    );
    expect(read.copySql).not.toContain("drop table");
    expect(read.setup?.params).toEqual(["41", "90", hostile, 100]);
    expect(read).toMatchObject({ fields: ["id", "body"], columnCount: 2, keyPositions: [0] });
  });

  it("selects the key after the fields when it is not read", () => {
    const read = buildCopyRead(request(), plan([body]))!;
    expect(read.copySql).toMatch(/^copy \(select "body", "id" from/);
    expect(read).toMatchObject({ fields: ["body"], columnCount: 2, keyPositions: [1] });
  });
});
