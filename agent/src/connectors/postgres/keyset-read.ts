import { DrayError } from "@dray/common";
import type { ReadBatchRequest, ReadBatchResult } from "../../connector.js";
import { BoundParams, conditionsSql } from "./conditions.js";
import { CopyTextBuilder } from "./copy-text.js";
import { type FieldInfo, lookupEntity, requireFields, resolveKey } from "./entity-catalog.js";
import { qualifiedName, quoteIdentifier, validateEntityName, validateFieldList } from "./identifiers.js";
import type { RawRow, Session } from "./session.js";

/** Checks the parts of a read request that need no catalog. */
export function validateReadRequest(request: ReadBatchRequest): void {
  validateEntityName(request.entity);
  if (!Number.isSafeInteger(request.maxRows) || request.maxRows < 1)
    throw new DrayError("invalid_argument", "maxRows must be a positive integer");
  if (!Number.isSafeInteger(request.maxBytes) || request.maxBytes < 1)
    throw new DrayError("invalid_argument", "maxBytes must be a positive integer");
  if (request.fields !== undefined) validateFieldList("fields", request.fields);
  if (request.nullFields !== undefined) validateFieldList("nullFields", request.nullFields);
  if (request.after !== undefined && request.after !== null) {
    if (!Array.isArray(request.after) || request.after.some((v) => typeof v !== "string" || v.includes("\0")))
      throw new DrayError("invalid_argument", "after must be a list of key values (strings without NUL)");
  }
}

/** The SELECT of one keyset page and where the key values sit in its rows. */
export interface KeysetQuery {
  sql: string;
  params: unknown[];
  /** Fields returned in `rows.data`, in order. */
  fields: string[];
  /** Column index of each key field in the result rows. */
  keyPositions: number[];
}

/**
 * Builds `SELECT fields FROM t WHERE (k1, k2) > ($1::T1, $2::T2) AND … ORDER BY
 * k1, k2 LIMIT $n`: a keyset page, never OFFSET. Every value (cursor, filters,
 * limit) is a bound parameter; types come from the catalog. Fields in `nulled`
 * are selected as NULL. Key fields that are not among the requested fields (or
 * are nulled) are selected after them, for `last` only.
 */
export function buildKeysetQuery(
  request: ReadBatchRequest,
  fields: readonly FieldInfo[],
  key: readonly FieldInfo[],
  resolve: (name: string) => FieldInfo,
  nulled: ReadonlySet<string> = new Set(),
): KeysetQuery {
  const params = new BoundParams();
  const selected = fields.map((f) => (nulled.has(f.name) ? "null" : quoteIdentifier(f.name)));
  const keyPositions = key.map((k) => {
    const at = fields.findIndex((f) => f.name === k.name);
    if (at >= 0 && !nulled.has(k.name)) return at;
    selected.push(quoteIdentifier(k.name));
    return selected.length - 1;
  });
  const where: string[] = [];
  const after = request.after ?? null;
  if (after !== null) {
    if (after.length !== key.length)
      throw new DrayError(
        "invalid_argument",
        `after has ${after.length} values but the key has ${key.length} fields`,
      );
    const columns = key.map((k) => quoteIdentifier(k.name));
    const values = key.map((k, i) => `${params.add(after[i])}::${k.castType}`);
    where.push(
      key.length === 1 ? `${columns[0]} > ${values[0]}` : `(${columns.join(", ")}) > (${values.join(", ")})`,
    );
  }
  where.push(...conditionsSql(request.where, resolve, params));
  const sql = [
    `select ${selected.join(", ")}`,
    `from ${qualifiedName(request.entity)}`,
    where.length > 0 ? `where ${where.join(" and ")}` : "",
    `order by ${key.map((k) => quoteIdentifier(k.name)).join(", ")}`,
    `limit ${params.add(request.maxRows)}::int8`,
  ]
    .filter(Boolean)
    .join(" ");
  return { sql, params: params.values, fields: fields.map((f) => f.name), keyPositions };
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

/**
 * Reads one keyset page. Values arrive in the server's text output format
 * (identical to what COPY TO writes, session settings included) and are
 * escaped to COPY text here; postgres.js's COPY TO stream is not used because
 * it can leave the connection's socket paused after a large COPY.
 */
export async function readKeysetPage(session: Session, request: ReadBatchRequest): Promise<ReadBatchResult> {
  const info = await lookupEntity(session, request.entity);
  const fields = request.fields?.length
    ? requireFields(info, request.fields)
    : info.fields.filter((f) => !f.generated);
  const key = resolveKey(info, request.keyFields);
  const nulled = new Set(request.nullFields ?? []);
  const names = new Set(fields.map((f) => f.name));
  const stray = [...nulled].filter((name) => !names.has(name));
  if (stray.length > 0)
    throw new DrayError("invalid_argument", `nullFields must be among the fields read: ${stray.join(", ")}`);
  const query = buildKeysetQuery(request, fields, key, (name) => requireFields(info, [name])[0]!, nulled);
  const rows = await session.rawRows(query.sql, query.params);
  const page = encodePage(rows, fields.length, query.keyPositions, request.maxBytes);
  return {
    rows: { encoding: "copy_text", fields: query.fields, rowCount: page.rowCount, data: page.data },
    last: page.last,
    done: !page.trimmed && rows.length < request.maxRows,
  };
}
