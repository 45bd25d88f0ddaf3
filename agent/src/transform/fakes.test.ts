import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { asciiFold, EMAIL_TAG_LENGTH, FAKE_FACTORIES, type FakeFactory, permuteIndex } from "./fakes.js";
import { createPrf } from "./prf.js";

const KEY_A = new Uint8Array(32).fill(1);
const KEY_B = new Uint8Array(32).fill(2);
const prfA = createPrf(KEY_A);
const prfB = createPrf(KEY_B);
const noResolve = () => {
  throw new Error("fakes resolve nothing");
};

function compile(name: string, options: Record<string, unknown> = {}, key = prfA, columnType = "text") {
  return (FAKE_FACTORIES[name] as FakeFactory)(options, key, columnType, noResolve);
}

const FAKES = [
  "first_name",
  "last_name",
  "full_name",
  "email",
  "phone",
  "street_address",
  "city",
  "postcode",
  "country",
  "company",
] as const;
const LOCALES = ["en", "fr", "de"] as const;

/** E.164 without a regular expression: + then 8 to 15 digits, the first not 0. */
function isE164(text: string): boolean {
  if (text[0] !== "+" || text.length < 9 || text.length > 16 || text[1] === "0") return false;
  for (let i = 1; i < text.length; i++) if (text[i]! < "0" || text[i]! > "9") return false;
  return true;
}

function changedShare(name: string, values: readonly string[], columnType = "text"): number {
  const a = compile(name, {}, prfA, columnType);
  const b = compile(name, {}, prfB, columnType);
  let changed = 0;
  for (const v of values) if (a(v) !== b(v)) changed++;
  return changed / values.length;
}

describe("realistic fakes", () => {
  it("are deterministic: the same key, transformer and value give the same output, in a fresh PRF too", () => {
    for (const locale of LOCALES)
      for (const name of FAKES) {
        const once = compile(name, { locale });
        const again = compile(name, { locale }, createPrf(new Uint8Array(KEY_A)));
        fc.assert(
          fc.property(fc.string({ unit: "grapheme" }), (value) => {
            const out = once(value);
            expect(typeof out).toBe("string");
            expect(out).not.toBe("");
            expect(again(value)).toBe(out);
          }),
          { numRuns: 200 },
        );
      }
  }, 60_000);

  it("give different outputs for different transformers on one value (each pick is keyed by its name)", () => {
    const first = compile("first_name");
    const full = compile("full_name");
    let same = 0;
    for (let i = 0; i < 1000; i++) if (first(`v${i}`) === full(`v${i}`)!.split(" ")[0]) same++;
    expect(same).toBeLessThan(10);
  });

  it("phone numbers are E.164 with the locale's country code", () => {
    const codes = { en: "+1", fr: "+33", de: "+49" } as const;
    for (const locale of LOCALES) {
      const phone = compile("phone", { locale });
      fc.assert(
        fc.property(fc.string(), (value) => {
          const out = phone(value)!;
          expect(isE164(out)).toBe(true);
          // Linear pattern: no nested quantifiers.
          expect(out).toMatch(/^\+[1-9][0-9]{7,14}$/);
          expect(out.startsWith(codes[locale])).toBe(true);
          expect(out[codes[locale].length]).not.toBe("0");
        }),
        { numRuns: 500 },
      );
    }
  });

  it("emails are <first>.<last>.<tag>@<domain> with a 12-character base32 tag", () => {
    for (const locale of LOCALES) {
      const email = compile("email", { locale, domain: "Test.Example.org" });
      fc.assert(
        fc.property(fc.string(), (value) => {
          const out = email(value)!;
          const at = out.indexOf("@");
          expect(out.slice(at + 1)).toBe("test.example.org");
          const parts = out.slice(0, at).split(".");
          expect(parts).toHaveLength(3);
          expect(parts[2]).toHaveLength(EMAIL_TAG_LENGTH);
          for (const part of parts)
            for (const c of part) expect((c >= "a" && c <= "z") || (c >= "0" && c <= "9")).toBe(true);
        }),
        { numRuns: 300 },
      );
    }
    expect(asciiFold("Müller-Lüdenscheidt")).toBe("mullerludenscheidt");
    expect(asciiFold("Straße")).toBe("strasse");
    expect(asciiFold("Zoë")).toBe("zoe");
  });

  it("emails of 400,000 distinct inputs are all distinct (60-bit tag)", () => {
    const email = compile("email");
    const seen = new Set<string>();
    for (let i = 0; i < 400_000; i++) seen.add(email(`user${i}@corp.example`)!);
    expect(seen.size).toBe(400_000);
  }, 60_000);

  it("reject an unknown locale or a bad domain", () => {
    expect(() => compile("city", { locale: "xx" })).toThrow(/locale must be one of en, fr, de/);
    expect(() => compile("email", { domain: "a b" })).toThrow(/domain must be a domain name/);
    expect(() => compile("email", { domain: "bad@x" })).toThrow(/domain/);
  });

  it("change with the key in at least 99.9% of 10,000 values where the output space allows it", () => {
    const values = Array.from({ length: 10_000 }, (_, i) => `customer-${i}@example.org`);
    for (const name of ["email", "full_name", "phone", "street_address", "company"])
      expect(changedShare(name, values), name).toBeGreaterThanOrEqual(0.999);
    // first_name picks one of ~3,200 names: a different key repeats 1 in 3,200.
    expect(changedShare("first_name", values)).toBeGreaterThanOrEqual(0.995);
  }, 60_000);

  it("locales pick from their own data", () => {
    const fr = compile("country", { locale: "fr" });
    const de = compile("country", { locale: "de" });
    const frSeen = new Set(Array.from({ length: 2000 }, (_, i) => fr(`v${i}`)));
    const deSeen = new Set(Array.from({ length: 2000 }, (_, i) => de(`v${i}`)));
    expect(frSeen.has("Allemagne")).toBe(true);
    expect(deSeen.has("Frankreich")).toBe(true);
  });
});

describe("anonymize", () => {
  const text = compile("anonymize");

  it("keeps the shape of text: letters to letters with case, digits to digits, other characters kept", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme-composite" }), (value) => {
        const out = text(value)!;
        expect(out.length).toBe(value.length);
        for (let i = 0; i < value.length; i++) {
          const c = value[i]!;
          const o = out[i]!;
          if (c >= "a" && c <= "z") expect(o >= "a" && o <= "z").toBe(true);
          else if (c >= "A" && c <= "Z") expect(o >= "A" && o <= "Z").toBe(true);
          else if (c >= "0" && c <= "9") expect(o >= "0" && o <= "9").toBe(true);
          else expect(o).toBe(c);
        }
        expect(text(value)).toBe(out);
      }),
      { numRuns: 1000 },
    );
    expect(text("AB-1234")).not.toBe("AB-1234");
  });

  it("is a permutation within a short shape: every 2-letter code and every 3-digit code stays distinct", () => {
    const letters = "abcdefghijklmnopqrstuvwxyz";
    const codes = [...letters].flatMap((a) => [...letters].map((b) => `${a}${b}`));
    expect(new Set(codes.map(text)).size).toBe(676);
    const digits = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, "0"));
    expect(new Set(digits.map(text)).size).toBe(1000);
    for (const d of digits) expect(text(d)).toHaveLength(3);
  });

  it("is unique over 120,000 distinct mid-size and long values", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20_000; i++) seen.add(text(`Order-${i}`)!);
    for (let i = 0; i < 100_000; i++) seen.add(text(`ada.lovelace+${i}@example.org`)!);
    expect(seen.size).toBe(120_000);
  }, 60_000);

  it("permutes integers keeping sign and digit count, within the column type's range", () => {
    const small = compile("anonymize", {}, prfA, "smallint");
    const outs = new Set<string>();
    const wrong: string[] = [];
    for (let v = -32768; v <= 32767; v++) {
      const out = small(String(v))!;
      const n = Number(out);
      const ok =
        Number.isInteger(n) &&
        n >= -32768 &&
        n <= 32767 &&
        out.startsWith("-") === v < 0 &&
        out.replace("-", "").length === String(Math.abs(v)).length;
      if (!ok) wrong.push(`${v} → ${out}`);
      outs.add(out);
    }
    expect(wrong).toEqual([]);
    expect(outs.size).toBe(65536);
    const big = compile("anonymize", {}, prfA, "bigint");
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), (v) => {
        const out = BigInt(big(String(v))!);
        expect(out >= -(2n ** 63n) && out < 2n ** 63n).toBe(true);
        expect(out < 0n).toBe(v < 0n);
        expect(String(out < 0n ? -out : out).length).toBe(String(v < 0n ? -v : v).length);
      }),
      { numRuns: 2000 },
    );
  }, 60_000);

  it("keeps numerics' sign, scale and digit counts", () => {
    const numeric = compile("anonymize", {}, prfA, "numeric(12,2)");
    fc.assert(
      fc.property(fc.integer({ min: -999_999_999, max: 999_999_999 }), (cents) => {
        const value = (cents / 100).toFixed(2);
        const out = numeric(value)!;
        expect(out.length).toBe(value.length);
        expect(out.startsWith("-")).toBe(value.startsWith("-"));
        expect(out.indexOf(".")).toBe(value.indexOf("."));
        const int = out.replace("-", "").split(".")[0]!;
        if (int.length > 1) expect(int[0]).not.toBe("0");
        expect(Number.isFinite(Number(out))).toBe(true);
      }),
    );
    expect(numeric("NaN")).toBe("NaN");
  });

  it("maps uuids to uuids, keeping the version nibble and variant bits, without collisions", () => {
    const uuid = compile("anonymize", {}, prfA, "uuid");
    const seen = new Set<string>();
    fc.assert(
      fc.property(fc.uuid(), (value) => {
        const out = uuid(value)!;
        expect(out).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
        expect(out[14]).toBe(value[14]);
        expect("89ab".includes(out[19]!)).toBe("89ab".includes(value[19]!));
        expect(out).not.toBe(value);
        seen.add(out);
      }),
      { numRuns: 2000 },
    );
    expect(() => uuid("not-a-uuid")).toThrow(/not a uuid/);
  });

  it("maps every date of a year to a distinct date of the same year", () => {
    const date = compile("anonymize", {}, prfA, "date");
    for (const year of [2023, 2024]) {
      const outs = new Set<string>();
      const start = Date.UTC(year, 0, 1);
      const days = year === 2024 ? 366 : 365;
      for (let d = 0; d < days; d++) {
        const value = new Date(start + d * 86_400_000).toISOString().slice(0, 10);
        const out = date(value)!;
        expect(out.slice(0, 5)).toBe(`${year}-`);
        expect(new Date(`${out}T00:00:00Z`).toISOString().slice(0, 10)).toBe(out);
        outs.add(out);
      }
      expect(outs.size).toBe(days);
    }
    expect(date("0044-03-15 BC")!.endsWith(" BC")).toBe(true);
    expect(date("infinity")).toBe("infinity");
    expect(() => date("03/15/2024")).toThrow(/ISO/);
  });

  it("maps timestamps to valid timestamps of the same year, keeping precision and offset", () => {
    const ts = compile("anonymize", {}, prfA, "timestamp with time zone");
    fc.assert(
      fc.property(
        fc.date({
          min: new Date("1970-01-01T00:00:00Z"),
          max: new Date("2100-01-01T00:00:00Z"),
          noInvalidDate: true,
        }),
        fc.constantFrom("", ".5", ".123456"),
        fc.constantFrom("+00", "+05:30", "-08"),
        (when, fraction, zone) => {
          const iso = when.toISOString();
          const value = `${iso.slice(0, 10)} ${iso.slice(11, 19)}${fraction}${zone}`;
          const out = ts(value)!;
          expect(out.slice(0, 4)).toBe(value.slice(0, 4));
          expect(out.length).toBe(value.length);
          expect(out.endsWith(zone)).toBe(true);
          const parsed = new Date(`${out.slice(0, 10)}T${out.slice(11, 19)}Z`);
          expect(parsed.toISOString().slice(0, 19)).toBe(`${out.slice(0, 10)}T${out.slice(11, 19)}`);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("changes with the key in at least 99.9% of 10,000 values", () => {
    const values = Array.from({ length: 10_000 }, (_, i) => `AB-${String(i).padStart(6, "0")}`);
    expect(changedShare("anonymize", values)).toBeGreaterThanOrEqual(0.999);
    const ints = Array.from({ length: 10_000 }, (_, i) => String(1_000_000 + i * 37));
    expect(changedShare("anonymize", ints, "integer")).toBeGreaterThanOrEqual(0.999);
  }, 60_000);

  it("gives every value the output a fresh PRF gives it, after round tables fill too, and long values change with the key", () => {
    const codes = Array.from({ length: 300 }, (_, i) => `AB-${i}`);
    const long = Array.from({ length: 100 }, (_, i) => `Grace Hopper, ${i} Navy Yard, Arlington VA`);
    const values = [...codes, ...long];
    // One fresh PRF per value: nothing memoised, each round computed.
    const cold = values.map((v) => compile("anonymize", {}, createPrf(new Uint8Array(KEY_A)))(v));
    const warm = compile("anonymize", {}, createPrf(new Uint8Array(KEY_A)));
    for (let pass = 0; pass < 20; pass++) expect(values.map((v) => warm(v))).toEqual(cold);
    const other = compile("anonymize", {}, prfB);
    expect(long.filter((v, i) => other(v) === cold[300 + i])).toEqual([]);
    expect(new Set(cold.slice(300)).size).toBe(100);
  });

  it("permuteIndex is a bijection of [0, n) for awkward sizes", () => {
    for (const n of [2n, 3n, 10n, 97n, 1000n, 4099n]) {
      const outs = new Set<bigint>();
      for (let x = 0n; x < n; x++) {
        const y = permuteIndex(prfA, `test\0${n}`, n, x);
        expect(y >= 0n && y < n).toBe(true);
        outs.add(y);
      }
      expect(outs.size).toBe(Number(n));
    }
  });
});
