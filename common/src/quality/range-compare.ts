/**
 * Exact comparisons for the `range` rule, agreeing with PostgreSQL's own
 * ordering of the values' text forms: decimals compared digit by digit (no
 * float rounding, so bigint and numeric bounds are exact), dates and
 * timestamps by year then by the rest (years past 9999 and BC dates
 * included), timestamptz by the instant. Pure: no I/O.
 */

/** True for plain decimal text: an optional minus, digits, optionally a point and digits. */
export function isPlainDecimal(s: string): boolean {
  let i = s[0] === "-" ? 1 : 0;
  let digits = 0;
  let point = false;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) digits++;
    else if (c === 46 && !point) point = true;
    else return false;
  }
  return digits > 0;
}

/** Sign, integer digits without leading zeros, fraction digits without trailing zeros. */
function parts(s: string): { negative: boolean; int: string; frac: string } {
  const negative = s[0] === "-";
  const body = negative ? s.slice(1) : s;
  const dot = body.indexOf(".");
  let int = dot < 0 ? body : body.slice(0, dot);
  let frac = dot < 0 ? "" : body.slice(dot + 1);
  let a = 0;
  while (a < int.length - 1 && int[a] === "0") a++;
  int = int.slice(a) || "0";
  let b = frac.length;
  while (b > 0 && frac[b - 1] === "0") b--;
  frac = frac.slice(0, b);
  const zero = int === "0" && frac === "";
  return { negative: negative && !zero, int, frac };
}

/** Compares two plain decimals (see {@link isPlainDecimal}) exactly: negative, zero or positive. */
export function compareDecimal(a: string, b: string): number {
  const x = parts(a);
  const y = parts(b);
  if (x.negative !== y.negative) return x.negative ? -1 : 1;
  const sign = x.negative ? -1 : 1;
  if (x.int.length !== y.int.length) return sign * (x.int.length - y.int.length);
  if (x.int !== y.int) return sign * (x.int < y.int ? -1 : 1);
  const n = Math.max(x.frac.length, y.frac.length);
  const fx = x.frac.padEnd(n, "0");
  const fy = y.frac.padEnd(n, "0");
  return fx === fy ? 0 : sign * (fx < fy ? -1 : 1);
}

/** A finite JS number as plain decimal text (`1e21` → "1000000000000000000000", `1e-7` → "0.0000001"). */
export function plainDecimalOf(n: number): string {
  if (Number.isInteger(n)) return BigInt(n).toString();
  const s = String(n);
  if (!s.includes("e")) return s;
  return n.toFixed(100).replace(/0+$/, "");
}

/** A date or timestamp text split for ordering: signed year (BC 1 = 0, BC 2 = −1) and the rest. */
function temporalKey(text: string): { year: number; rest: string } | undefined {
  const bc = text.endsWith(" BC");
  const body = bc ? text.slice(0, -3) : text;
  const dash = body.indexOf("-", 1);
  if (dash < 4) return undefined;
  const year = Number(body.slice(0, dash));
  if (!Number.isInteger(year)) return undefined;
  return { year: bc ? 1 - year : year, rest: body.slice(dash) };
}

/** Compares a date/timestamp value with a bound of the same shape (see {@link normaliseTemporalBound}). */
export function compareTemporal(value: string, bound: string): number {
  const v = temporalKey(value);
  const b = temporalKey(bound);
  if (!v || !b) return value < bound ? -1 : value > bound ? 1 : 0;
  if (v.year !== b.year) return v.year - b.year;
  return v.rest < b.rest ? -1 : v.rest > b.rest ? 1 : 0;
}

/**
 * An ISO bound (`2020-01-31`, `2020-01-31T10:00`, `2020-01-31 10:00:00.5`) in
 * the text form PostgreSQL gives values of a `date` (just the date) or a
 * `timestamp` column (date, space, HH:MM:SS[.f]): a date bound is midnight.
 */
export function normaliseTemporalBound(bound: string, timestamp: boolean): string {
  const date = bound.slice(0, 10);
  if (!timestamp) return date;
  let time = bound.length > 11 ? bound.slice(11) : "00:00:00";
  if (time.length === 5) time = `${time}:00`;
  return `${date} ${time}`;
}

/**
 * The instant of a timestamptz text (`2020-01-31 10:00:00.123456+00`, or an
 * ISO bound; a bound without an offset is UTC) as [milliseconds, microseconds
 * within them]; undefined when it cannot be read (then text order is used).
 */
export function instantOf(text: string): [number, number] | undefined {
  let iso = text.length > 10 && text[10] === " " ? `${text.slice(0, 10)}T${text.slice(11)}` : text;
  if (iso.length === 10) iso = `${iso}T00:00:00`;
  // PostgreSQL writes offsets as +HH or +HH:MM; Date.parse wants +HH:MM or Z.
  const offset = /[+-]\d\d(:?\d\d)?$/.exec(iso.slice(16));
  if (!offset) iso = `${iso}Z`;
  else if (offset[0].length === 3) iso = `${iso}:00`;
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return undefined;
  const dot = iso.indexOf(".", 16);
  const micro = dot < 0 ? 0 : Number((iso.slice(dot + 4, dot + 7).match(/^\d*/)?.[0] ?? "").padEnd(3, "0"));
  return [ms, micro];
}
