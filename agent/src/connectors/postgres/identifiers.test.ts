import { describe, expect, it } from "vitest";
import {
  displayName,
  qualifiedName,
  quoteIdentifier,
  validateEntityName,
  validateFieldList,
  validateIdentifier,
} from "./identifiers.js";

describe("validateIdentifier", () => {
  it("accepts any characters but NUL up to 63 bytes", () => {
    for (const name of ["users", 'We"ird; drop table x; --', "a".repeat(63), "€".repeat(21), " ", "日本"])
      expect(validateIdentifier("table", name)).toBe(name);
  });

  it("rejects empty, NUL, non-strings and names longer than 63 bytes", () => {
    for (const bad of ["", "a\0b", "a".repeat(64), "€".repeat(22), 42, null, undefined]) {
      expect(() => validateIdentifier("table", bad)).toThrow(
        expect.objectContaining({ code: "invalid_argument" }),
      );
    }
  });

  it("names the kind in the message", () => {
    expect(() => validateIdentifier("field", "")).toThrow(/field name must not be empty/);
  });
});

describe("quoteIdentifier", () => {
  it("double-quotes and doubles embedded quotes", () => {
    expect(quoteIdentifier("users")).toBe('"users"');
    expect(quoteIdentifier('x"; drop table y; --')).toBe('"x""; drop table y; --"');
    expect(quoteIdentifier('""')).toBe('""""""');
  });

  it("refuses invalid names instead of quoting them", () => {
    expect(() => quoteIdentifier("")).toThrow();
    expect(() => quoteIdentifier("a\0")).toThrow();
  });

  it("qualifies schema and table", () => {
    expect(qualifiedName({ schema: "my schema", name: 't"1' })).toBe('"my schema"."t""1"');
  });
});

describe("validateEntityName and validateFieldList", () => {
  it("refuses the ledger schema", () => {
    expect(() => validateEntityName({ schema: "dray", name: "batch_ledger" })).toThrow(/reserved/);
    expect(validateEntityName({ schema: "public", name: "t" })).toEqual({ schema: "public", name: "t" });
  });

  it("refuses duplicate and invalid field names", () => {
    expect(validateFieldList("fields", ["a", "b"])).toEqual(["a", "b"]);
    expect(() => validateFieldList("fields", ["a", "a"])).toThrow(/twice/);
    expect(() => validateFieldList("fields", ["a", ""])).toThrow();
  });
});

describe("displayName", () => {
  it("names tables whose parts hold dots or quotes unambiguously", () => {
    expect(displayName({ schema: "public", name: "users" })).toBe("public.users");
    expect(displayName({ schema: "sch.ema", name: "t" })).toBe('"sch.ema".t');
    expect(displayName({ schema: "sch", name: "ema.t" })).toBe('sch."ema.t"');
    expect(displayName({ schema: "s", name: 'a"b' })).toBe('s."a""b"');
  });
});
