import { DrayError } from "@dray/common";
import type { EntityName } from "../../connector.js";
import { lookupEntity, resolveKey } from "./entity-catalog.js";
import { qualifiedName, quoteIdentifier } from "./identifiers.js";
import type { Session } from "./session.js";

/** Keys sent per DELETE statement; all chunks run in one transaction. */
const KEYS_PER_STATEMENT = 10_000;

/**
 * Deletes every row of the entity with one DELETE in one transaction (not
 * TRUNCATE, which refuses tables other tables reference); returns the count.
 */
export async function deleteAllRows(
  session: Session,
  entity: EntityName,
  _options: { suspendReferences?: boolean } = {},
): Promise<number> {
  await lookupEntity(session, entity);
  return session.transaction(() => session.execute(`delete from ${qualifiedName(entity)}`));
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
    `delete from ${qualifiedName(entity)} where (${columns}) in ` +
    `(select ${values} from pg_catalog.json_array_elements($1::text::json) as e)`;
  return session.transaction(async () => {
    let deleted = 0;
    for (let at = 0; at < keys.length; at += KEYS_PER_STATEMENT)
      deleted += await session.execute(sql, [JSON.stringify(keys.slice(at, at + KEYS_PER_STATEMENT))]);
    return deleted;
  });
}
