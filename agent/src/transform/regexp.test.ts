import { DrayError } from "@dray/common";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createPrf } from "./prf.js";
import { MAX_PATTERN_LENGTH } from "./regexp.js";
import { compileTransform, validateTransformOptions } from "./registry.js";

const prf = createPrf(Buffer.alloc(32, 1));
const compile = (options: Record<string, unknown>) =>
  compileTransform("regexp_replace", options, prf, "text");

function refusal(options: Record<string, unknown>): string {
  try {
    validateTransformOptions("regexp_replace", options);
  } catch (error) {
    expect(error).toBeInstanceOf(DrayError);
    expect((error as DrayError).code).toBe("invalid_argument");
    return (error as DrayError).message;
  }
  throw new Error(`expected ${JSON.stringify(options)} to be refused`);
}

describe("regexp_replace", () => {
  it("replaces every match, with $1… group references", () => {
    expect(compile({ pattern: "\\d{3}$", replacement: "000" })("+44 20 7946 0958")).toBe("+44 20 7946 0000");
    expect(compile({ pattern: "\\d", replacement: "#" })("a1b22c333")).toBe("a#b##c###");
    expect(compile({ pattern: "(\\w+)@(\\w+)", replacement: "$2 at $1" })("ada@lovelace")).toBe(
      "lovelace at ada",
    );
    expect(compile({ pattern: "x", replacement: "$$1" })("axb")).toBe("a$1b");
    expect(compile({ pattern: "zzz", replacement: "y" })("no match")).toBe("no match");
  });

  it("takes flags i, m and s", () => {
    expect(compile({ pattern: "ada", replacement: "X" })("Ada ada")).toBe("Ada X");
    expect(compile({ pattern: "ada", replacement: "X", flags: "i" })("Ada ada")).toBe("X X");
    expect(compile({ pattern: "^a", replacement: "X" })("a\na")).toBe("X\na");
    expect(compile({ pattern: "^a", replacement: "X", flags: "m" })("a\na")).toBe("X\nX");
    expect(compile({ pattern: "a.b", replacement: "X" })("a\nb")).toBe("a\nb");
    expect(compile({ pattern: "a.b", replacement: "X", flags: "s" })("a\nb")).toBe("X");
    expect(compile({ pattern: "A.B", replacement: "X", flags: "is" })("a\nb")).toBe("X");
  });

  it("agrees with JavaScript's replaceAll on literal patterns", { timeout: 30_000 }, () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 3, unit: "grapheme-ascii" }),
        fc.string(),
        (lit, text) => {
          const pattern = lit.replace(/[\\^$.*+?()[\]{}|]/g, "\\$&");
          expect(compile({ pattern, replacement: "#" })(text)).toBe(text.replaceAll(lit, "#"));
        },
      ),
    );
  });

  it("is deterministic and keyless (the same for any key)", () => {
    const other = compileTransform(
      "regexp_replace",
      { pattern: "\\d", replacement: "0" },
      createPrf(Buffer.alloc(32, 9)),
      "text",
    );
    const mine = compile({ pattern: "\\d", replacement: "0" });
    fc.assert(
      fc.property(fc.string(), (v) => {
        expect(other(v)).toBe(mine(v));
      }),
    );
  });

  it("refuses backreferences, lookaround and long patterns, saying what to do", () => {
    expect(refusal({ pattern: "(a)\\1", replacement: "" })).toMatch(
      /backreference .* use \$1… in the replacement/,
    );
    expect(refusal({ pattern: "(?<n>a)\\k<n>", replacement: "" })).toMatch(/backreference/);
    expect(refusal({ pattern: "a(?=b)", replacement: "" })).toMatch(
      /regexp_replace: option pattern has a lookahead/,
    );
    expect(refusal({ pattern: "a(?!b)", replacement: "" })).toMatch(/negative lookahead/);
    expect(refusal({ pattern: "(?<=a)b", replacement: "" })).toMatch(
      /has a lookbehind .* RE2 does not support/,
    );
    expect(refusal({ pattern: "(?<!a)b", replacement: "" })).toMatch(/negative lookbehind/);
    expect(refusal({ pattern: "a".repeat(MAX_PATTERN_LENGTH + 1), replacement: "" })).toMatch(
      /1001 characters, over the limit of 1000/,
    );
    expect(refusal({ pattern: "(a", replacement: "" })).toMatch(/not a valid RE2 pattern/);
    expect(refusal({ pattern: "[a-z]{1000}".repeat(6), replacement: "" })).toMatch(
      /too complex \(program size \d+, limit 5000\); use smaller repeat counts/,
    );
    expect(refusal({ pattern: "", replacement: "" })).toMatch(/empty/);
    expect(refusal({ pattern: "a", replacement: "", flags: "g" })).toMatch(/unknown flag "g"/);
    expect(refusal({ pattern: "(a)", replacement: "$2" })).toMatch(
      /refers to group \$2 but the pattern has 1/,
    );
  });

  it("accepts the same characters where they are not backreferences or lookaround", () => {
    for (const pattern of ["\\\\1", "[(?=]", "\\(?=", "\\Q(?=\\1\\E", "a{1,3}", "(?i)ada", "(?P<n>a)"]) {
      expect(() => validateTransformOptions("regexp_replace", { pattern, replacement: "x" })).not.toThrow();
    }
    expect(compile({ pattern: "\\Q(?=\\E", replacement: "x" })("a(?=b")).toBe("axb");
    expect(
      validateTransformOptions("regexp_replace", {
        pattern: "a".repeat(MAX_PATTERN_LENGTH),
        replacement: "",
      }),
    ).toBeTruthy();
  });

  it("runs (a+)+$ over 50,000 a's and ! in linear time", () => {
    const fn = compile({ pattern: "(a+)+$", replacement: "x" });
    const input = `${"a".repeat(50_000)}!`;
    // CPU time, not wall time: a loaded machine must not fail this test (a backtracking
    // engine would need about 2^50,000 steps, so any bound separates the two).
    const start = process.cpuUsage();
    const out = fn(input);
    const used = process.cpuUsage(start);
    const ms = (used.user + used.system) / 1000;
    console.info(`(a+)+$ over 50,001 characters: ${ms.toFixed(1)} ms of CPU`);
    expect(out).toBe(input);
    expect(ms).toBeLessThan(50);
    expect(compile({ pattern: "(a+)+$", replacement: "x" })(`${"a".repeat(50_000)}`)).toBe("x");
  });
});
