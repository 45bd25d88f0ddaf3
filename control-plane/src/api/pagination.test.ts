import { isDrayError } from "@dray/common";
import { sql } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";
import { describe, expect, it } from "vitest";
import {
  decodeCursor,
  encodeCursor,
  type KeysetKey,
  keysetAfter,
  keysetOrderBy,
  MAX_CURSOR_LENGTH,
  pageOf,
  pageQuery,
} from "./pagination.js";

const render = (q: ReturnType<typeof sql>) => new PgDialect().sqlToQuery(q);

function refusal(run: () => unknown): { code: string; message: string; details: unknown } {
  try {
    run();
  } catch (error) {
    if (isDrayError(error)) return { code: error.code, message: error.message, details: error.details };
    throw error;
  }
  throw new Error("expected a refusal");
}

describe("cursors", () => {
  it("round-trips a position, including nulls and any text", () => {
    const values = ['Ünïcode \u0000 "quoted"', null, "12.345678"];
    const cursor = encodeCursor("things:name", values);
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(cursor, "things:name", 3)).toEqual(values);
  });

  it("refuses malformed cursors and cursors of another list, naming `cursor`", () => {
    const other = encodeCursor("things:health", ["0", "a", "b"]);
    const cases = [
      "",
      "x".repeat(MAX_CURSOR_LENGTH + 1),
      "abc=",
      "ab c",
      "a\u0000",
      Buffer.from("{").toString("base64url"),
      Buffer.from("[1,2]").toString("base64url"),
      Buffer.from(JSON.stringify(["things:name", [1, 2, 3]])).toString("base64url"),
      encodeCursor("things:name", ["only one"]),
      other,
    ];
    for (const cursor of cases) {
      const error = refusal(() => decodeCursor(cursor, "things:name", 3));
      expect(error.code).toBe("invalid_argument");
      expect(error.message).toMatch(/^cursor is not valid/);
      expect(error.details).toEqual({ issues: [expect.objectContaining({ path: "cursor" })] });
    }
    expect(refusal(() => decodeCursor(other, "things:name", 3)).message).toContain(
      "another list or sort order",
    );
  });

  it("checks a 1 MiB cursor in linear time", () => {
    const started = performance.now();
    refusal(() => decodeCursor("a".repeat(1 << 20), "x", 1));
    refusal(() => decodeCursor(`${"a".repeat(MAX_CURSOR_LENGTH - 1)}!`, "x", 1));
    expect(performance.now() - started).toBeLessThan(100);
  });
});

describe("limit", () => {
  it("defaults to 50 and accepts 1–200 whole numbers only", () => {
    const limit = pageQuery.limit;
    expect(limit.parse(undefined)).toBe(50);
    expect(limit.parse("1")).toBe(1);
    expect(limit.parse("200")).toBe(200);
    for (const bad of ["0", "201", "-3", "2.5", "abc", "1e400"])
      expect(limit.safeParse(bad).success, bad).toBe(false);
  });
});

describe("keyset SQL", () => {
  const keys: KeysetKey[] = [
    { expr: sql`k1`, dir: "desc", nullable: true },
    { expr: sql`k2`, dir: "asc" },
  ];

  it("orders with nulls last and compares after the position with bound parameters", () => {
    expect(keysetOrderBy(keys).map((k) => render(k).sql)).toEqual(["k1 desc nulls last", "k2 asc"]);
    const after = render(keysetAfter(keys, ["5", "x'; drop table t; --"]));
    expect(after.sql).toBe("((k1 < $1 or k1 is null) or (k1 = $2 and k2 > $3))");
    expect(after.params).toEqual(["5", "5", "x'; drop table t; --"]);
  });

  it("after a null only rows with the same null and a later tie-break follow", () => {
    const after = render(keysetAfter(keys, [null, "b"]));
    expect(after.sql).toBe("(false or (k1 is null and k2 > $1))");
  });
});

describe("pageOf", () => {
  const position = (n: number) => [String(n)];
  it("gives a next cursor only when a row beyond the limit was fetched", () => {
    expect(pageOf([1, 2], 2, "n", position)).toEqual({ items: [1, 2], next: null });
    const page = pageOf([1, 2, 3], 2, "n", position);
    expect(page.items).toEqual([1, 2]);
    expect(decodeCursor(page.next!, "n", 1)).toEqual(["2"]);
  });
});
