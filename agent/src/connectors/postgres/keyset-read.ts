import { DrayError } from "@dray/common";
import type { ReadBatchRequest, ReadBatchResult } from "../../connector.js";
import { BoundParams, conditionsSql, dollarPlaceholder, type Placeholder } from "./conditions.js";
import { keyInfoOf, validateContinuous } from "./continuous-bound.js";
import { CopyTextBuilder } from "./copy-text.js";
import { type EntityInfo, type FieldInfo, ownRowsSql, requireFields, resolveKey } from "./entity-catalog.js";
import { qualifiedName, quoteIdentifier, validateEntityName, validateFieldList } from "./identifiers.js";
import type { RawRow, Session } from "./session.js";

/** Checks the parts of a read request that need no catalog. */
export function validateReadRequest(request: ReadBatchRequest): void {
  validateEntityName(request.entity);
  if (!Number.isSafeInteger(request.maxRows) || request.maxRows < 1)
    throw new DrayError("invalid_argument", "maxRows must be a positive integer");
  if (!Number.isSafeInteger(request.maxBytes) || request.maxBytes < 1)
    throw new DrayError("invalid_argument", "maxBytes must be a positive integer");
  // Empty key fields are fine: the row key, or for a table without one its physical position.
  if (request.keyFields !== undefined && request.keyFields !== null)
    validateFieldList("keyFields", request.keyFields);
  if (request.fields !== undefined) validateFieldList("fields", request.fields);
  if (request.nullFields !== undefined) validateFieldList("nullFields", request.nullFields);
  validateKeyPosition("after", request.after);
  validateKeyPosition("until", request.until);
  validateContinuous(request);
}

/** A key position (`after`, `until`) is absent, null, or a list of strings without NUL. */
function validateKeyPosition(name: "after" | "until", position: unknown): void {
  if (position === undefined || position === null) return;
  if (!Array.isArray(position) || position.some((v) => typeof v !== "string" || v.includes("\0")))
    throw new DrayError("invalid_argument", `${name} must be a list of key values (strings without NUL)`);
}

/** The SELECT of one keyset page and where the key values sit in its rows. */
export interface KeysetQuery {
  sql: string;
  params: unknown[];
  /** Fields returned in `rows.data`, in order: the first columns of each result row. */
  fields: string[];
  /** Columns of each result row: the fields, then key fields selected for `last` only. */
  columnCount: number;
  /** Column index of each key field in the result rows. */
  keyPositions: number[];
}

/** `(k1, k2) > ($1::T1, $2::T2)` (one field: `k > $1::T`), or null without a position. */
function keyComparison(
  name: "after" | "until",
  position: readonly string[] | null | undefined,
  key: readonly FieldInfo[],
  params: BoundParams,
): string | null {
  if (position === undefined || position === null) return null;
  if (position.length !== key.length)
    throw new DrayError(
      "invalid_argument",
      `${name} has ${position.length} values but the key has ${key.length} fields`,
    );
  const operator = name === "after" ? ">" : "<=";
  const columns = key.map((k) => quoteIdentifier(k.name));
  const values = key.map((k, i) => `${params.add(position[i])}::${k.castType}`);
  return key.length === 1
    ? `${columns[0]} ${operator} ${values[0]}`
    : `(${columns.join(", ")}) ${operator} (${values.join(", ")})`;
}

/**
 * Builds `SELECT fields FROM t WHERE (k1, k2) > ($1::T1, $2::T2) AND (k1, k2)
 * <= ($3::T1, $4::T2) AND … ORDER BY k1, k2 LIMIT $n`: a keyset page after
 * `after` and up to `until` (inclusive), never OFFSET. Every value (cursor,
 * bound, filters, limit) is a bound parameter, written by `placeholder`; types
 * come from the catalog. Fields in `nulled` are selected as NULL. Key fields
 * that are not among the requested fields (or are nulled) are selected after
 * them, for `last` only. `from` is the table's own rows (see {@link ownRowsSql}):
 * `only "s"."t"` unless told otherwise.
 */
export function buildKeysetQuery(
  request: ReadBatchRequest,
  fields: readonly FieldInfo[],
  key: readonly FieldInfo[],
  resolve: (name: string) => FieldInfo,
  nulled: ReadonlySet<string> = new Set(),
  placeholder: Placeholder = dollarPlaceholder,
  from = `only ${qualifiedName(request.entity)}`,
): KeysetQuery {
  const params = new BoundParams(placeholder);
  const selected = fields.map((f) => (nulled.has(f.name) ? "null" : quoteIdentifier(f.name)));
  const keyPositions = key.map((k) => {
    const at = fields.findIndex((f) => f.name === k.name);
    if (at >= 0 && !nulled.has(k.name)) return at;
    selected.push(quoteIdentifier(k.name));
    return selected.length - 1;
  });
  const where = [
    keyComparison("after", request.after, key, params),
    keyComparison("until", request.until, key, params),
  ].filter((term): term is string => term !== null);
  where.push(...conditionsSql(request.where, resolve, params));
  const sql = [
    `select ${selected.join(", ")}`,
    `from ${from}`,
    where.length > 0 ? `where ${where.join(" and ")}` : "",
    `order by ${key.map((k) => quoteIdentifier(k.name)).join(", ")}`,
    `limit ${params.add(request.maxRows)}::int8`,
  ]
    .filter(Boolean)
    .join(" ");
  return {
    sql,
    params: params.values,
    fields: fields.map((f) => f.name),
    columnCount: selected.length,
    keyPositions,
  };
}

/**
 * Encodes rows as COPY text within the byte budget: rows are added until one
 * would push the data past `maxBytes` (the first row is always kept).
 */
export function encodePage(
  rows: readonly RawRow[],
  fieldCount: number,
  keyPositions: readonly number[],
  maxBytes: number,
): { data: Buffer; rowCount: number; last: string[] | null; trimmed: boolean } {
  const builder = new CopyTextBuilder(Math.min(maxBytes + 1024, 1 << 22));
  let kept = 0;
  let trimmed = false;
  for (const row of rows) {
    const before = builder.byteLength;
    builder.addRow(fieldCount === row.length ? row : row.slice(0, fieldCount));
    if (builder.byteLength > maxBytes && kept > 0) {
      builder.truncate(before);
      trimmed = true;
      break;
    }
    kept++;
  }
  const lastRow = kept > 0 ? rows[kept - 1]! : null;
  const last = lastRow ? keyPositions.map((at) => lastRow[at]?.toString("utf8") ?? "") : null;
  return { data: builder.toBuffer(), rowCount: kept, last, trimmed };
}

/** What a read takes from the catalog: the fields to read, the key, the nulled fields. */
export interface KeysetPlan {
  /** The table's own rows as a FROM item: `only "s"."t"`, or the bare name of a partitioned table. */
  from: string;
  fields: FieldInfo[];
  key: FieldInfo[];
  nulled: ReadonlySet<string>;
  /** The catalog entry of a field named in a condition; throws `not_found`. */
  resolve: (name: string) => FieldInfo;
}

/**
 * Checks the request against the entity's catalog entry: the fields (every
 * non-generated one when none are named) and `nullFields` (which must be among
 * the fields read). The plan's key is `key`, the resolved key fields (empty
 * for a read by physical position).
 */
export function planRead(info: EntityInfo, request: ReadBatchRequest, key: FieldInfo[]): KeysetPlan {
  const fields = request.fields?.length
    ? requireFields(info, request.fields)
    : info.fields.filter((f) => !f.generated);
  const nulled = new Set(request.nullFields ?? []);
  const names = new Set(fields.map((f) => f.name));
  const stray = [...nulled].filter((name) => !names.has(name));
  if (stray.length > 0)
    throw new DrayError("invalid_argument", `nullFields must be among the fields read: ${stray.join(", ")}`);
  return { from: ownRowsSql(info), fields, key, nulled, resolve: (name) => requireFields(info, [name])[0]! };
}

/**
 * {@link planRead} of a keyset read: the key is `keyFields`, else the row key
 * (see {@link resolveKey}). A continuous read's cursor field may be nullable
 * (its rows with a NULL cursor are never read, see continuous-bound.ts).
 */
export function planKeysetRead(info: EntityInfo, request: ReadBatchRequest): KeysetPlan {
  return planRead(info, request, resolveKey(keyInfoOf(info, request), request.keyFields));
}

/**
 * Reads one keyset page with a plain SELECT. Values arrive in the server's
 * text output format (identical to what COPY TO writes, session settings
 * included) and are escaped to COPY text here. The fallback of the COPY read
 * (copy-read.ts), for servers without COPY TO STDOUT.
 */
export async function selectKeysetPage(
  session: Session,
  request: ReadBatchRequest,
  plan: KeysetPlan,
): Promise<ReadBatchResult> {
  const query = buildKeysetQuery(
    request,
    plan.fields,
    plan.key,
    plan.resolve,
    plan.nulled,
    dollarPlaceholder,
    plan.from,
  );
  const rows = await session.rawRows(query.sql, query.params);
  const page = encodePage(rows, query.fields.length, query.keyPositions, request.maxBytes);
  return {
    rows: { encoding: "copy_text", fields: query.fields, rowCount: page.rowCount, data: page.data },
    last: page.last,
    done: !page.trimmed && rows.length < request.maxRows,
  };
}
