import { describe, expect, it } from "vitest";
import { isDrayError } from "./dray-error.js";
import {
  formatEntityName,
  MAX_ENTITY_NAME_LENGTH,
  normaliseEntityName,
  parseEntityName,
  partNeedsQuotes,
} from "./entity-name.js";

function errorOf(fn: () => unknown): { code: string; message: string; details: unknown } {
  try {
    fn();
  } catch (e) {
    if (isDrayError(e)) return { code: e.code, message: e.message, details: e.details };
    throw e;
  }
  throw new Error("expected a DrayError");
}

describe("formatEntityName", () => {
  it("writes plain parts as schema.table", () => {
    expect(formatEntityName({ schema: "public", table: "users" })).toBe("public.users");
    expect(formatEntityName({ schema: "S", table: "my table" })).toBe("S.my table");
  });

  it("quotes only the parts that need it, doubling embedded quotes", () => {
    expect(formatEntityName({ schema: "sch.ema", table: "t" })).toBe('"sch.ema".t');
    expect(formatEntityName({ schema: "sch", table: "ema.t" })).toBe('sch."ema.t"');
    expect(formatEntityName({ schema: "s", table: 'say "hi"' })).toBe('s."say ""hi"""');
    expect(formatEntityName({ schema: " s", table: "t " })).toBe('" s"."t "');
  });

  it("gives the two tables that used to collide two different names", () => {
    const a = formatEntityName({ schema: "sch.ema", table: "t" });
    const b = formatEntityName({ schema: "sch", table: "ema.t" });
    expect(a).not.toBe(b);
    expect(parseEntityName(a)).toEqual({ schema: "sch.ema", table: "t" });
    expect(parseEntityName(b)).toEqual({ schema: "sch", table: "ema.t" });
  });

  it("tells which parts need quotes", () => {
    expect(partNeedsQuotes("public")).toBe(false);
    expect(partNeedsQuotes("a.b")).toBe(true);
    expect(partNeedsQuotes('a"b')).toBe(true);
    expect(partNeedsQuotes("")).toBe(true);
    expect(partNeedsQuotes("\tx")).toBe(true);
  });
});

describe("parseEntityName", () => {
  it("reads the canonical, the fully quoted and mixed forms", () => {
    expect(parseEntityName("public.users")).toEqual({ schema: "public", table: "users" });
    expect(parseEntityName('"public"."users"')).toEqual({ schema: "public", table: "users" });
    expect(parseEntityName('public."users"')).toEqual({ schema: "public", table: "users" });
    expect(parseEntityName('"a""b"."c.d"')).toEqual({ schema: 'a"b', table: "c.d" });
  });

  it("round-trips every formatted name", () => {
    const names = [
      { schema: "public", table: "users" },
      { schema: "sch.ema", table: "t" },
      { schema: "sch", table: "ema.t" },
      { schema: '"', table: '""' },
      { schema: "a.b.c", table: ".x." },
      { schema: "É", table: "tâble with spaces" },
    ];
    for (const n of names) expect(parseEntityName(formatEntityName(n))).toEqual(n);
  });

  it("refuses an unquoted name with several dots and lists the quoted alternatives", () => {
    const e = errorOf(() => parseEntityName("sch.ema.t"));
    expect(e.code).toBe("invalid_argument");
    expect(e.message).toContain("sch.ema.t");
    expect(e.message).toContain("ambiguous");
    expect(e.message).toContain('sch."ema.t"');
    expect(e.message).toContain('"sch.ema".t');
    expect(e.details).toMatchObject({ alternatives: ['sch."ema.t"', '"sch.ema".t'] });
  });

  it("refuses a quoted schema followed by an unquoted table with a dot", () => {
    const e = errorOf(() => parseEntityName('"sch".ema.t'));
    expect(e.message).toContain('"sch"."ema.t"');
  });

  it.each([
    ["", "must be schema.table"],
    ["users", "must be schema.table"],
    [".users", "empty schema"],
    ["public.", "empty table"],
    ['"public.users', "unterminated"],
    ['"public"users', "followed by a dot"],
    ['public."users"x', "nothing may follow"],
    ['pub"lic.users', "double quote"],
    ["public.us\0ers", "NUL"],
  ])("refuses %j (%s)", (text, why) => {
    const e = errorOf(() => parseEntityName(text));
    expect(e.code).toBe("invalid_argument");
    expect(e.message).toContain(why);
  });

  it("checks the length before looking at the text", () => {
    const e = errorOf(() => parseEntityName(".".repeat(1024 * 1024)));
    expect(e.message).toContain(`longer than ${MAX_ENTITY_NAME_LENGTH}`);
    expect(e.message.length).toBeLessThan(200);
  });

  it("is linear: pathological inputs of the largest accepted size parse at once", () => {
    const inputs = [
      ".".repeat(MAX_ENTITY_NAME_LENGTH),
      `${'"'.repeat(MAX_ENTITY_NAME_LENGTH - 1)}\n`,
      "a.".repeat(MAX_ENTITY_NAME_LENGTH / 2),
      `"${'""'.repeat(MAX_ENTITY_NAME_LENGTH / 2 - 1)}`,
    ];
    for (const text of inputs) expect(() => parseEntityName(text)).toThrow();
  });
});

describe("normaliseEntityName", () => {
  it("turns every accepted form into the canonical one", () => {
    expect(normaliseEntityName('"public"."users"')).toBe("public.users");
    expect(normaliseEntityName({ schema: "sch", table: "ema.t" })).toBe('sch."ema.t"');
    expect(normaliseEntityName('"sch.ema"."t"')).toBe('"sch.ema".t');
  });

  it("refuses objects with empty, NUL or missing parts", () => {
    expect(errorOf(() => normaliseEntityName({ schema: "", table: "t" })).message).toContain("empty schema");
    expect(errorOf(() => normaliseEntityName({ schema: "s", table: "t\0" })).message).toContain("NUL");
    expect(errorOf(() => normaliseEntityName({ schema: "s" } as never)).code).toBe("invalid_argument");
  });
});
