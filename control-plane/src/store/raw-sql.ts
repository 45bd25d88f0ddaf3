/**
 * Helpers for the few places that need raw SQL or driver error details; they
 * paper over the differences between postgres.js and PGlite.
 */

/**
 * Rows of a `db.execute()` result: postgres.js returns an array, PGlite `{ rows }`.
 *
 * @example
 * const [row] = rowsOf<{ one: number }>(await db.execute(sql`select 1 as one`));
 */
export function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  const rows = (result as { rows?: unknown } | null)?.rows;
  return Array.isArray(rows) ? (rows as T[]) : [];
}

/**
 * The Postgres SQLSTATE of an error from either driver, looking through
 * drizzle's `DrizzleQueryError` wrapper (`cause`).
 */
export function sqlStateOf(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

/** True when the error is a unique violation (SQLSTATE 23505). */
export function isUniqueViolation(error: unknown): boolean {
  return sqlStateOf(error) === "23505";
}
