/**
 * Cursor pagination of the API's lists: the `limit` and `cursor` query fields,
 * the `next` answer field, opaque cursors (base64url of a JSON keyset
 * position) and the keyset SQL (ORDER BY and "after this position") built from
 * one list of sort keys, so the order and the cursor always agree. No OFFSET:
 * a page costs the same wherever it is. Pure: no I/O.
 *
 * @example
 * const keys: KeysetKey[] = [{ expr: sql`lower(${t.name}) collate "C"`, dir: "asc" }, { expr: sql`${t.id}`, dir: "asc" }];
 * const after = cursor ? keysetAfter(keys, decodeCursor(cursor, "things", keys.length)) : undefined;
 * const rows = await db.select({ row: t, position: keysetColumns(keys) }).from(t).where(after)
 *   .orderBy(...keysetOrderBy(keys)).limit(limit + 1);
 * const { items, next } = pageOf(rows, limit, "things", (r) => r.position);
 */
import { DrayError } from "@dray/common";
import { z } from "@hono/zod-openapi";
import { and, or, type SQL, sql } from "drizzle-orm";

/** Items per page when `limit` is not given. */
export const DEFAULT_PAGE_LIMIT = 50;
/** The largest accepted `limit`. */
export const MAX_PAGE_LIMIT = 200;
/** The longest accepted `cursor` (a cursor the API gave is far shorter). */
export const MAX_CURSOR_LENGTH = 1_024;

/** The `limit` and `cursor` query fields; spread into a list's query schema. */
export const pageQuery = {
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(MAX_PAGE_LIMIT)
    .default(DEFAULT_PAGE_LIMIT)
    .openapi({
      description: `Items per page, 1–${MAX_PAGE_LIMIT} (default ${DEFAULT_PAGE_LIMIT})`,
      example: DEFAULT_PAGE_LIMIT,
    }),
  cursor: z
    .string()
    .max(MAX_CURSOR_LENGTH)
    .optional()
    .openapi({ description: "The `next` of the previous page; omit it for the first page" }),
};

/** The `next` answer field; spread into a list's answer schema. */
export const nextField = {
  next: z
    .string()
    .nullable()
    .openapi({ description: "Cursor of the next page (pass it as `cursor`), or null on the last page" }),
};

/** A value of a keyset position: the sort keys are compared as text, numbers or null. */
export type CursorValue = string | null;

/** One sort key of a list. */
export interface KeysetKey {
  /** The SQL expression sorted on; compared to the cursor's value (a bound parameter) as is. */
  expr: SQL;
  dir: "asc" | "desc";
  /** Set when the expression may be null: nulls sort last, in either direction. */
  nullable?: boolean;
  /**
   * What the expression's values look like, checked in every decoded cursor before it
   * reaches SQL (a forged value must be a 400, never a cast error). @default "text"
   */
  kind?: "text" | "uuid" | "number";
}

function invalidCursor(reason: string): DrayError {
  return new DrayError(
    "invalid_argument",
    `cursor is not valid (${reason}): pass the \`next\` of a previous answer of the same list unchanged, or omit it`,
    { details: { issues: [{ path: "cursor", message: reason }] } },
  );
}

/**
 * The opaque cursor of a position in the list `list` (a name that also carries
 * the sort, e.g. `environments:name`, so a cursor cannot be used with another).
 *
 * @example
 * encodeCursor("pipelines", ["orders", "7c1e…"]) // "WyJwaXBlbGluZXMiLFsib3JkZXJzIiwiN2MxZeKApiJdXQ"
 */
export function encodeCursor(list: string, values: readonly CursorValue[]): string {
  return Buffer.from(JSON.stringify([list, values]), "utf8").toString("base64url");
}

function isBase64Url(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const ok = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 || c === 95;
    if (!ok) return false;
  }
  return true;
}

/**
 * The position in a cursor of the list `list` with `arity` sort keys. Throws
 * `invalid_argument` naming `cursor` when it is malformed, too long, or of
 * another list or sort.
 */
export function decodeCursor(cursor: string, list: string, arity: number): CursorValue[] {
  if (cursor.length === 0 || cursor.length > MAX_CURSOR_LENGTH) throw invalidCursor("wrong length");
  if (!isBase64Url(cursor)) throw invalidCursor("not base64url");
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    throw invalidCursor("not a cursor of this API");
  }
  if (!Array.isArray(parsed) || parsed.length !== 2 || !Array.isArray(parsed[1])) {
    throw invalidCursor("not a cursor of this API");
  }
  const [name, values] = parsed as [unknown, unknown[]];
  if (name !== list) throw invalidCursor("it belongs to another list or sort order");
  if (values.length !== arity || !values.every((v) => v === null || typeof v === "string")) {
    throw invalidCursor("not a cursor of this API");
  }
  return values as CursorValue[];
}

/** A decimal number as `::text` prints it: optional minus, digits, optional fraction. */
function isDecimal(text: string): boolean {
  let i = text.startsWith("-") ? 1 : 0;
  let digits = 0;
  let dot = false;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) digits++;
    else if (c === 46 && !dot && digits > 0) dot = true;
    else return false;
  }
  return digits > 0 && text.charCodeAt(text.length - 1) !== 46;
}

function isUuidText(text: string): boolean {
  if (text.length !== 36) return false;
  for (let i = 0; i < 36; i++) {
    const c = text.charCodeAt(i);
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 45) return false;
    } else if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70))) return false;
  }
  return true;
}

/** Throws `invalid_argument` naming `cursor` when a value does not fit its key. */
function checkCursorValues(keys: readonly KeysetKey[], values: readonly CursorValue[]): void {
  keys.forEach((key, i) => {
    const value = values[i] ?? null;
    if (value === null) {
      if (!key.nullable) throw invalidCursor("not a cursor of this API");
      return;
    }
    if (value.includes("\u0000")) throw invalidCursor("not a cursor of this API");
    const kind = key.kind ?? "text";
    if ((kind === "uuid" && !isUuidText(value)) || (kind === "number" && !isDecimal(value)))
      throw invalidCursor("not a cursor of this API");
  });
}

/** ORDER BY terms of the keys (nullable keys sort their nulls last). */
export function keysetOrderBy(keys: readonly KeysetKey[]): SQL[] {
  return keys.map((k) =>
    k.nullable
      ? sql`${k.expr} ${sql.raw(k.dir)} nulls last`
      : k.dir === "asc"
        ? sql`${k.expr} asc`
        : sql`${k.expr} desc`,
  );
}

/** The keys as one selected column: a JSON array of their values as text, to build the next cursor from. */
export function keysetColumns(keys: readonly KeysetKey[]): SQL<CursorValue[]> {
  return sql<CursorValue[]>`json_build_array(${sql.join(
    keys.map((k) => sql`(${k.expr})::text`),
    sql`, `,
  )})`;
}

function strictlyAfter(key: KeysetKey, value: CursorValue): SQL {
  if (value === null) return sql`false`; // nulls sort last: nothing comes after a null
  const beyond = key.dir === "asc" ? sql`${key.expr} > ${value}` : sql`${key.expr} < ${value}`;
  return key.nullable ? (or(beyond, sql`${key.expr} is null`) as SQL) : beyond;
}

function equalTo(key: KeysetKey, value: CursorValue): SQL {
  return value === null ? sql`${key.expr} is null` : sql`${key.expr} = ${value}`;
}

/**
 * The condition "comes after `values`" in the keys' order (the rows of the pages that follow).
 * Throws `invalid_argument` naming `cursor` when a value does not fit its key's `kind`.
 */
export function keysetAfter(keys: readonly KeysetKey[], values: readonly CursorValue[]): SQL {
  checkCursorValues(keys, values);
  const terms: SQL[] = keys.map((key, i) => {
    const equalBefore = keys.slice(0, i).map((k, j) => equalTo(k, values[j] ?? null));
    return and(...equalBefore, strictlyAfter(key, values[i] ?? null)) as SQL;
  });
  return or(...terms) as SQL;
}

/**
 * The page and its `next` cursor from rows fetched with `limit + 1`: a row
 * beyond the limit means there is a next page, which starts after the last
 * row of this one.
 */
export function pageOf<T>(
  rows: readonly T[],
  limit: number,
  list: string,
  positionOf: (row: T) => readonly CursorValue[],
): { items: T[]; next: string | null } {
  if (rows.length <= limit) return { items: [...rows], next: null };
  const items = rows.slice(0, limit);
  return { items, next: encodeCursor(list, positionOf(items[items.length - 1]!)) };
}
