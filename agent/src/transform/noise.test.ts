import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { shiftIsoDate } from "./noise.js";
import "./noise.js";
import { createPrf } from "./prf.js";
import { compileTransform } from "./registry.js";

const prfA = createPrf(Buffer.alloc(32, 1));
const prfB = createPrf(Buffer.alloc(32, 2));

const DAY_MS = 86_400_000;
const isoDate = (ms: number) => new Date(ms).toISOString().slice(0, 10);
/** Dates from about 1015 to 9985 as epoch days (so ± 5,000 days stays in four-digit years). */
const epochDay = fc.integer({ min: -349_000, max: 2_927_000 });

describe("shiftIsoDate", () => {
  it("agrees with the proleptic Gregorian calendar of Date", { timeout: 30_000 }, () => {
    fc.assert(
      fc.property(epochDay, fc.integer({ min: -5000, max: 5000 }), (day, shift) => {
        expect(shiftIsoDate(isoDate(day * DAY_MS), shift)).toBe(isoDate((day + shift) * DAY_MS));
      }),
    );
  });

  it("keeps the time, zone and era, and crosses into BC", () => {
    expect(shiftIsoDate("2024-02-28 23:59:59.123456+05:30", 1)).toBe("2024-02-29 23:59:59.123456+05:30");
    expect(shiftIsoDate("2023-12-31 00:00:00", 1)).toBe("2024-01-01 00:00:00");
    expect(shiftIsoDate("0001-01-01", -1)).toBe("0001-12-31 BC");
    expect(shiftIsoDate("0001-12-31 BC", 1)).toBe("0001-01-01");
    expect(shiftIsoDate("0044-03-15 12:00:00 BC", 1)).toBe("0044-03-16 12:00:00 BC");
    expect(shiftIsoDate("12345-06-01", 30)).toBe("12345-07-01");
    expect(shiftIsoDate("not a date", 1)).toBeUndefined();
    expect(shiftIsoDate("2024-13-01", 1)).toBeUndefined();
  });
});

describe("noise_date", () => {
  const compile = (days: number, prf = prfA, type = "date") =>
    compileTransform("noise_date", { days }, prf, type);

  it("shifts by 1…days either way, the same for the same value", () => {
    fc.assert(
      fc.property(epochDay, fc.integer({ min: 1, max: 400 }), (day, days) => {
        const input = isoDate(day * DAY_MS);
        const out = compile(days)(input) as string;
        expect(out).toMatch(/^\d{4}-\d{2}-\d{2}$/);
        const shift = (Date.parse(out) - day * DAY_MS) / DAY_MS;
        expect(Math.abs(shift)).toBeGreaterThanOrEqual(1);
        expect(Math.abs(shift)).toBeLessThanOrEqual(days);
        expect(compile(days)(input)).toBe(out);
      }),
    );
  });

  it("keeps the time part and format of timestamps", () => {
    const fn = compile(30, prfA, "timestamp with time zone");
    fc.assert(
      fc.property(epochDay, fc.integer({ min: 0, max: DAY_MS - 1 }), (day, ms) => {
        const iso = new Date(day * DAY_MS + ms).toISOString();
        const input = `${iso.slice(0, 10)} ${iso.slice(11, 23)}+00`;
        const out = fn(input) as string;
        expect(out.slice(10)).toBe(input.slice(10));
        const shift = (Date.parse(out.slice(0, 10)) - day * DAY_MS) / DAY_MS;
        expect(shift !== 0 && Math.abs(shift) <= 30).toBe(true);
      }),
    );
    expect(fn("infinity")).toBe("infinity");
    expect(fn("-infinity")).toBe("-infinity");
  });

  it("spreads shifts over the whole range", () => {
    const fn = compile(3);
    const shifts = new Set<number>();
    for (let d = 0; d < 500; d++)
      shifts.add((Date.parse(fn(isoDate(d * DAY_MS)) as string) - d * DAY_MS) / DAY_MS);
    expect([...shifts].sort()).toEqual([-1, -2, -3, 1, 2, 3]);
  });

  it("changes with the key", { timeout: 30_000 }, () => {
    const values = Array.from({ length: 10_000 }, (_, i) => isoDate((i * 7 - 20_000) * DAY_MS));
    const a = compile(3650, prfA);
    const b = compile(3650, prfB);
    expect(values.filter((v) => a(v) !== b(v)).length / values.length).toBeGreaterThanOrEqual(0.999);
  });

  it("refuses a value that is not an ISO date, without showing it", () => {
    expect(() => compile(3)("17/05/1990")).toThrow(/not an ISO date or timestamp/);
    expect(() => compile(3)("17/05/1990")).not.toThrow(/17\/05/);
  });
});

describe("noise_number", () => {
  const compile = (percent: number, type = "numeric", prf = prfA) =>
    compileTransform("noise_number", { percent }, prf, type);

  it("moves by at most ± percent, keeping the number of decimals", { timeout: 30_000 }, () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }),
        fc.integer({ min: 0, max: 6 }),
        fc.double({ min: 0.01, max: 100, noNaN: true }),
        (unscaled, scale, percent) => {
          const digits = (unscaled < 0n ? -unscaled : unscaled).toString().padStart(scale + 1, "0");
          const input = `${unscaled < 0n ? "-" : ""}${scale > 0 ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits}`;
          const out = compile(percent)(input) as string;
          const decimals = (s: string) => (s.includes(".") ? s.length - s.indexOf(".") - 1 : 0);
          expect(decimals(out)).toBe(scale);
          expect(out).toMatch(/^-?\d+(\.\d+)?$/);
          const outUnscaled = BigInt(out.replace(".", ""));
          const diff = outUnscaled - unscaled;
          const abs = (x: bigint) => (x < 0n ? -x : x);
          // |diff| ≤ |value|·percent/100, plus one unit for rounding.
          expect(abs(diff) * 10000n <= abs(unscaled) * BigInt(Math.ceil(percent * 100)) + 10000n).toBe(true);
          expect(compile(percent)(input)).toBe(out);
        },
      ),
    );
    expect(compile(10)("1200.00")).toMatch(/^1\d{3}\.\d{2}$/);
  });

  it("keeps NaN, Infinity and the exponent form of floats", () => {
    const fn = compile(10, "double precision");
    expect(fn("NaN")).toBe("NaN");
    expect(fn("-Infinity")).toBe("-Infinity");
    expect(fn("1.5e+20")).toMatch(/^1\.\de\+20$/);
  });

  it("stays within the column type's range", () => {
    expect(compile(50, "smallint")("32767")).toMatch(/^\d+$/);
    expect(Number(compile(50, "smallint")("32767"))).toBeLessThanOrEqual(32767);
    for (let i = 0; i < 200; i++) {
      expect(Number(compile(50, "integer")(String(2147483647 - i)))).toBeLessThanOrEqual(2147483647);
      expect(Number(compile(50, "integer")(String(-2147483648 + i)))).toBeGreaterThanOrEqual(-2147483648);
      expect(Number(compile(50, "numeric(5,2)")(`${999 - i}.99`))).toBeLessThanOrEqual(999.99);
    }
  });

  it("changes with the key", { timeout: 30_000 }, () => {
    const values = Array.from(
      { length: 10_000 },
      (_, i) => `${100_000 + i * 13}.${String(i % 100).padStart(2, "0")}`,
    );
    const a = compile(10, "numeric", prfA);
    const b = compile(10, "numeric", prfB);
    expect(values.filter((v) => a(v) !== b(v)).length / values.length).toBeGreaterThanOrEqual(0.999);
  });

  it("refuses bad options and values that are not numbers", () => {
    expect(() => compile(0)).toThrow(/percent must be more than 0/);
    expect(() => compile(101)).toThrow(/at most 100/);
    expect(() => compile(10)("12,5")).toThrow(/not a decimal number/);
    expect(() => compileTransform("noise_number", { percent: 10 }, prfA, "text")).toThrow(/does not fit/);
  });
});
