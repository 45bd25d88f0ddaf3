import type { Condition, EntityName } from "../../connector.js";
import { BoundParams, conditionsSql } from "./conditions.js";
import { lookupEntity, requireFields } from "./entity-catalog.js";
import { qualifiedName } from "./identifiers.js";
import type { Session } from "./session.js";

/** `select count(*)` of an entity, filtered by bound, type-cast conditions. */
export async function countRows(
  session: Session,
  entity: EntityName,
  where: readonly Condition[],
): Promise<number> {
  const info = await lookupEntity(session, entity);
  const params = new BoundParams();
  const terms = conditionsSql(where, (name) => requireFields(info, [name])[0]!, params);
  const sql = `select count(*)::int8 as n from ${qualifiedName(entity)}${terms.length ? ` where ${terms.join(" and ")}` : ""}`;
  const rows = await session.query<{ n: string }>(sql, params.values);
  return Number(rows[0]?.n ?? 0);
}

/**
 * `select count(*)` of an entity known to exist (e.g. just read from the
 * catalog), without conditions and without a catalog lookup.
 */
export async function countAllRows(session: Session, entity: EntityName): Promise<number> {
  const rows = await session.query<{ n: string }>(`select count(*)::int8 as n from ${qualifiedName(entity)}`);
  return Number(rows[0]?.n ?? 0);
}
