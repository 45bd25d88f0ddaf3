import { DrayError } from "@dray/common";
import type { EntityName } from "../../connector.js";
import { lookupEntity, ownRowsSql, resolveKey } from "./entity-catalog.js";
import { sqlStateOf } from "./error-mapping.js";
import { quoteIdentifier } from "./identifiers.js";
import type { Session } from "./session.js";

/** Keys sent per DELETE statement; all chunks run in one transaction. */
const KEYS_PER_STATEMENT = 10_000;

/**
 * Deletes the entity's own rows (`only` for a plain table: never the rows of
 * tables inheriting from it) with one DELETE in one transaction (not TRUNCATE,
 * which refuses tables other tables reference); returns the count.
 *
 * `suspendReferences` first sets `session_replication_role = replica` for the
 * transaction: triggers and foreign key checks are off, so each table of a
 * cycle whose references are all NOT NULL can be emptied in any order. That
 * takes a superuser or `GRANT SET ON PARAMETER session_replication_role`.
 *
 * @throws DrayError `permission_denied` when the server refuses that setting.
 */
export async function deleteAllRows(
  session: Session,
  entity: EntityName,
  options: { suspendReferences?: boolean } = {},
): Promise<number> {
  const info = await lookupEntity(session, entity);
  const user = options.suspendReferences ? await currentUser(session) : "";
  return session.transaction(async () => {
    if (options.suspendReferences) await suspendReferences(session, user);
    return session.execute(`delete from ${ownRowsSql(info)}`);
  });
}

async function currentUser(session: Session): Promise<string> {
  const [row] = await session.query<{ user: string }>("select current_user::text as user");
  return row?.user ?? "";
}

/** `set local session_replication_role = replica`, with a message that says how to allow it. */
async function suspendReferences(session: Session, user: string): Promise<void> {
  try {
    await session.execute("set local session_replication_role = replica");
  } catch (error) {
    if (sqlStateOf(error) !== "42501") throw error;
    throw new DrayError(
      "permission_denied",
      `cleaning with references suspended sets session_replication_role, which the target's user ${JSON.stringify(user)} may not do: ` +
        `connect as a superuser, or run GRANT SET ON PARAMETER session_replication_role TO ${quoteIdentifier(user || "user")} (PostgreSQL 15 or later)`,
      { cause: error },
    );
  }
}

/**
 * Checks key tuples: a list of string lists, each as long as the key.
 *
 * @throws DrayError `invalid_argument`
 */
export function validateKeys(keys: readonly (readonly string[])[], keyLength: number): void {
  if (!Array.isArray(keys)) throw new DrayError("invalid_argument", "keys must be a list of key tuples");
  for (const key of keys) {
    if (!Array.isArray(key) || key.length !== keyLength)
      throw new DrayError("invalid_argument", `each key must hold ${keyLength} value(s)`);
    if (key.some((v) => typeof v !== "string" || v.includes("\0")))
      throw new DrayError("invalid_argument", "key values must be strings without NUL");
  }
}

/**
 * Deletes rows by key tuples. The tuples travel as one bound JSON parameter per
 * statement and are cast to the key fields' catalog types on the server.
 */
export async function deleteRowsByKey(
  session: Session,
  entity: EntityName,
  keyFields: readonly string[],
  keys: readonly (readonly string[])[],
): Promise<number> {
  const info = await lookupEntity(session, entity);
  const key = resolveKey(info, keyFields);
  validateKeys(keys, key.length);
  if (keys.length === 0) return 0;
  const columns = key.map((k) => quoteIdentifier(k.name)).join(", ");
  const values = key.map((k, i) => `(e ->> ${i})::${k.castType}`).join(", ");
  const sql =
    `delete from ${ownRowsSql(info)} where (${columns}) in ` +
    `(select ${values} from pg_catalog.json_array_elements($1::text::json) as e)`;
  return session.transaction(async () => {
    let deleted = 0;
    for (let at = 0; at < keys.length; at += KEYS_PER_STATEMENT)
      deleted += await session.execute(sql, [JSON.stringify(keys.slice(at, at + KEYS_PER_STATEMENT))]);
    return deleted;
  });
}
