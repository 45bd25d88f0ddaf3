/**
 * Conformance of every catalogue transformer (@dray/common's TRANSFORMERS) as
 * the agent compiles it (compileTransformer), for a column type of each family
 * it fits: deterministic, keyed where it should be, a valid value of the
 * column's type (checked here and by PostgreSQL), its documented shape kept,
 * distinct outputs for distinct inputs where the catalogue promises them, and
 * a DrayError that does not quote the value for inputs it cannot take. A
 * transformer added to the catalogue without a case here fails the coverage test.
 */
import {
  DrayError,
  fitsType,
  isDrayError,
  TRANSFORMERS,
  type TypeFamily,
  transformerInfo,
} from "@dray/common";
import fc from "fast-check";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { formatCopyLine, parseCopyLine, splitCopyLines } from "../connectors/postgres/copy-text.js";
import { civilFromDays, daysFromCivil } from "./civil-days.js";
import { compileTransformer } from "./index.js";
import { processCopyPage } from "./transform-rows.js";
import { parsePgArray, templateFactory } from "./wrappers.js";

const KEY_A = Uint8Array.from({ length: 32 }, (_, i) => (i * 13 + 7) & 0xff);
const KEY_B = Uint8Array.from({ length: 32 }, (_, i) => (i * 29 + 1) & 0xff);
const NUM_RUNS = 200;
/**
 * Distinct values mapped when a transformer promises distinct outputs (bijective, unique):
 * on a case's first column type, and on each of its other types (fewer, to keep the file fast).
 */
const DISTINCT_SAMPLE = 20_000;
const DISTINCT_SAMPLE_OTHER_TYPES = 5_000;
/** Distinct values compared under two keys. */
const KEY_SAMPLE = 1_000;

const sql = postgres(process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres", {
  max: 1,
  onnotice: () => {},
});
afterAll(() => sql.end());

// --- column types -------------------------------------------------------------------

/** The column types each family is tested with (`any`: a text and an integer column). */
const TYPES_BY_FAMILY: Readonly<Record<TypeFamily, readonly string[]>> = {
  text: ["text", "character varying(40)"],
  integer: ["integer", "bigint", "smallint"],
  numeric: ["numeric(12,2)"],
  date: ["date"],
  timestamp: ["timestamp without time zone"],
  uuid: ["uuid"],
  json: ["jsonb"],
  array: ["text[]"],
  any: ["text", "integer"],
};

const ALL_TYPES = [...new Set(Object.values(TYPES_BY_FAMILY).flat())];

function typesOf(families: readonly TypeFamily[]): string[] {
  return [...new Set(families.flatMap((f) => TYPES_BY_FAMILY[f]))];
}

const INT_RANGE: Readonly<Record<string, readonly [bigint, bigint]>> = {
  smallint: [-32768n, 32767n],
  integer: [-(2n ** 31n), 2n ** 31n - 1n],
  bigint: [-(2n ** 63n), 2n ** 63n - 1n],
};

/** numeric(12,2): at most 10 integer digits. */
const NUMERIC_MAX_UNSCALED = 10n ** 12n - 1n;

// --- calendar (astronomical years: 1 BC is year 0) ---------------------------------------

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

/** A day as PostgreSQL prints a date: `YYYY-MM-DD`, the era suffix apart. */
function dateParts(days: number): { date: string; era: string } {
  const [y, m, d] = civilFromDays(days);
  return { date: `${pad(y <= 0 ? 1 - y : y, 4)}-${pad(m)}-${pad(d)}`, era: y <= 0 ? " BC" : "" };
}

/** The day number of a PostgreSQL date text, or undefined when it is not one. */
function parseDay(date: string, era: string): number | undefined {
  const match = /^(\d{4,})-(\d\d)-(\d\d)$/.exec(date);
  if (!match) return undefined;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  if (year < 1) return undefined;
  const y = era === " BC" ? 1 - year : year;
  const n = daysFromCivil(y, month, day);
  const [cy, cm, cd] = civilFromDays(n);
  return cy === y && cm === month && cd === day ? n : undefined;
}

interface Timestamp {
  day: number;
  year: string;
  era: string;
  time: string;
  fraction: string;
}

/** Parses `YYYY-MM-DD[ HH:MM:SS[.ffffff]][ BC]` (time required when `withTime`). */
function parseDateTime(text: string, withTime: boolean): Timestamp | undefined {
  const match = withTime
    ? /^(\d{4,}-\d\d-\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?( BC)?$/.exec(text)
    : /^(\d{4,}-\d\d-\d\d)()()()()( BC)?$/.exec(text);
  if (!match) return undefined;
  const era = match[6] ?? "";
  const day = parseDay(match[1]!, era);
  if (day === undefined) return undefined;
  if (withTime && (Number(match[2]) > 23 || Number(match[3]) > 59 || Number(match[4]) > 59)) return undefined;
  return {
    day,
    year: match[1]!.slice(0, match[1]!.indexOf("-")),
    era,
    time: withTime ? `${match[2]}:${match[3]}:${match[4]}` : "",
    fraction: match[5] ?? "",
  };
}

// --- values as PostgreSQL prints them ----------------------------------------------------

/** Text Postgres can hold (no NUL), well-formed UTF-16. */
const pgText = fc.string({ unit: "grapheme", maxLength: 30 }).filter((s) => !s.includes("\0"));
/** At most 40 characters: a character varying(40) value. */
const varchar40 = pgText.filter((s) => [...s].length <= 40);
const ALNUM = /[A-Za-z0-9]/g;
const countOf = (s: string, re: RegExp) => (s.match(re) ?? []).length;
/** Text with at least 6 letters or digits, so a keyed transformer has room to differ. */
const richText = fc
  .string({ unit: "grapheme-ascii", minLength: 6, maxLength: 40 })
  .filter((s) => countOf(s, ALNUM) >= 6);

function integers(type: string, minAbs = 0n, maxAbs?: bigint): fc.Arbitrary<string> {
  const [min, max] = INT_RANGE[type]!;
  if (minAbs === 0n && maxAbs === undefined) return fc.bigInt({ min, max }).map(String);
  return fc
    .tuple(fc.boolean(), fc.bigInt({ min: minAbs, max: maxAbs ?? max }))
    .map(([negative, n]) => String(negative ? -n : n));
}

function numerics(minAbs = 0n, maxAbs = NUMERIC_MAX_UNSCALED): fc.Arbitrary<string> {
  return fc.tuple(fc.boolean(), fc.bigInt({ min: minAbs, max: maxAbs })).map(([negative, n]) => {
    const digits = String(n).padStart(3, "0");
    return `${negative && n !== 0n ? "-" : ""}${digits.slice(0, -2)}.${digits.slice(-2)}`;
  });
}

/** 4000 BC … 9999 AD. */
const days = fc.integer({ min: daysFromCivil(-3999, 1, 1), max: daysFromCivil(9999, 12, 31) });
const dates = days.map((n) => {
  const { date, era } = dateParts(n);
  return date + era;
});
/** Microseconds as Postgres prints them: trailing zeros dropped, none for a whole second. */
const fractions = fc
  .option(fc.integer({ min: 1, max: 999_999 }), { nil: undefined })
  .map((us) => (us === undefined ? "" : `.${pad(us, 6).replace(/0+$/, "")}`));
const timestamps = fc.tuple(days, fc.integer({ min: 0, max: 86_399 }), fractions).map(([n, s, f]) => {
  const { date, era } = dateParts(n);
  return `${date} ${pad(Math.floor(s / 3600))}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}${f}${era}`;
});

/** jsonb's text form: `", "` and `": "` separators, keys by length then bytes. */
function jsonbText(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(jsonbText).join(", ")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort((a, b) => {
      const ab = Buffer.from(a);
      const bb = Buffer.from(b);
      return ab.length - bb.length || Buffer.compare(ab, bb);
    });
    return `{${keys.map((k) => `${JSON.stringify(k)}: ${jsonbText((value as Record<string, unknown>)[k])}`).join(", ")}}`;
  }
  return JSON.stringify(value);
}

/** JSON Postgres accepts: no \u0000 and no lone surrogate. */
const pgJson = (value: unknown) => !/\\u0000|\\ud[89a-f]/i.test(JSON.stringify(value));
const jsonDocs = fc
  .tuple(fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }), pgText)
  .filter(([rest]) => pgJson(rest))
  .map(([rest, email]) => jsonbText({ ...rest, email }));

/** An element as array_out prints it: quoted when empty, NULL-like, or holding `"\{},` or ASCII white space. */
function arrayElement(item: string | null): string {
  if (item === null) return "NULL";
  if (item !== "" && item.toUpperCase() !== "NULL" && !/["\\{},\t\n\v\f\r ]/.test(item)) return item;
  return `"${item.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}
const textArrays = fc
  .array(fc.option(pgText, { nil: null, freq: 5 }), { maxLength: 6 })
  .map((items) => `{${items.map(arrayElement).join(",")}}`);

/** Valid values of a column type, in PostgreSQL's text form. */
function valuesOf(type: string): fc.Arbitrary<string> {
  if (type === "text") return pgText;
  if (type === "character varying(40)") return varchar40;
  if (INT_RANGE[type]) return integers(type);
  if (type === "numeric(12,2)") return numerics();
  if (type === "date") return dates;
  if (type === "timestamp without time zone") return timestamps;
  if (type === "uuid") return fc.uuid();
  if (type === "jsonb") return jsonDocs;
  if (type === "text[]") return textArrays;
  throw new Error(`no values for ${type}`);
}

/** Valid values of a column type with room to change under another key. */
function richValuesOf(type: string): fc.Arbitrary<string> {
  if (type === "text" || type === "character varying(40)") return richText;
  if (INT_RANGE[type]) return integers(type, 1000n);
  if (type === "numeric(12,2)") return numerics(100_000n);
  if (type === "jsonb") return jsonDocs;
  if (type === "text[]") return textArrays.filter((a) => a !== "{}" && !/^\{(NULL,?)*\}$/.test(a));
  return valuesOf(type);
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Checks `out` is a valid value of `type` in its text form. */
function expectValidValue(type: string, out: string): void {
  const fail = (what: string) => expect(out, `not ${what} (${type})`).toBe(`a valid ${type} value`);
  if (type === "text" || type === "character varying(40)") {
    if (out.includes("\0") || LONE_SURROGATE.test(out)) fail("Postgres text");
  } else if (INT_RANGE[type]) {
    const [min, max] = INT_RANGE[type]!;
    if (!/^-?(0|[1-9]\d*)$/.test(out) || BigInt(out) < min || BigInt(out) > max) fail("an integer in range");
  } else if (type === "numeric(12,2)") {
    if (!/^-?(0|[1-9]\d{0,9})\.\d\d$/.test(out)) fail("a numeric(12,2)");
  } else if (type === "date") {
    if (!parseDateTime(out, false)) fail("a date");
  } else if (type === "timestamp without time zone") {
    if (!parseDateTime(out, true)) fail("a timestamp");
  } else if (type === "uuid") {
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(out)) fail("a uuid");
  } else if (type === "jsonb") {
    try {
      JSON.parse(out);
    } catch {
      fail("JSON");
    }
  } else if (type === "text[]") {
    try {
      parsePgArray(out);
    } catch {
      fail("an array");
    }
  }
}

/** Values of `type` no transformer can take: they start with a marker no type reads. */
const garbage = fc.string({ maxLength: 20 }).map((s) => `Zq#${s}`);

// --- the cases ---------------------------------------------------------------------------

interface Case {
  /** Says what the case covers when a transformer has several. */
  label?: string;
  options: Record<string, unknown>;
  /** Column types of the case (default: every type of the transformer's families). */
  types?: readonly string[];
  /** The output depends on the key (false: null, constant, mask, regexp_replace). */
  keyed: boolean;
  /** On text columns, keeps the length in characters (code points): a varchar(n) value stays one. */
  keepsLength?: boolean;
  /** Inputs for the key check, when the type's values with room to change do not all have room here. */
  keyValues?: (type: string) => fc.Arbitrary<string>;
  /** Valid inputs, when not every value of the type is one. */
  values?: (type: string) => fc.Arbitrary<string>;
  /** The transformer's own documented properties of one output. */
  check?: (input: string, out: string | null, type: string) => void;
  /** Inputs of `type` it must refuse (undefined: it takes every value of the type). */
  invalid?: (type: string) => fc.Arbitrary<string> | undefined;
  /** Why no input is refused, when `invalid` is absent. */
  takesAll?: string;
}

const isText = (type: string) => type === "text" || type === "character varying(40)";
const DIGIT = /[0-9]/;
const isAsciiDigit = (c: string) => c >= "0" && c <= "9";
const isAsciiUpper = (c: string) => c >= "A" && c <= "Z";
const isAsciiLower = (c: string) => c >= "a" && c <= "z";

/** Every code point of `out` against the one at the same place in `input`. */
function expectPerCharacter(
  input: string,
  out: string,
  expected: (inChar: string, outChar: string) => boolean,
) {
  const a = [...input];
  const b = [...out];
  expect(b.length).toBe(a.length);
  a.forEach((c, i) => {
    if (!expected(c, b[i]!)) expect(`${c} → ${b[i]} at ${i}`).toBe("a character of the same class");
  });
}

/** The case of a letter as char_scramble reads it. */
function letterCase(c: string): "upper" | "lower" | undefined {
  const lower = c.toLowerCase();
  const upper = c.toUpperCase();
  if (lower === upper) return undefined;
  return c === upper ? "upper" : c === lower ? "lower" : undefined;
}

/** Digits stay digits, ASCII letters keep their case, everything else is kept. */
function sameAsciiClass(c: string, o: string): boolean {
  if (isAsciiDigit(c)) return isAsciiDigit(o);
  if (isAsciiUpper(c)) return isAsciiUpper(o);
  if (isAsciiLower(c)) return isAsciiLower(o);
  return o === c;
}

const FAKE_NAMES = [
  "first_name",
  "last_name",
  "full_name",
  "phone",
  "street_address",
  "city",
  "postcode",
  "country",
  "company",
] as const;

const fakeCase = (name: string): Case => ({
  options: {},
  keyed: true,
  takesAll: "a fake takes any text",
  check: (_input, out) => {
    expect(typeof out).toBe("string");
    expect((out as string).length).toBeGreaterThan(0);
    expect(out).not.toMatch(/[\p{Cc}]/u);
    if (name === "phone") expect(out).toMatch(/^\+[1-9]\d{7,14}$/);
  },
});

const CHOICES = Array.from({ length: 1000 }, (_, i) => String(i));

/** ff1's digit values: at least 6 digits, separators kept. */
const ff1Digits = fc
  .array(
    fc.oneof({ weight: 4, arbitrary: fc.constantFrom(..."0123456789") }, fc.constantFrom("-", " ", "/")),
    {
      minLength: 6,
      maxLength: 40,
    },
  )
  .map((cs) => cs.join(""))
  .filter((s) => countOf(s, /[0-9]/g) >= 6);
const ff1Alphanumerics = fc
  .array(
    fc.oneof(
      {
        weight: 6,
        arbitrary: fc.constantFrom(..."0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
      },
      fc.constantFrom("-", " "),
    ),
    { minLength: 4, maxLength: 40 },
  )
  .map((cs) => cs.join(""))
  .filter((s) => countOf(s, ALNUM) >= 4);

/** Integers outside a type's range. */
const outOfRange = (type: string) => {
  const [min, max] = INT_RANGE[type]!;
  return fc
    .oneof(fc.bigInt({ min: max + 1n, max: max * 4n }), fc.bigInt({ min: min * 4n, max: min - 1n }))
    .map(String);
};

/** The year of a date or timestamp text. */
const yearOf = (s: string) => `${s.slice(0, s.indexOf("-"))}${s.endsWith(" BC") ? " BC" : ""}`;

/** The cases of every value transformer, by catalogue name. */
const CASES: Readonly<Record<string, readonly Case[]>> = {
  null: [
    {
      options: {},
      keyed: false,
      takesAll: "null takes any value",
      check: (_i, out) => expect(out).toBeNull(),
    },
  ],
  constant: [
    {
      options: { value: "0" },
      keyed: false,
      takesAll: "constant takes any value",
      check: (_i, out) => expect(out).toBe("0"),
    },
  ],
  mask: [
    {
      options: { keepFirst: 1, keepLast: 2, char: "#" },
      keyed: false,
      keepsLength: true,
      takesAll: "mask takes any text",
      check: (input, out) => {
        const a = [...input];
        const expected =
          a.length <= 3 ? "#".repeat(a.length) : a[0] + "#".repeat(a.length - 3) + a.slice(-2).join("");
        expect(out).toBe(expected);
      },
    },
  ],
  hash: [
    {
      options: {},
      keyed: true,
      takesAll: "hash takes any text",
      check: (_i, out) => expect(out).toMatch(/^[0-9a-f]{64}$/),
    },
    {
      label: "base32, 20 characters",
      options: { encoding: "base32", length: 20 },
      keyed: true,
      takesAll: "hash takes any text",
      check: (_i, out) => expect(out).toMatch(/^[a-z2-7]{20}$/),
    },
  ],
  char_scramble: [
    {
      options: {},
      keyed: true,
      keepsLength: true,
      takesAll: "char_scramble takes any text",
      check: (input, out) =>
        expectPerCharacter(input, out as string, (c, o) => {
          if (c.codePointAt(0)! < 128) return sameAsciiClass(c, o);
          const cased = letterCase(c);
          if (cased === "upper") return isAsciiUpper(o);
          if (cased === "lower") return isAsciiLower(o);
          return o === c;
        }),
    },
  ],
  regexp_replace: [
    {
      options: { pattern: "[0-9]", replacement: "#" },
      keyed: false,
      keepsLength: true,
      takesAll: "regexp_replace takes any text",
      check: (input, out) => expect(out).toBe([...input].map((c) => (DIGIT.test(c) ? "#" : c)).join("")),
    },
    {
      label: "groups, case-insensitive",
      options: { pattern: "(a+)(b)", replacement: "$2$1", flags: "i" },
      keyed: false,
      keepsLength: true,
      takesAll: "regexp_replace takes any text",
      check: (input, out) => expect(out).toBe(input.replace(/(a+)(b)/gi, "$2$1")),
    },
  ],
  choice: [
    {
      options: { values: CHOICES },
      keyed: true,
      takesAll: "choice takes any value",
      check: (_i, out) => expect(CHOICES).toContain(out),
    },
  ],
  noise_date: [
    {
      options: { days: 365 },
      keyed: true,
      invalid: () => garbage,
      check: (input, out, type) => {
        const withTime = type !== "date";
        const a = parseDateTime(input, withTime)!;
        const b = parseDateTime(out as string, withTime)!;
        const shift = b.day - a.day;
        expect(shift !== 0 && Math.abs(shift) <= 365, `shift ${shift}`).toBe(true);
        expect(b.time + b.fraction).toBe(a.time + a.fraction);
      },
    },
  ],
  noise_number: [
    {
      options: { percent: 10 },
      keyed: true,
      // Values whose ± 10% stays inside the type: at the bounds the result is clamped, for every key.
      keyValues: (type) =>
        type === "numeric(12,2)"
          ? numerics(1_000_000n, NUMERIC_MAX_UNSCALED / 2n)
          : integers(type, 10_000n, INT_RANGE[type]![1] / 2n),
      invalid: () => garbage,
      check: (input, out, type) => {
        const unscaled = (s: string) => BigInt(s.replace(".", ""));
        const scale = (s: string) => (s.includes(".") ? s.length - s.indexOf(".") - 1 : 0);
        expect(scale(out as string)).toBe(scale(input));
        const n = unscaled(input);
        const d = unscaled(out as string) - n;
        const abs = (x: bigint) => (x < 0n ? -x : x);
        // ± 10 percent, plus half a unit of rounding.
        expect(abs(d) * 100n <= 10n * abs(n) + 50n, `${input} → ${out}`).toBe(true);
        if (type !== "numeric(12,2)") expect(out).not.toContain(".");
      },
    },
  ],
  ...Object.fromEntries(FAKE_NAMES.map((name) => [name, [fakeCase(name)]])),
  email: [
    {
      options: {},
      keyed: true,
      takesAll: "email takes any text",
      check: (_i, out) => expect(out).toMatch(/^[a-z0-9]+\.[a-z0-9]+\.[0-9a-hjkmnp-tv-z]{12}@example\.com$/),
    },
  ],
  anonymize: [
    {
      options: {},
      keyed: true,
      keepsLength: true,
      invalid: (type) =>
        type === "uuid" || type === "date" || type === "timestamp without time zone" ? garbage : undefined,
      takesAll:
        "text, integer and numeric columns: anonymize documents a pseudonym for any text (a value it cannot parse for its type is kept or anonymized as text)",
      check: (input, out, type) => {
        const o = out as string;
        if (isText(type)) expectPerCharacter(input, o, sameAsciiClass);
        else if (INT_RANGE[type] || type === "numeric(12,2)")
          expect(o.replace(/\d/g, "9")).toBe(input.replace(/\d/g, "9"));
        else if (type === "uuid") {
          expect(o[14]).toBe(input[14]);
          expect("89ab".includes(o[19]!)).toBe("89ab".includes(input[19]!));
        } else if (type === "date") expect(yearOf(o)).toBe(yearOf(input));
        else {
          const a = parseDateTime(input, true)!;
          const b = parseDateTime(o, true)!;
          expect([b.year, b.era, b.fraction.length]).toEqual([a.year, a.era, a.fraction.length]);
        }
      },
    },
  ],
  ff1: [
    {
      label: "digits",
      options: {},
      keyed: true,
      keepsLength: true,
      values: (type) => (isText(type) ? ff1Digits : valuesOf(type)),
      invalid: (type) =>
        isText(type)
          ? garbage.filter((s) => countOf(s, /[0-9]/g) < 6)
          : fc.oneof(garbage, outOfRange(type), fc.constantFrom("1.5", "+7", "", "-", "1e3")),
      check: (input, out, type) => {
        if (isText(type))
          expectPerCharacter(input, out as string, (c, o) => (isAsciiDigit(c) ? isAsciiDigit(o) : o === c));
        else expect((out as string).startsWith("-")).toBe(input.startsWith("-"));
      },
    },
    {
      label: "alphanumeric",
      options: { alphabet: "alphanumeric" },
      types: TYPES_BY_FAMILY.text,
      keyed: true,
      keepsLength: true,
      values: () => ff1Alphanumerics,
      invalid: () => garbage.filter((s) => countOf(s, ALNUM) < 4),
      check: (input, out) => {
        const o = out as string;
        expectPerCharacter(input, o, (c, x) => (/[A-Za-z0-9]/.test(c) ? /[A-Za-z0-9]/.test(x) : x === c));
        expect(/[A-Z]/.test(o)).toBe(/[A-Z]/.test(input));
        expect(/[a-z]/.test(o)).toBe(/[a-z]/.test(input));
      },
    },
  ],
  permute: [
    {
      options: {},
      keyed: true,
      invalid: (type) =>
        type === "uuid"
          ? fc.oneof(
              garbage,
              fc.uuid().map((u) => u.slice(0, 35)),
              fc.uuid().map((u) => `${u}0`),
            )
          : fc.oneof(garbage, outOfRange(type), fc.constantFrom("1.5", "+7", "", "-", "1e3", " 1")),
      check: (input, out, type) => {
        if (type !== "uuid") return;
        const o = out as string;
        expect(o[14]).toBe(input[14]);
        expect(Number.parseInt(o[19]!, 16) >> 2).toBe(Number.parseInt(input[19]!, 16) >> 2);
      },
    },
  ],
  json_path: [
    {
      options: { path: "$.email", transformer: { name: "email" } },
      keyed: true,
      invalid: () => garbage,
      check: (input, out) => {
        const doc = JSON.parse(input) as Record<string, unknown>;
        const email = compileTransformer("email", {}, KEY_A, "text");
        expect(JSON.parse(out as string)).toEqual({ ...doc, email: email(doc.email as string) });
      },
    },
  ],
  array_each: [
    {
      options: { transformer: { name: "full_name" } },
      keyed: true,
      invalid: () => garbage,
      check: (input, out) => {
        const name = compileTransformer("full_name", {}, KEY_A, "text");
        const items = parsePgArray(input).items as (string | null)[];
        expect(parsePgArray(out as string).items).toEqual(items.map((v) => (v === null ? null : name(v))));
      },
    },
  ],
};

/** Transformers that build a value from the row, not from one value: filled by processCopyPage. */
const ROW_TRANSFORMERS = ["template"];

// --- the properties ------------------------------------------------------------------------

function distinct(arb: fc.Arbitrary<string>, count: number, seed: number): string[] {
  return [...new Set(fc.sample(arb, { numRuns: count, seed }))];
}

/** Postgres casts every output to `type` (an invalid one raises), and the first it refuses is named. */
async function expectPostgresAccepts(type: string, outputs: string[]): Promise<void> {
  const cast = async (values: string[]) =>
    sql`select count(${sql.unsafe(`v::${type}`)})::int as n
        from json_array_elements_text(${JSON.stringify(values)}::text::json) as v`;
  try {
    const [row] = await cast(outputs);
    expect(row!.n).toBe(outputs.length);
  } catch (error) {
    for (const value of outputs) {
      const refused = await cast([value]).then(
        () => undefined,
        (e: Error) => e.message,
      );
      if (refused !== undefined) expect(`${value}: ${refused}`).toBe(`accepted as ${type}`);
    }
    throw error;
  }
}

describe("the conformance table", () => {
  it("covers exactly the catalogue's transformers", () => {
    const names = TRANSFORMERS.map((t) => t.name).sort();
    expect([...Object.keys(CASES), ...ROW_TRANSFORMERS].sort()).toEqual(names);
    for (const [name, cases] of Object.entries(CASES)) {
      expect(cases.length, name).toBeGreaterThan(0);
      // A case names the values it refuses, or says why it takes every value of a type.
      for (const c of cases)
        for (const type of c.types ?? typesOf(transformerInfo(name)!.families))
          expect(c.invalid?.(type) !== undefined || (c.takesAll ?? "") !== "", `${name} on ${type}`).toBe(
            true,
          );
    }
  });

  it("generates each type's values in PostgreSQL's own text form", async () => {
    for (const type of ALL_TYPES) {
      const sample = fc.sample(valuesOf(type), { numRuns: NUM_RUNS, seed: 7 });
      // jsonb prints numbers in its own notation (1e+21 → 1000000000000000000000): it is only read back.
      const printed = type === "jsonb" ? "v::jsonb is not null" : `v::${type}::text = v`;
      const rows = await sql`
        select v from json_array_elements_text(${JSON.stringify(sample)}::text::json) as v
        where not (${sql.unsafe(printed)})`;
      expect(
        rows.map((r) => r.v),
        type,
      ).toEqual([]);
    }
  });

  it("every transformer refuses the column types it does not fit", () => {
    for (const info of TRANSFORMERS)
      for (const type of ALL_TYPES) {
        if (fitsType(info, type)) continue;
        const options = CASES[info.name]?.[0]?.options ?? { template: "{a}" };
        let error: unknown;
        try {
          compileTransformer(info.name, options, KEY_A, type);
        } catch (e) {
          error = e;
        }
        expect(isDrayError(error) && error.code, `${info.name} on ${type}`).toBe("invalid_argument");
      }
  });
});

for (const info of TRANSFORMERS) {
  const cases = CASES[info.name];
  if (cases === undefined) continue;
  describe(info.name, () => {
    for (const [caseIndex, c] of cases.entries()) {
      const types = c.types ?? typesOf(info.families);
      for (const type of types) {
        const title = `${c.label ? `${c.label}, ` : ""}on ${type}`;
        const values = c.values?.(type) ?? valuesOf(type);
        const compile = (key: Uint8Array) => compileTransformer(info.name, c.options, key, type);
        const seed = 1000 + caseIndex * 100 + types.indexOf(type);

        it(`${title}: deterministic, a valid ${type}, and as documented`, () => {
          const f = compile(KEY_A);
          const fresh = compile(Uint8Array.from(KEY_A));
          fc.assert(
            fc.property(values, (v) => {
              const out = f(v);
              expect(f(v)).toBe(out);
              expect(fresh(v)).toBe(out);
              if (out !== null) expectValidValue(type, out);
              if (c.keepsLength && isText(type) && out !== null) expect([...out].length).toBe([...v].length);
              c.check?.(v, out, type);
            }),
            { numRuns: NUM_RUNS, seed },
          );
        });

        it(`${title}: PostgreSQL accepts every output as ${type}`, async () => {
          const f = compile(KEY_A);
          const outputs = fc
            .sample(values, { numRuns: NUM_RUNS, seed })
            .map((v) => f(v))
            .filter((o): o is string => o !== null);
          await expectPostgresAccepts(type, outputs);
        });

        if (c.keyed)
          it(`${title}: changes with the key for at least 99% of values`, () => {
            const a = compile(KEY_A);
            const b = compile(KEY_B);
            const arb = c.keyValues?.(type) ?? (c.values ? values : richValuesOf(type));
            const sample = distinct(arb, KEY_SAMPLE, seed).slice(0, KEY_SAMPLE);
            expect(sample.length).toBeGreaterThan(KEY_SAMPLE / 2);
            const same = sample.filter((v) => a(v) === b(v));
            expect(same.length, `unchanged: ${same.slice(0, 5).join(" | ")}`).toBeLessThanOrEqual(
              sample.length / 100,
            );
          });

        if (info.kind === "bijective" || info.kind === "unique")
          it(`${title}: distinct inputs give distinct outputs (${info.kind})`, () => {
            const f = compile(KEY_A);
            const count = types.indexOf(type) === 0 ? DISTINCT_SAMPLE : DISTINCT_SAMPLE_OTHER_TYPES;
            const sample = distinct(values, count, seed);
            const seen = new Map<string, string>();
            for (const v of sample) {
              const out = f(v) as string;
              const before = seen.get(out);
              if (before !== undefined) expect(`${before} and ${v} → ${out}`).toBe("distinct outputs");
              seen.set(out, v);
            }
            expect(seen.size).toBe(sample.length);
          });

        const refused = c.invalid?.(type);
        if (refused)
          it(`${title}: refuses a value it cannot take with a DrayError that does not quote it`, () => {
            const f = compile(KEY_A);
            fc.assert(
              fc.property(refused, (v) => {
                let error: unknown;
                try {
                  f(v);
                } catch (e) {
                  error = e;
                }
                expect(error, `accepted ${JSON.stringify(v)}`).toBeInstanceOf(DrayError);
                expect((error as DrayError).code).toBe("invalid_argument");
                if (v !== "") expect((error as DrayError).message).not.toContain(v);
              }),
              { numRuns: NUM_RUNS, seed },
            );
          });
      }
    }
  });
}

describe("template (a row transformer: compiled through processCopyPage)", () => {
  const fields = ["id", "first_name", "last_name", "email"];
  const template = "{first_name}.{last_name}@example.com {{id}}";

  it("is in the catalogue and is not a value transformer", () => {
    expect(TRANSFORMERS.some((t) => t.name === "template")).toBe(true);
    let error: unknown;
    try {
      compileTransformer("template", { template: "{a}" }, KEY_A, "text");
    } catch (e) {
      error = e;
    }
    expect(isDrayError(error) && error.code).toBe("unimplemented");
  });

  it("fills placeholders with the row's transformed fields, NULL as empty, deterministically", () => {
    const row = fc.tuple(
      fc.option(pgText, { nil: null }),
      fc.option(pgText, { nil: null }),
      fc.option(pgText, { nil: null }),
    );
    const first = compileTransformer("first_name", {}, KEY_A, "text");
    const last = compileTransformer("last_name", {}, KEY_A, "text");
    const plans = [
      { index: 1, field: "first_name", transformer: "first_name", apply: first },
      { index: 2, field: "last_name", transformer: "last_name", apply: last },
      {
        index: 3,
        field: "email",
        transformer: "template",
        apply: () => null,
        applyRow: templateFactory({ template }, fields),
      },
    ];
    fc.assert(
      fc.property(fc.array(row, { minLength: 1, maxLength: 5 }), (rows) => {
        const page = Buffer.from(rows.map(([f, l, e], i) => formatCopyLine([String(i), f, l, e])).join(""));
        const out = processCopyPage(page, { transforms: plans, fieldNames: fields });
        expect(processCopyPage(page, { transforms: plans, fieldNames: fields }).data).toEqual(out.data);
        const parsed = splitCopyLines(out.data).map((line) => parseCopyLine(line));
        expect(parsed).toEqual(
          rows.map(([f, l], i) => {
            const tf = f === null ? null : first(f);
            const tl = l === null ? null : last(l);
            return [String(i), tf, tl, `${tf ?? ""}.${tl ?? ""}@example.com {id}`];
          }),
        );
      }),
      { numRuns: NUM_RUNS },
    );
  });
});
