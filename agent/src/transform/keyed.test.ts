import { isDrayError } from "@dray/common";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ff1Codec, ff1Factory, permuteCodec, permuteFactory, validateFf1Options } from "./keyed.js";

const KEY = Uint8Array.from({ length: 32 }, (_, i) => i * 7 + 3);
const OTHER_KEY = Uint8Array.from({ length: 32 }, (_, i) => i * 11 + 5);

const RANGES = {
  smallint: [-32768n, 32767n],
  integer: [-(2n ** 31n), 2n ** 31n - 1n],
  bigint: [-(2n ** 63n), 2n ** 63n - 1n],
} as const;

/** Distinct values from `arb`, at most `count`. */
function distinctSample<T>(arb: fc.Arbitrary<T>, count: number, seed: number): T[] {
  return [...new Set(fc.sample(arb, { numRuns: count, seed }))];
}

/** Maps every value, asserts the outputs are distinct and that decrypt inverts; prints values/s. */
function checkBijective(
  label: string,
  values: string[],
  codec: { encrypt(v: string): string; decrypt(v: string): string },
) {
  const started = performance.now();
  const outputs = values.map((v) => codec.encrypt(v));
  const seconds = (performance.now() - started) / 1000;
  console.info(
    `${label}: ${values.length} values, ${Math.round(values.length / seconds).toLocaleString("en")} values/s`,
  );
  expect(new Set(outputs).size).toBe(values.length);
  outputs.forEach((out, i) => {
    if (codec.decrypt(out) !== values[i]) expect(codec.decrypt(out)).toBe(values[i]);
  });
  return outputs;
}

function changedShare(
  values: string[],
  a: (v: string) => string | null,
  b: (v: string) => string | null,
): number {
  let changed = 0;
  for (const v of values) if (a(v) !== b(v)) changed++;
  return changed / values.length;
}

function invalidArgument(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(isDrayError(error) && error.code).toBe("invalid_argument");
    return (error as Error).message;
  }
  throw new Error("expected a DrayError");
}

describe("permute on integer types", { timeout: 180_000 }, () => {
  for (const type of ["smallint", "integer", "bigint"] as const) {
    const [min, max] = RANGES[type];
    const values = fc.bigInt({ min, max }).map(String);

    it(`is a bijection of the ${type} range (100k values, decrypt inverts)`, () => {
      const sample = distinctSample(values, 100_000, 11);
      const outputs = checkBijective(`permute ${type}`, sample, permuteCodec(KEY, type));
      for (const out of outputs) {
        const n = BigInt(out);
        if (n < min || n > max) expect(String(n)).toBe(`within [${min}, ${max}]`);
      }
      expect(outputs.filter((out, i) => out === sample[i]).length).toBeLessThan(5);
    });

    it(`stays in the ${type} range and is deterministic (property)`, () => {
      const f = permuteFactory({}, KEY, type);
      const g = permuteFactory({}, KEY, type);
      fc.assert(
        fc.property(values, (v) => {
          const out = f(v);
          expect(out).toBe(g(v));
          const n = BigInt(out ?? "x");
          expect(n >= min && n <= max).toBe(true);
          expect(String(n)).toBe(out);
        }),
        { numRuns: 2000 },
      );
      for (const edge of [min, -1n, 0n, 1n, max].map(String)) {
        const n = BigInt(f(edge) ?? "x");
        expect(n >= min && n <= max).toBe(true);
      }
    });

    it(`changes at least 99.9% of ${type} outputs with another key`, () => {
      const sample = distinctSample(values, 20_000, 12);
      expect(
        changedShare(sample, permuteFactory({}, KEY, type), permuteFactory({}, OTHER_KEY, type)),
      ).toBeGreaterThanOrEqual(0.999);
    });
  }

  it("is a bijection of the whole smallint range", () => {
    const all = Array.from({ length: 65536 }, (_, i) => String(i - 32768));
    const outputs = new Set(all.map(permuteFactory({}, KEY, "smallint")));
    expect(outputs.size).toBe(65536);
    const inRange = new Set(all);
    expect([...outputs].every((o) => inRange.has(o ?? ""))).toBe(true);
  });

  it("refuses values outside the type and other column types, without echoing the value", () => {
    const message = invalidArgument(() => permuteFactory({}, KEY, "integer")("98765432109"));
    expect(message).not.toContain("98765432109");
    expect(message).toContain("integer");
    invalidArgument(() => permuteFactory({}, KEY, "smallint")("12a"));
    invalidArgument(() => permuteFactory({}, KEY, "bigint")(""));
    invalidArgument(() => permuteFactory({}, KEY, "bigint")("-"));
    expect(invalidArgument(() => permuteFactory({}, KEY, "text"))).toContain("ff1");
    invalidArgument(() => permuteFactory({ rounds: 3 }, KEY, "integer"));
  });
});

describe("permute on uuid", { timeout: 180_000 }, () => {
  const uuids = fc.uuid({ version: [1, 4, 7] });

  it("is a bijection (100k values), keeps version and variant, prints lowercase 8-4-4-4-12", () => {
    const sample = distinctSample(uuids, 100_000, 13);
    const outputs = checkBijective("permute uuid", sample, permuteCodec(KEY, "uuid"));
    outputs.forEach((out, i) => {
      const input = sample[i] ?? "";
      expect(out).toHaveLength(36);
      expect(out).toBe(out.toLowerCase());
      expect([out[8], out[13], out[18], out[23]]).toEqual(["-", "-", "-", "-"]);
      expect(out[14]).toBe(input[14]);
      expect(Number.parseInt(out[19] ?? "", 16) >> 2 === Number.parseInt(input[19] ?? "", 16) >> 2).toBe(
        true,
      );
    });
  });

  it("accepts uppercase input and changes at least 99.9% of outputs with another key", () => {
    const f = permuteFactory({}, KEY, "uuid");
    const u = "6f1c2c4e-8a55-4b1f-9c3e-0d2a7b9e1f10";
    expect(f(u.toUpperCase())).toBe(f(u));
    const sample = distinctSample(uuids, 10_000, 14);
    expect(changedShare(sample, f, permuteFactory({}, OTHER_KEY, "uuid"))).toBeGreaterThanOrEqual(0.999);
    invalidArgument(() => f("not-a-uuid"));
  });
});

describe("ff1 on text", { timeout: 180_000 }, () => {
  const digitStrings = fc
    .integer({ min: 6, max: 19 })
    .chain((n) => fc.string({ unit: fc.constantFrom(..."0123456789"), minLength: n, maxLength: n }));

  it("is a bijection on digit strings (100k values), keeping length and digits", () => {
    const sample = distinctSample(digitStrings, 100_000, 21);
    const outputs = checkBijective("ff1 digits", sample, ff1Codec({}, KEY, "text"));
    outputs.forEach((out, i) => {
      expect(out.length).toBe(sample[i]?.length);
    });
    expect(outputs.every((o) => [...o].every((c) => c >= "0" && c <= "9"))).toBe(true);
  });

  it("keeps characters outside the alphabet in place", () => {
    const f = ff1Factory({}, KEY, "character varying(20)");
    const out = f("4111-1111-1111-1111") ?? "";
    expect(out).toHaveLength(19);
    expect([out[4], out[9], out[14]]).toEqual(["-", "-", "-"]);
    expect(out.replaceAll("-", "")).not.toBe("4111111111111111");
    expect(ff1Codec({}, KEY, "text").decrypt(out)).toBe("4111-1111-1111-1111");
    // Letters are outside the digits alphabet.
    const id = f("AB-123456") ?? "";
    expect(id.slice(0, 3)).toBe("AB-");
  });

  it("is a bijection on alphanumerics of every case class, keeping the class", () => {
    const unit = fc.constantFrom(..."0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-");
    const mixed = fc.string({ unit, minLength: 6, maxLength: 14 });
    const lower = mixed.map((s) => s.toLowerCase());
    const upper = mixed.map((s) => s.toUpperCase());
    const sample = [
      ...distinctSample(lower, 20_000, 31),
      ...distinctSample(upper, 20_000, 32),
      ...distinctSample(mixed, 20_000, 33),
    ].filter((s) => [...s].filter((c) => c !== "-").length >= 4);
    const values = [...new Set(sample)];
    const codec = ff1Codec({ alphabet: "alphanumeric" }, KEY, "text");
    const outputs = checkBijective("ff1 alphanumeric", values, codec);
    const caseClass = (s: string) =>
      s === s.toLowerCase() ? "lower" : s === s.toUpperCase() ? "upper" : "mixed";
    outputs.forEach((out, i) => {
      const input = values[i] ?? "";
      expect(out.length).toBe(input.length);
      for (let j = 0; j < out.length; j++) expect(out[j] === "-").toBe(input[j] === "-");
      expect(caseClass(out)).toBe(caseClass(input));
    });
    // The collision a plain case-fold would make: same letters, different case.
    const f = ff1Factory({ alphabet: "alphanumeric" }, KEY, "text");
    expect(f("ab12cd")).not.toBe(f("AB12CD"));
    expect(f("ab12cd")).toBe(f("ab12cd"));
  });

  it("refuses too-short values with a hint to permute, without echoing the value", () => {
    const message = invalidArgument(() => ff1Factory({}, KEY, "text")("12-345"));
    expect(message).toContain("at least 6 digits");
    expect(message).toContain("permute");
    expect(message).not.toContain("12-345");
    invalidArgument(() => ff1Factory({ alphabet: "alphanumeric" }, KEY, "text")("ab1"));
    expect(ff1Factory({ alphabet: "alphanumeric" }, KEY, "text")("ab12")).toHaveLength(4);
    invalidArgument(() => ff1Factory({ alphabet: "hex" }, KEY, "text"));
    invalidArgument(() => validateFf1Options({ alphabet: "digits", width: 3 }));
    expect(validateFf1Options({})).toBe("digits");
    invalidArgument(() => ff1Factory({}, KEY, "uuid"));
    invalidArgument(() => ff1Factory({ alphabet: "alphanumeric" }, KEY, "integer"));
  });

  it("changes at least 99.9% of outputs with another key", () => {
    const sample = distinctSample(digitStrings, 10_000, 22);
    expect(
      changedShare(sample, ff1Factory({}, KEY, "text"), ff1Factory({}, OTHER_KEY, "text")),
    ).toBeGreaterThanOrEqual(0.999);
  });
});

describe("ff1 on integer columns", { timeout: 180_000 }, () => {
  it("is a bijection of the whole smallint range, and a fresh codec's decrypt inverts it", () => {
    const all = Array.from({ length: 65536 }, (_, i) => String(i - 32768));
    const f = ff1Factory({}, KEY, "smallint");
    const outputs = all.map((v) => f(v) ?? "");
    expect(new Set(outputs).size).toBe(65536);
    const keepsSign = (o: string, i: number) =>
      Number(o) >= -32768 && Number(o) <= 32767 && Number(o) < 0 === i < 32768;
    expect(outputs.every(keepsSign)).toBe(true);
    // A fresh codec has memoised nothing: its decrypt walks on its own.
    const fresh = ff1Codec({}, KEY, "smallint");
    for (let i = 0; i < 65536; i += 97)
      if (fresh.decrypt(outputs[i]!) !== all[i]) expect(fresh.decrypt(outputs[i]!)).toBe(all[i]);
    expect(f(all[5]!)).toBe(outputs[5]);
  });

  for (const type of ["smallint", "integer", "bigint"] as const) {
    const [min, max] = RANGES[type];
    it(`is a sign-keeping bijection of the ${type} range`, () => {
      const sample = distinctSample(
        fc.bigInt({ min, max }).map(String),
        type === "smallint" ? 2_000 : 5_000,
        41,
      );
      const outputs = checkBijective(`ff1 ${type}`, sample, ff1Codec({}, KEY, type));
      outputs.forEach((out, i) => {
        const n = BigInt(out);
        expect(n >= min && n <= max).toBe(true);
        expect(n < 0n).toBe(BigInt(sample[i] ?? "0") < 0n);
      });
      // Short integers are fine here: the value is padded to the type's width.
      expect(ff1Factory({}, KEY, type)("42")).not.toBe("42");
    });
  }
});
