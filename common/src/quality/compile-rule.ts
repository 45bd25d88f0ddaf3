/**
 * Data-quality rules as Dray runs them (the source agent on the rows it reads,
 * the control plane on the rows of a loaded file): each rule compiles, for one
 * column type, to a predicate over the value's COPY text form (null for NULL). Every rule but `not_null` lets NULL pass. `matches` runs on re2js, a
 * linear-time engine, so no pattern can hang on any value.
 */
import { RE2JS } from "re2js";
import { DrayError } from "../dray-error.js";
import { isIsoDateBound, qualityRuleInfo } from "../quality-rules.js";
import { typeFamily } from "../transformers.js";
import {
  compareDecimal,
  compareTemporal,
  instantOf,
  isPlainDecimal,
  normaliseTemporalBound,
  plainDecimalOf,
} from "./range-compare.js";

/** True when a value (null: NULL) passes the rule. */
export type QualityCheck = (value: string | null) => boolean;

const FLAG_BITS: Readonly<Record<string, number>> = {
  i: RE2JS.CASE_INSENSITIVE,
  m: RE2JS.MULTILINE,
  s: RE2JS.DOTALL,
};

function invalid(rule: string, message: string): DrayError {
  return new DrayError("invalid_argument", `data-quality rule ${rule}: ${message}`, { retryable: false });
}

/** Characters (code points) of `value`, counting a surrogate pair once. */
function codePoints(value: string): number {
  let n = value.length;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      n--;
      i++;
    }
  }
  return n;
}

/** Both bounds of a range rule, checked against `ok`. */
function bounds(options: Record<string, unknown>, ok: (v: unknown) => boolean, what: string) {
  for (const name of ["min", "max"] as const)
    if (options[name] !== undefined && !ok(options[name]))
      throw invalid("range", `option ${name} must be ${what}`);
  return { min: options.min, max: options.max };
}

/**
 * `range` for a column of `columnType`, ordered as PostgreSQL orders the
 * values: dates and timestamps by year and then text (a date bound is
 * midnight), timestamptz by instant, integers and numerics as exact decimals
 * (NaN in no range), real and double precision as numbers.
 */
function rangeCheck(options: Record<string, unknown>, columnType: string): QualityCheck {
  const family = typeFamily(columnType);
  if (family === "date" || family === "timestamp") {
    const { min, max } = bounds(
      options,
      (v) => typeof v === "string" && isIsoDateBound(v),
      `an ISO date such as 2020-01-31 for a ${columnType} column`,
    );
    const withZone = columnType.toLowerCase().includes("with time zone");
    const timestamp = family === "timestamp";
    const compare = withZone
      ? (value: string, bound: string) => {
          const [a, b] = [instantOf(value), instantOf(bound)];
          if (!a || !b) return compareTemporal(value, bound);
          return a[0] !== b[0] ? a[0] - b[0] : a[1] - b[1];
        }
      : compareTemporal;
    const lo =
      min === undefined
        ? undefined
        : withZone
          ? (min as string)
          : normaliseTemporalBound(min as string, timestamp);
    const hi =
      max === undefined
        ? undefined
        : withZone
          ? (max as string)
          : normaliseTemporalBound(max as string, timestamp);
    return (value) => {
      if (value === null) return true;
      if (value === "infinity") return hi === undefined;
      if (value === "-infinity") return lo === undefined;
      return (lo === undefined || compare(value, lo) >= 0) && (hi === undefined || compare(value, hi) <= 0);
    };
  }
  if (family !== "integer" && family !== "numeric")
    throw invalid("range", `it fits integer, numeric, date and timestamp columns, not ${columnType}`);
  const { min, max } = bounds(options, (v) => typeof v === "number" && Number.isFinite(v), "a number");
  const lo = min === undefined ? undefined : plainDecimalOf(min as number);
  const hi = max === undefined ? undefined : plainDecimalOf(max as number);
  return (value) => {
    if (value === null) return true;
    if (isPlainDecimal(value))
      return (
        (lo === undefined || compareDecimal(value, lo) >= 0) &&
        (hi === undefined || compareDecimal(value, hi) <= 0)
      );
    // real and double precision may print exponents, Infinity or NaN; NaN is in no range.
    const n = Number(value);
    if (Number.isNaN(n)) return false;
    return (min === undefined || n >= (min as number)) && (max === undefined || n <= (max as number));
  };
}

/**
 * Compiles rule `rule` with `options` for a column of `columnType` (as the
 * catalog formats it). The options were validated when the pipeline was saved;
 * they are checked again here, so a bad rule fails the read with a clear
 * message rather than passing rows unchecked.
 *
 * @throws DrayError `invalid_argument` for an unknown rule or bad options
 * @example compileQualityRule("max_length", { length: 5 }, "text")("London") // false
 */
export function compileQualityRule(
  rule: string,
  options: Record<string, unknown>,
  columnType: string,
): QualityCheck {
  if (!qualityRuleInfo(rule))
    throw invalid(rule, "is not known; known: not_null, matches, range, max_length, one_of");
  switch (rule) {
    case "not_null":
      return (value) => value !== null;
    case "matches": {
      const { pattern, flags = "" } = options;
      if (typeof pattern !== "string" || typeof flags !== "string")
        throw invalid(rule, "option pattern (and flags, if set) must be strings");
      let bits = 0;
      for (const f of flags) {
        const bit = FLAG_BITS[f];
        if (bit === undefined) throw invalid(rule, `option flags may only hold i, m and s, not "${f}"`);
        bits |= bit;
      }
      let re: RE2JS;
      try {
        re = RE2JS.compile(pattern, bits);
      } catch (error) {
        throw invalid(rule, `option pattern is not a valid RE2 pattern: ${(error as Error).message}`);
      }
      return (value) => value === null || re.matcher(value).find();
    }
    case "range":
      return rangeCheck(options, columnType);
    case "max_length": {
      const length = options.length;
      if (typeof length !== "number" || !Number.isInteger(length) || length < 1)
        throw invalid(rule, "option length must be a whole number, at least 1");
      return (value) => value === null || value.length <= length || codePoints(value) <= length;
    }
    case "one_of": {
      const values = options.values;
      if (!Array.isArray(values) || !values.every((v) => typeof v === "string"))
        throw invalid(rule, "option values must be an array of strings");
      const allowed = new Set(values as string[]);
      return (value) => value === null || allowed.has(value);
    }
    default:
      throw invalid(rule, "is not known");
  }
}
