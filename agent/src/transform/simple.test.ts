import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createPrf } from "./prf.js";
import { compileTransform } from "./registry.js";
import { base32 } from "./simple.js";

const KEY_A = Buffer.alloc(32, 1);
const KEY_B = Buffer.alloc(32, 2);
const prfA = createPrf(KEY_A);
const prfB = createPrf(KEY_B);

const compile = (name: string, options: Record<string, unknown> = {}, prf = prfA, type = "text") =>
  compileTransform(name, options, prf, type);

/** 10,000 distinct random values of at least 6 characters with letters or digits. */
function distinctValues(): string[] {
  const set = new Set(
    fc
      .sample(fc.string({ minLength: 6, maxLength: 40, unit: "grapheme-ascii" }), 20_000)
      .filter((v) => /[a-z0-9]/i.test(v)),
  );
  return [...set].slice(0, 10_000);
}

/** The share of values whose output changes when the key changes. */
function keyChangeShare(name: string, options: Record<string, unknown>, values: string[]): number {
  const a = compile(name, options, prfA);
  const b = compile(name, options, prfB);
  return values.filter((v) => a(v) !== b(v)).length / values.length;
}

describe("null and constant", () => {
  it("replace every value", () => {
    fc.assert(
      fc.property(fc.string(), (v) => {
        expect(compile("null", {}, prfA, "integer")(v)).toBeNull();
        expect(compile("constant", { value: "redacted" })(v)).toBe("redacted");
      }),
    );
  });
});

describe("mask", () => {
  it("keeps the first and last N characters and the length", () => {
    const mask = compile("mask", { keepLast: 4 });
    expect(mask("4111111111111111")).toBe("************1111");
    expect(compile("mask", { keepFirst: 1, keepLast: 1, char: "#" })("Ada Lovelace")).toBe("A##########e");
    expect(compile("mask")("héllo")).toBe("*****");
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), fc.nat(5), fc.nat(5), (v, keepFirst, keepLast) => {
        const out = compile("mask", { keepFirst, keepLast })(v) as string;
        const chars = [...v];
        const outChars = [...out];
        expect(outChars.length).toBe(chars.length);
        if (keepFirst + keepLast >= chars.length) expect(out).toBe("*".repeat(chars.length));
        else {
          expect(outChars.slice(0, keepFirst)).toEqual(chars.slice(0, keepFirst));
          expect(outChars.slice(chars.length - keepLast)).toEqual(chars.slice(chars.length - keepLast));
          expect(outChars.slice(keepFirst, chars.length - keepLast).every((c) => c === "*")).toBe(true);
        }
      }),
    );
  });

  it("never shows a whole short value", () => {
    expect(compile("mask", { keepLast: 4 })("1234")).toBe("****");
  });

  it("validates its options", () => {
    expect(() => compile("mask", { keepFirst: -1 })).toThrow(/mask: option keepFirst must be 0 or more/);
    expect(() => compile("mask", { char: "ab" })).toThrow(/mask: option char must be exactly one character/);
  });
});

describe("hash", () => {
  it("is the keyed HMAC in hex or base32, truncated", () => {
    const full = compile("hash")("ada@example.com") as string;
    expect(full).toBe(prfA.bytes("hash", "ada@example.com").toString("hex"));
    expect(compile("hash", { length: 16 })("ada@example.com")).toBe(full.slice(0, 16));
    expect(compile("hash", { encoding: "base32" })("ada@example.com")).toBe(
      base32(prfA.bytes("hash", "ada@example.com")),
    );
    fc.assert(
      fc.property(
        fc.string(),
        fc.integer({ min: 16, max: 64 }),
        fc.integer({ min: 16, max: 52 }),
        (v, hexLen, b32Len) => {
          expect(compile("hash", { length: hexLen })(v)).toMatch(new RegExp(`^[0-9a-f]{${hexLen}}$`));
          expect(compile("hash", { encoding: "base32", length: b32Len })(v)).toMatch(
            new RegExp(`^[a-z2-7]{${b32Len}}$`),
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it("encodes base32 per RFC 4648", () => {
    expect(base32(Buffer.from("foobar"))).toBe("mzxw6ytboi");
    expect(base32(Buffer.from("f"))).toBe("my");
  });

  it("refuses lengths under 16 or over the digest", () => {
    expect(() => compile("hash", { length: 15 })).toThrow(/at least|between 16/);
    expect(() => compile("hash", { length: 65 })).toThrow(/between 16 .* and 64 for hex/);
    expect(() => compile("hash", { encoding: "base32", length: 53 })).toThrow(/and 52 for base32/);
  });

  it("is deterministic, unique on distinct values, and changes with the key", { timeout: 30_000 }, () => {
    const values = distinctValues();
    const hash = compile("hash", { length: 16 });
    const outputs = values.map(hash);
    expect(values.map(compile("hash", { length: 16 }))).toEqual(outputs);
    expect(new Set(outputs).size).toBe(values.length);
    expect(keyChangeShare("hash", { length: 16 }, values)).toBeGreaterThanOrEqual(0.999);
  });
});

describe("char_scramble", () => {
  const isDigit = (c: string) => c >= "0" && c <= "9";
  const isUpper = (c: string) => c >= "A" && c <= "Z";
  const isLower = (c: string) => c >= "a" && c <= "z";

  it("maps letters to letters and digits to digits, keeping case, length and the rest", () => {
    const scramble = compile("char_scramble");
    fc.assert(
      fc.property(fc.string({ unit: "grapheme-ascii", maxLength: 300 }), (v) => {
        const out = scramble(v) as string;
        expect(out.length).toBe(v.length);
        for (let i = 0; i < v.length; i++) {
          const c = v[i] as string;
          const o = out[i] as string;
          if (isDigit(c)) expect(isDigit(o) && o !== c).toBe(true);
          else if (isUpper(c)) expect(isUpper(o) && o !== c).toBe(true);
          else if (isLower(c)) expect(isLower(o) && o !== c).toBe(true);
          else expect(o).toBe(c);
        }
      }),
    );
    expect(scramble("AB-1234")).toMatch(/^[A-Z]{2}-\d{4}$/);
    expect(scramble("Éa ß")).toMatch(/^[A-Z][a-z] [a-z]$/);
  });

  it("depends on the whole value, not only on each character", () => {
    const scramble = compile("char_scramble");
    const a = scramble("aaaaaaaaaaaaaaaaaaaa") as string;
    expect(new Set(a).size).toBeGreaterThan(1);
    expect((scramble("aaaaaaaaaaaaaaaaaaab") as string).slice(0, 19)).not.toBe(a.slice(0, 19));
  });

  it("is deterministic and changes with the key", { timeout: 30_000 }, () => {
    const values = distinctValues();
    expect(values.map(compile("char_scramble"))).toEqual(values.map(compile("char_scramble")));
    expect(keyChangeShare("char_scramble", {}, values)).toBeGreaterThanOrEqual(0.999);
  });
});

describe("choice", () => {
  it("picks one of the values, the same for the same input, spread over all", () => {
    const values = ["red", "green", "blue"];
    const choice = compile("choice", { values }, prfA, "integer");
    const seen = new Set<string | null>();
    fc.assert(
      fc.property(fc.string(), (v) => {
        const out = choice(v);
        expect(values).toContain(out);
        expect(choice(v)).toBe(out);
        seen.add(out);
      }),
    );
    expect(seen.size).toBe(3);
  });

  it("changes picks with the key", { timeout: 30_000 }, () => {
    const values = distinctValues();
    const options = { values: Array.from({ length: 100_000 }, (_, i) => `v${i}`) };
    expect(keyChangeShare("choice", options, values)).toBeGreaterThanOrEqual(0.999);
  });
});
