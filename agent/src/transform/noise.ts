/**
 * Noise transformers: noise_date (a keyed shift of ± days, never zero, time of
 * day and format kept) and noise_number (a keyed change of ± percent, number
 * of decimals kept, within the column type's range). Importing this module
 * registers them.
 */
import { DrayError } from "@dray/common";
import { civilFromDays, daysFromCivil } from "./civil-days.js";
import { registerTransformer, type TransformOptions } from "./registry.js";

/** The largest shift noise_date accepts, in days (about 270 years). */
export const MAX_NOISE_DAYS = 100_000;

function invalid(message: string): DrayError {
  return new DrayError("invalid_argument", message);
}

function isDigit(ch: string | undefined): boolean {
  return ch !== undefined && ch >= "0" && ch <= "9";
}

const pad2 = (n: number): string => (n < 10 ? `0${n}` : String(n));

/**
 * Shifts the leading ISO date of `value` (`YYYY-MM-DD`, then anything: a
 * time, a zone, ` BC`) by `shift` days, keeping the rest as it is. Returns
 * undefined when `value` does not start with an ISO date.
 */
export function shiftIsoDate(value: string, shift: number): string | undefined {
  let i = 0;
  while (isDigit(value[i])) i++;
  if (i < 4 || value[i] !== "-" || !isDigit(value[i + 1]) || !isDigit(value[i + 2]) || value[i + 3] !== "-")
    return undefined;
  if (!isDigit(value[i + 4]) || !isDigit(value[i + 5]) || isDigit(value[i + 6])) return undefined;
  const year = Number(value.slice(0, i));
  const month = Number(value.slice(i + 1, i + 3));
  const day = Number(value.slice(i + 4, i + 6));
  if (month < 1 || month > 12 || day < 1 || day > 31) return undefined;
  const rest = value.slice(i + 6);
  const bc = rest.endsWith(" BC");
  const [y, m, d] = civilFromDays(daysFromCivil(bc ? 1 - year : year, month, day) + shift);
  const outYear = y <= 0 ? 1 - y : y;
  const suffix = bc ? rest.slice(0, -3) : rest;
  return `${String(outYear).padStart(4, "0")}-${pad2(m)}-${pad2(d)}${suffix}${y <= 0 ? " BC" : ""}`;
}

function validateNoiseDate(options: TransformOptions): void {
  const days = options.days as number;
  if (days < 1 || days > MAX_NOISE_DAYS)
    throw invalid(`transformer noise_date: option days must be between 1 and ${MAX_NOISE_DAYS}`);
}

registerTransformer("noise_date", {
  validate: validateNoiseDate,
  factory: (options, { prf }) => {
    const days = options.days as number;
    return (value) => {
      if (value === "infinity" || value === "-infinity") return value;
      // 2·days outcomes: -days…-1 and 1…days, so every value moves.
      const k = prf.index("noise_date", value, 2 * days);
      const shifted = shiftIsoDate(value, k < days ? k - days : k - days + 1);
      if (shifted === undefined)
        throw invalid(
          "transformer noise_date: a value is not an ISO date or timestamp (YYYY-MM-DD…); read the column with DateStyle ISO",
        );
      return shifted;
    };
  },
});

// --- noise_number -------------------------------------------------------------

const DENOMINATOR = 100_000_000n; // percent · 10^6 → fraction · 10^8

interface ParsedNumber {
  negative: boolean;
  digits: string;
  scale: number;
  hasPoint: boolean;
  exponent: string;
}

function parseNumber(value: string): ParsedNumber | undefined {
  let i = 0;
  let negative = false;
  if (value[0] === "-" || value[0] === "+") {
    negative = value[0] === "-";
    i = 1;
  }
  const intStart = i;
  while (isDigit(value[i])) i++;
  const intDigits = value.slice(intStart, i);
  let fracDigits = "";
  let hasPoint = false;
  if (value[i] === ".") {
    hasPoint = true;
    const fracStart = ++i;
    while (isDigit(value[i])) i++;
    fracDigits = value.slice(fracStart, i);
  }
  if (intDigits === "" && fracDigits === "") return undefined;
  let exponent = "";
  if (value[i] === "e" || value[i] === "E") {
    const expStart = i++;
    if (value[i] === "-" || value[i] === "+") i++;
    const digitsStart = i;
    while (isDigit(value[i])) i++;
    if (i === digitsStart) return undefined;
    exponent = value.slice(expStart, i);
  }
  if (i !== value.length) return undefined;
  return { negative, digits: (intDigits || "0") + fracDigits, scale: fracDigits.length, hasPoint, exponent };
}

function formatNumber(unscaled: bigint, scale: number, hasPoint: boolean, exponent: string): string {
  const negative = unscaled < 0n;
  let digits = (negative ? -unscaled : unscaled).toString();
  if (scale > 0) {
    digits = digits.padStart(scale + 1, "0");
    digits = `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
  } else if (hasPoint) digits += ".";
  return `${negative ? "-" : ""}${digits}${exponent}`;
}

/** The largest absolute unscaled value a column of `columnType` holds at `scale`, if bounded. */
function columnLimit(columnType: string, scale: number): { min: bigint; max: bigint } | undefined {
  const t = columnType.toLowerCase().trim();
  if (t === "smallint") return { min: -32768n, max: 32767n };
  if (t === "integer") return { min: -2147483648n, max: 2147483647n };
  if (t === "bigint") return { min: -9223372036854775808n, max: 9223372036854775807n };
  if (t.startsWith("numeric(") && t.endsWith(")")) {
    const [p, s] = t
      .slice(8, -1)
      .split(",")
      .map((x) => Number(x.trim()));
    const precision = p ?? Number.NaN;
    const typeScale = s ?? 0;
    if (!Number.isInteger(precision) || !Number.isInteger(typeScale)) return undefined;
    const max = 10n ** BigInt(Math.max(0, precision - typeScale + scale)) - 1n;
    return { min: -max, max };
  }
  return undefined;
}

function validateNoiseNumber(options: TransformOptions): void {
  const percent = options.percent as number;
  if (percent <= 0 || percent > 100)
    throw invalid("transformer noise_number: option percent must be more than 0 and at most 100");
}

registerTransformer("noise_number", {
  validate: validateNoiseNumber,
  factory: (options, { prf, columnType }) => {
    const percent = options.percent as number;
    return (value) => {
      if (value === "NaN" || value === "Infinity" || value === "-Infinity") return value;
      const parsed = parseNumber(value);
      if (parsed === undefined)
        throw invalid(
          "transformer noise_number: a value is not a decimal number; it fits integer and numeric columns",
        );
      const n = BigInt(parsed.digits) * (parsed.negative ? -1n : 1n);
      const r = prf.float("noise_number", value) * 2 - 1; // [-1, 1)
      const q = n * BigInt(Math.round(r * percent * 1_000_000));
      const half = DENOMINATOR / 2n;
      let out = n + (q >= 0n ? (q + half) / DENOMINATOR : -((-q + half) / DENOMINATOR));
      const limit = parsed.exponent === "" ? columnLimit(columnType, parsed.scale) : undefined;
      if (limit !== undefined) out = out > limit.max ? limit.max : out < limit.min ? limit.min : out;
      return formatNumber(out, parsed.scale, parsed.hasPoint, parsed.exponent);
    };
  },
});
