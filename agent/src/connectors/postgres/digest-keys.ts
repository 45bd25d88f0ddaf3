/**
 * Digests of an entity's keys, range by range, computed where the rows are
 * (DigestKeysTask): continuous reconcile compares the count and digest of
 * each range on both sides and reads the keys of the ranges that differ only.
 *
 * The digest of a set of keys (the same on every connector, see
 * {@link RangeDigest}): each row's key values in their text form (the type's
 * output function, what cursors carry), each preceded by its length in bytes
 * and `:`; the first 15 hex digits (60 bits) of the MD5 of that string are the
 * row's hash; the digest is the sum of the hashes mod 2^64, as 16 lowercase hex
 * digits. A sum does not depend on the rows' physical order. The length prefix
 * keeps composite keys apart (`("1", "23")` is `1:12:23`, `("12", "3")` is
 * `2:121:3`). Two different sets of keys with the same count get the same
 * digest with a probability of at most 2^-60 per range: a key in one set and
 * not the other adds a uniformly distributed 60-bit term that the rest of the
 * sum must match exactly. Hashes are 60 bits so each is a non-negative int8 and
 * the server sums them exactly (int8 sums are numeric).
 *
 * Ranges follow the key order with keyset bounds (never OFFSET): picked
 * boundaries come from `row_number()` over the key order in one pass, given
 * boundaries are looked up range by range through the key's index.
 */
import { DrayError } from "@dray/common";
import type { DigestKeysRequest, DigestKeysResult, RangeDigest } from "../../connector.js";
import { BoundParams } from "./conditions.js";
import { type FieldInfo, lookupEntity, ownRowsSql, resolveKey } from "./entity-catalog.js";
import { quoteIdentifier, validateEntityName, validateFieldList } from "./identifiers.js";
import type { Session } from "./session.js";

/** Largest `splitEvery`. */
export const MAX_SPLIT_EVERY = 1_000_000;

/** Most boundaries one call picks or takes. */
export const MAX_BOUNDARIES = 1_000;

/** Alias of the entity in the digest statements (outer aliases never shadow it). */
const TABLE = "dray_t";

const TWO_TO_64 = 1n << 64n;

/** The digest of no key at all. */
export const EMPTY_DIGEST = "0".repeat(16);

/**
 * The digest text of a sum of row hashes (decimal, as the server returns an
 * int8 sum): the sum mod 2^64 as 16 lowercase hex digits.
 */
export function digestOfSum(sum: string | bigint): string {
  return (BigInt(sum) % TWO_TO_64).toString(16).padStart(16, "0");
}

/** A key position: absent, null, or a list of strings without NUL. */
function validatePosition(name: string, position: unknown): void {
  if (position === undefined || position === null) return;
  if (!Array.isArray(position) || position.some((v) => typeof v !== "string" || v.includes("\0")))
    throw new DrayError("invalid_argument", `${name} must be a list of key values (strings without NUL)`);
}

/**
 * Checks the parts of a digest request that need no catalog.
 *
 * @throws DrayError `invalid_argument`
 */
export function validateDigestRequest(request: DigestKeysRequest): void {
  if (request === null || typeof request !== "object")
    throw new DrayError("invalid_argument", "a digest request is required");
  validateEntityName(request.entity);
  validateFieldList("keyFields", request.keyFields ?? []);
  validatePosition("after", request.after);
  validatePosition("until", request.until);
  const every = request.splitEvery ?? 0;
  if (!Number.isSafeInteger(every) || every < 0 || every > MAX_SPLIT_EVERY)
    throw new DrayError(
      "invalid_argument",
      `splitEvery must be an integer from 0 to ${MAX_SPLIT_EVERY.toLocaleString("en-US")}`,
    );
  const boundaries = request.boundaries ?? [];
  if (!Array.isArray(boundaries))
    throw new DrayError("invalid_argument", "boundaries must be a list of key positions");
  if (boundaries.length > MAX_BOUNDARIES)
    throw new DrayError("invalid_argument", `at most ${MAX_BOUNDARIES} boundaries are taken per call`);
  if (every > 0 && boundaries.length > 0)
    throw new DrayError("invalid_argument", "give splitEvery or boundaries, not both");
  for (const [i, b] of boundaries.entries()) validatePosition(`boundary ${i + 1}`, b);
}

/** `(k1, k2) > ($1::T1, $2::T2)` (one field: `k > $1::T`) for `after`, `<=` for `until`. */
function bound(
  kind: "after" | "until",
  position: readonly string[],
  key: readonly FieldInfo[],
  params: BoundParams,
  label: string,
): string {
  if (position.length !== key.length)
    throw new DrayError(
      "invalid_argument",
      `${label} has ${position.length} values but the key has ${key.length} fields`,
    );
  const operator = kind === "after" ? ">" : "<=";
  const columns = key.map((k) => `${TABLE}.${quoteIdentifier(k.name)}`);
  const values = key.map((k, i) => `${params.add(position[i])}::${k.castType}`);
  return key.length === 1
    ? `${columns[0]} ${operator} ${values[0]}`
    : `(${columns.join(", ")}) ${operator} (${values.join(", ")})`;
}

/** `where …` of a range (empty when open at both ends). */
function rangeWhere(terms: readonly (string | null)[]): string {
  const kept = terms.filter((t): t is string => t !== null);
  return kept.length > 0 ? ` where ${kept.join(" and ")}` : "";
}

/** The text columns `t0, t1, …` of the key (each field's output-function text). */
function keyTexts(key: readonly FieldInfo[]): string {
  return key
    .map((k, i) => `pg_catalog.format('%s', ${TABLE}.${quoteIdentifier(k.name)}) as t${i}`)
    .join(", ");
}

/** The 60-bit hash (int8) of a row of `w`, from its key texts `w.t0, w.t1, …`. */
export function rowHashSql(keyLength: number): string {
  const parts = Array.from({ length: keyLength }, (_, i) => `pg_catalog.octet_length(w.t${i}), ':', w.t${i}`);
  return `('x' || pg_catalog.substr(pg_catalog.md5(pg_catalog.concat(${parts.join(", ")})), 1, 15))::pg_catalog.bit(60)::int8`;
}

/** A statement and its bound values. */
export interface DigestQuery {
  sql: string;
  params: unknown[];
}

/**
 * One pass over (after, until] in key order, numbering the rows: part `i /
 * every` (the last part, at `MAX_BOUNDARIES`, takes every remaining row),
 * with each part's count, hash sum and, when the part is full and not the
 * last, its boundary (the key texts of its last row) as `b0, b1, …`.
 */
export function buildSplitQuery(
  from: string,
  key: readonly FieldInfo[],
  after: readonly string[] | null,
  until: readonly string[] | null,
  every: number,
): DigestQuery {
  const params = new BoundParams();
  const where = rangeWhere([
    after ? bound("after", after, key, params, "after") : null,
    until ? bound("until", until, key, params, "until") : null,
  ]);
  const n = `${params.add(every)}::int8`;
  const cap = `${params.add(MAX_BOUNDARIES)}::int8`;
  const order = key.map((k) => `${TABLE}.${quoteIdentifier(k.name)}`).join(", ");
  const boundaries = key
    .map((_, i) => `min(w.t${i}) filter (where w.i % ${n} = ${n} - 1 and w.i / ${n} < ${cap}) as b${i}`)
    .join(", ");
  const sql =
    `select least(w.i / ${n}, ${cap}) as part, count(*)::int8 as n, ` +
    `coalesce(sum(${rowHashSql(key.length)}), 0)::text as s, ${boundaries} ` +
    `from (select ${keyTexts(key)}, row_number() over (order by ${order}) - 1 as i ` +
    `from ${from} as ${TABLE}${where}) w group by 1 order by 1`;
  return { sql, params: params.values };
}

/** Count and hash sum of one range, each end optional. */
export function buildRangeQuery(
  from: string,
  key: readonly FieldInfo[],
  lower: readonly string[] | null,
  upper: readonly string[] | null,
): DigestQuery {
  const params = new BoundParams();
  const where = rangeWhere([
    lower ? bound("after", lower, key, params, "a lower bound") : null,
    upper ? bound("until", upper, key, params, "an upper bound") : null,
  ]);
  const sql =
    `select count(*)::int8 as n, coalesce(sum(${rowHashSql(key.length)}), 0)::text as s ` +
    `from (select ${keyTexts(key)} from ${from} as ${TABLE}${where}) w`;
  return { sql, params: params.values };
}

/**
 * Count and hash sum of ranges bounded at both ends, in one statement: the
 * ranges travel as one bound JSON array of `[lower, upper]` pairs (key values
 * cast to the key's catalog types on the server); each is looked up through
 * the key's index (a lateral range scan). Rows come back by range number `r`
 * (1-based, the ranges' order).
 */
export function buildBoundedRangesQuery(
  from: string,
  key: readonly FieldInfo[],
  ranges: readonly (readonly [readonly string[], readonly string[]])[],
): DigestQuery {
  for (const [lower, upper] of ranges)
    for (const position of [lower, upper])
      if (position.length !== key.length)
        throw new DrayError(
          "invalid_argument",
          `a boundary has ${position.length} values but the key has ${key.length} fields`,
        );
  const columns = key.map((k) => `${TABLE}.${quoteIdentifier(k.name)}`);
  const side = (at: 0 | 1) => key.map((k, i) => `(dray_range.e -> ${at} ->> ${i})::${k.castType}`);
  const compare = (operator: string, values: string[]) =>
    key.length === 1
      ? `${columns[0]} ${operator} ${values[0]}`
      : `(${columns.join(", ")}) ${operator} (${values.join(", ")})`;
  const sql =
    "select dray_range.r::int8 as r, d.n, d.s " +
    "from pg_catalog.json_array_elements($1::text::json) with ordinality as dray_range(e, r) " +
    `cross join lateral (select count(*)::int8 as n, coalesce(sum(${rowHashSql(key.length)}), 0)::text as s ` +
    `from (select ${keyTexts(key)} from ${from} as ${TABLE} ` +
    `where ${compare(">", side(0))} and ${compare("<=", side(1))}) w) d order by 1`;
  return { sql, params: [JSON.stringify(ranges)] };
}

interface SplitRow {
  part: string;
  n: string;
  s: string;
  [boundary: `b${number}`]: string | null;
}

/** Picks boundaries every `every` rows of (after, until] and digests the ranges they make. */
async function digestSplit(
  session: Session,
  from: string,
  key: readonly FieldInfo[],
  request: DigestKeysRequest,
  every: number,
): Promise<DigestKeysResult> {
  const query = buildSplitQuery(from, key, request.after ?? null, request.until ?? null, every);
  const rows = await session.query<SplitRow>(query.sql, query.params);
  const boundaries: string[][] = [];
  for (const row of rows) {
    const values = key.map((_, i) => row[`b${i}`] ?? null);
    if (values.every((v): v is string => v !== null)) boundaries.push(values);
  }
  const ranges: RangeDigest[] = Array.from({ length: boundaries.length + 1 }, () => ({
    count: 0,
    digest: EMPTY_DIGEST,
  }));
  for (const row of rows) {
    const part = Number(row.part);
    if (part < ranges.length) ranges[part] = { count: Number(row.n), digest: digestOfSum(row.s) };
  }
  return { boundaries, ranges };
}

/** Digests the ranges that the given boundaries make of (after, until]. */
async function digestGiven(
  session: Session,
  from: string,
  key: readonly FieldInfo[],
  request: DigestKeysRequest,
  boundaries: readonly string[][],
): Promise<DigestKeysResult> {
  const edges = [request.after ?? null, ...boundaries, request.until ?? null];
  const ranges: RangeDigest[] = [];
  const bounded: [string[], string[]][] = [];
  const boundedAt: number[] = [];
  for (let i = 0; i + 1 < edges.length; i++) {
    const lower = edges[i]!;
    const upper = edges[i + 1]!;
    ranges.push({ count: 0, digest: EMPTY_DIGEST });
    if (lower && upper) {
      bounded.push([lower, upper]);
      boundedAt.push(i);
      continue;
    }
    const query = buildRangeQuery(from, key, lower, upper);
    const [row] = await session.query<{ n: string; s: string }>(query.sql, query.params);
    ranges[i] = { count: Number(row?.n ?? 0), digest: digestOfSum(row?.s ?? "0") };
  }
  if (bounded.length > 0) {
    const query = buildBoundedRangesQuery(from, key, bounded);
    const rows = await session.query<{ r: string; n: string; s: string }>(query.sql, query.params);
    for (const row of rows)
      ranges[boundedAt[Number(row.r) - 1]!] = { count: Number(row.n), digest: digestOfSum(row.s) };
  }
  return { boundaries: boundaries.map((b) => [...b]), ranges };
}

/**
 * Counts and digests the keys of an entity's own rows range by range (see the
 * module comment). Identifiers are validated and quoted; key values are bound
 * parameters cast to the key fields' catalog types.
 *
 * @throws DrayError `invalid_argument` for a malformed request, `not_found` for
 * an unknown entity or field, `failed_precondition` for a key that is not
 * NOT NULL and unique.
 */
export async function digestKeys(session: Session, request: DigestKeysRequest): Promise<DigestKeysResult> {
  validateDigestRequest(request);
  const info = await lookupEntity(session, request.entity);
  const key = resolveKey(info, request.keyFields);
  const from = ownRowsSql(info);
  const every = request.splitEvery ?? 0;
  if (every > 0) return digestSplit(session, from, key, request, every);
  return digestGiven(session, from, key, request, request.boundaries ?? []);
}
