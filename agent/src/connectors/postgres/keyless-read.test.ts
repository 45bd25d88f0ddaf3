import { describe, expect, it } from "vitest";
import type { ReadBatchRequest } from "../../connector.js";
import { settingPlaceholder } from "./copy-read.js";
import type { FieldInfo } from "./entity-catalog.js";
import {
  buildWindowQuery,
  isSnapshotId,
  keylessCursor,
  keylessRange,
  nextWindowBlocks,
  parseKeylessCursor,
  parseTid,
  rowsPerBlock,
  windowBlocks,
} from "./keyless-read.js";
import type { KeysetPlan } from "./keyset-read.js";

const field = (name: string, castType: string): FieldInfo => ({
  name,
  type: castType,
  castType,
  notNull: false,
  hasDefault: false,
  generated: false,
  identity: "",
});
const x = field("x", "integer");
const y = field("y", "text");
const plan: KeysetPlan = {
  from: 'only "s"."t"',
  fields: [x, y],
  key: [],
  nulled: new Set(),
  resolve: (name) => (name === "x" ? x : y),
};
const request = (extra: Partial<ReadBatchRequest> = {}): ReadBatchRequest => ({
  entity: { schema: "s", name: "t" },
  keyFields: [],
  maxRows: 100,
  maxBytes: 1000,
  ...extra,
});
const ID = "00000003-0000001B-1";

describe("parseTid", () => {
  it("reads (block,offset) and nothing else", () => {
    expect(parseTid("(12,3)")).toEqual({ block: 12, offset: 3 });
    expect(parseTid("(0,0)")).toEqual({ block: 0, offset: 0 });
    expect(parseTid("(4294967294,65535)")).toEqual({ block: 4294967294, offset: 65535 });
    for (const bad of [
      "",
      "(1,2",
      "1,2)",
      "(1, 2)",
      "(-1,2)",
      "(1,65536)",
      "(4294967295,1)",
      "(a,1)",
      "(1,)",
      "(,1)",
      "(1.5,2)",
    ])
      expect(parseTid(bad)).toBeNull();
  });
});

describe("isSnapshotId", () => {
  it("accepts hex digits and dashes only", () => {
    expect(isSnapshotId(ID)).toBe(true);
    expect(isSnapshotId("abcdef-0123")).toBe(true);
    for (const bad of ["", "0000'; drop table t; --", "00000003 0000001B", "g", "x".repeat(65), 12, null])
      expect(isSnapshotId(bad)).toBe(false);
  });
});

describe("parseKeylessCursor and keylessRange", () => {
  it("round-trips a cursor", () => {
    const cursor = keylessCursor(ID, "(7,12)", 40);
    expect(cursor).toEqual([ID, "(7,12)", "40"]);
    expect(parseKeylessCursor("after", cursor)).toEqual({
      snapshotId: ID,
      position: { block: 7, offset: 12 },
      totalBlocks: 40,
    });
  });

  it("refuses malformed cursors with invalid_argument", () => {
    for (const bad of [
      ["1"],
      [ID, "(1,1)"],
      ["'x'", "(1,1)", "3"],
      [ID, "1,1", "3"],
      [ID, "(1,1)", "-3"],
      [ID, "(1,1)", "3 "],
    ])
      expect(() => parseKeylessCursor("after", bad)).toThrow(
        expect.objectContaining({ code: "invalid_argument" }),
      );
  });

  it("takes the snapshot from after or until, and refuses two snapshots", () => {
    expect(keylessRange(request())).toEqual({
      snapshotId: null,
      totalBlocks: null,
      after: null,
      until: null,
    });
    expect(keylessRange(request({ until: [ID, "(2,3)", "9"] }))).toEqual({
      snapshotId: ID,
      totalBlocks: 9,
      after: null,
      until: { block: 2, offset: 3 },
    });
    expect(() =>
      keylessRange(request({ after: [ID, "(1,1)", "9"], until: ["0000-1", "(2,3)", "9"] })),
    ).toThrow(expect.objectContaining({ code: "invalid_argument" }));
  });
});

describe("window sizing", () => {
  it("sizes windows from the statistics, then from the rows seen", () => {
    expect(rowsPerBlock({ tuples: 5000, pages: 27 })).toBeCloseTo(185.19, 1);
    expect(rowsPerBlock({ tuples: -1, pages: 0 })).toBe(60);
    expect(windowBlocks(1000, 100)).toBe(10);
    expect(windowBlocks(1, 100)).toBe(1);
    expect(windowBlocks(10, 0)).toBe(10000);
    expect(nextWindowBlocks(10, 0, 500)).toBe(20);
    expect(nextWindowBlocks(10, 100, 500)).toBe(50);
  });
});

describe("buildWindowQuery", () => {
  it("reads a window of blocks in ctid order with every value bound", () => {
    const query = buildWindowQuery(request(), plan, {
      after: null,
      fromBlock: 0,
      endBlock: 8,
      until: null,
      limit: 100,
    });
    expect(query.sql).toBe(
      'select "x", "y", ctid from only "s"."t" where ctid < $1::tid order by ctid limit $2::int8',
    );
    expect(query.params).toEqual(["(8,0)", 100]);
    expect(query).toMatchObject({ fields: ["x", "y"], columnCount: 3, keyPositions: [2] });
  });

  it("continues after a position, or from a block, up to until, with conditions and nulled fields", () => {
    const after = buildWindowQuery(
      request({ where: [{ field: "y", operator: "eq", values: ["a'b"] }] }),
      { ...plan, nulled: new Set(["y"]) },
      {
        after: { block: 3, offset: 9 },
        fromBlock: 3,
        endBlock: 10,
        until: { block: 9, offset: 2 },
        limit: 50,
      },
    );
    expect(after.sql).toBe(
      'select "x", null, ctid from only "s"."t" where ctid > $1::tid and ctid < $2::tid and ctid <= $3::tid' +
        ' and "y" = $4::text order by ctid limit $5::int8',
    );
    expect(after.params).toEqual(["(3,9)", "(10,0)", "(9,2)", "a'b", 50]);
    const from = buildWindowQuery(
      request(),
      plan,
      { after: null, fromBlock: 10, endBlock: 30, until: null, limit: 5 },
      settingPlaceholder,
    );
    expect(from.sql).toBe(
      `select "x", "y", ctid from only "s"."t" where ctid >= pg_catalog.current_setting('dray.p1')::tid` +
        ` and ctid < pg_catalog.current_setting('dray.p2')::tid order by ctid limit pg_catalog.current_setting('dray.p3')::int8`,
    );
  });
});
