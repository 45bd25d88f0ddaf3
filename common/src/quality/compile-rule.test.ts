import { describe, expect, it } from "vitest";
import { compileQualityRule } from "./compile-rule.js";

describe("compileQualityRule", () => {
  it("not_null fails NULL only", () => {
    const check = compileQualityRule("not_null", {}, "text");
    expect(check(null)).toBe(false);
    expect(check("")).toBe(true);
    expect(check("x")).toBe(true);
  });

  it("lets NULL pass every rule but not_null", () => {
    const rules: [string, Record<string, unknown>, string][] = [
      ["matches", { pattern: "^x$" }, "text"],
      ["range", { min: 1 }, "integer"],
      ["range", { min: "2020-01-01" }, "date"],
      ["max_length", { length: 1 }, "text"],
      ["one_of", { values: ["a"] }, "text"],
    ];
    for (const [rule, options, type] of rules)
      expect(compileQualityRule(rule, options, type)(null)).toBe(true);
  });

  it("matches finds the pattern anywhere unless anchored, with flags", () => {
    expect(compileQualityRule("matches", { pattern: "@" }, "text")("a@b")).toBe(true);
    expect(compileQualityRule("matches", { pattern: "^[a-z]+$" }, "text")("abc1")).toBe(false);
    expect(compileQualityRule("matches", { pattern: "^[a-z]+$", flags: "i" }, "text")("ABC")).toBe(true);
    expect(compileQualityRule("matches", { pattern: "^[a-z]+$" }, "text")("ABC")).toBe(false);
  });

  it("matches runs in linear time on the pattern that hangs backtracking engines", () => {
    const check = compileQualityRule("matches", { pattern: "(a+)+$" }, "text");
    // A backtracking engine would not finish this in any reasonable time; re2js answers at once.
    expect(check(`${"a".repeat(50_000)}!`)).toBe(false);
  });

  it("range compares numbers as numbers, bounds included, NaN in no range", () => {
    const check = compileQualityRule("range", { min: -1.5, max: 100 }, "numeric(6,2)");
    expect(["-1.50", "0", "99.99", "100.00"].map(check)).toEqual([true, true, true, true]);
    expect(["-1.51", "100.01", "1e9", "NaN"].map(check)).toEqual([false, false, false, false]);
    expect(compileQualityRule("range", { max: 9 }, "bigint")("10")).toBe(false);
  });

  it("range compares dates and timestamps in their ISO text form", () => {
    const date = compileQualityRule("range", { min: "2000-01-01", max: "2020-12-31" }, "date");
    expect(["2000-01-01", "2010-06-15", "2020-12-31"].map(date)).toEqual([true, true, true]);
    expect(["1999-12-31", "2021-01-01", "infinity", "-infinity", "0044-03-15 BC"].map(date)).toEqual([
      false,
      false,
      false,
      false,
      false,
    ]);
    const ts = compileQualityRule("range", { max: "2020-01-01T12:00:00" }, "timestamp without time zone");
    expect(ts("2020-01-01 11:59:59.5")).toBe(true);
    expect(ts("2020-01-01 12:00:01")).toBe(false);
    expect(compileQualityRule("range", { min: "2000-01-01" }, "date")("infinity")).toBe(true);
  });

  it("range orders values as PostgreSQL does, not as floats or plain text", () => {
    // Each case was checked against PostgreSQL 15: value <= max.
    const le = (max: unknown, type: string, value: string) =>
      compileQualityRule("range", { max }, type)(value);
    expect(le("2020-12-31", "date", "10000-01-01")).toBe(false);
    expect(le("2020-12-31", "date", "9999-01-01")).toBe(false);
    expect(le("2020-01-31T10:00", "timestamp without time zone", "2020-01-31 10:00:00")).toBe(true);
    expect(le("2020-01-31", "timestamp without time zone", "2020-01-31 00:00:00")).toBe(true);
    expect(le("2020-01-31", "timestamp without time zone", "2020-01-31 00:00:00.000001")).toBe(false);
    expect(le(0.3, "numeric", "0.30000000000000001")).toBe(false);
    expect(le(0.3, "numeric", "0.300")).toBe(true);
    expect(le(9007199254740992, "bigint", "9007199254740993")).toBe(false);
    expect(le(-1, "integer", "-0")).toBe(false);
    expect(le(1e21, "numeric", "1000000000000000000000.0")).toBe(true);
    expect(le(1, "double precision", "1e-5")).toBe(true);
    expect(le(1, "double precision", "Infinity")).toBe(false);
  });

  it("range compares timestamptz values by instant, whatever their offsets", () => {
    const check = compileQualityRule(
      "range",
      { max: "2020-01-31T10:00:00+02:00" },
      "timestamp with time zone",
    );
    expect(check("2020-01-31 08:00:00+00")).toBe(true);
    expect(check("2020-01-31 08:00:00.000001+00")).toBe(false);
    expect(check("2020-01-31 13:29:59+05:30")).toBe(true);
    const utc = compileQualityRule("range", { min: "2020-01-31" }, "timestamp with time zone");
    expect(utc("2020-01-30 23:59:59-01")).toBe(true);
    expect(utc("2020-01-30 23:59:59+00")).toBe(false);
  });

  it("max_length counts characters, not bytes or UTF-16 units", () => {
    const check = compileQualityRule("max_length", { length: 3 }, "text");
    expect(check("abc")).toBe(true);
    expect(check("abcd")).toBe(false);
    expect(check("é😀ü")).toBe(true);
    expect(check("é😀üx")).toBe(false);
  });

  it("one_of compares text forms exactly", () => {
    const check = compileQualityRule("one_of", { values: ["active", "1"] }, "text");
    expect(["active", "1"].map(check)).toEqual([true, true]);
    expect(["Active", "01", ""].map(check)).toEqual([false, false, false]);
  });

  it("max_length agrees with the number of code points for every short string", () => {
    // Every string of up to 4 units drawn from ASCII, BMP, astral and combining characters.
    const units = ["a", "é", "😀", "\u0301", "𝔸"];
    let strings = [""];
    for (let len = 1; len <= 4; len++)
      strings = strings.concat(
        strings.filter((s) => [...s].length === len - 1).flatMap((s) => units.map((u) => s + u)),
      );
    expect(strings.length).toBe(1 + 5 + 25 + 125 + 625);
    for (let n = 1; n <= 5; n++) {
      const check = compileQualityRule("max_length", { length: n }, "text");
      for (const s of strings) expect(check(s)).toBe([...s].length <= n);
    }
  });

  it.each([
    ["unique", {}, "text", "is not known"],
    ["matches", { pattern: "([a" }, "text", "not a valid RE2 pattern"],
    ["matches", { pattern: "a", flags: "x" }, "text", 'not "x"'],
    ["range", { min: "a" }, "integer", "option min must be a number"],
    ["range", { min: 1 }, "text", "not text"],
    ["range", { min: 2020 }, "date", "ISO date"],
    ["max_length", { length: 0 }, "text", "at least 1"],
    ["one_of", { values: "a" }, "text", "array of strings"],
  ])("refuses %s %j on %s", (rule, options, type, message) => {
    expect(() => compileQualityRule(rule, options, type)).toThrow(message);
  });
});
