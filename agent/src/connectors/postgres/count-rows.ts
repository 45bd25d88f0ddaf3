import type { Condition, EntityName } from "../../connector.js";
import { BoundParams, conditionsSql } from "./conditions.js";
import { lookupEntity, ownRowsSql, requireFields } from "./entity-catalog.js";
import type { Session } from "./session.js";

/**
 * `select count(*)` of an entity's own rows (`only` for a plain table: never
 * the rows of tables inheriting from it), filtered by bound, type-cast conditions.
 */
export async function countRows(
  session: Session,
  entity: EntityName,
  where: readonly Condition[],
): Promise<number> {
  const info = await lookupEntity(session, entity);
  const params = new BoundParams();
  const terms = conditionsSql(where, (name) => requireFields(info, [name])[0]!, params);
  const sql = `select count(*)::int8 as n from ${ownRowsSql(info)}${terms.length ? ` where ${terms.join(" and ")}` : ""}`;
  const rows = await session.query<{ n: string }>(sql, params.values);
  return Number(rows[0]?.n ?? 0);
}

/** Whether a table is partitioned (relkind p), from pg_class; `$1` schema, `$2` name. */
const PARTITIONED_SQL = `
select c.relkind = 'p' as partitioned
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where n.nspname = $1::text and c.relname = $2::text`;

/**
 * `select count(*)` of the own rows of an entity known to exist (e.g. just
 * read from the catalog), without conditions. `partitioned` says how to read
 * it (see ownRowsSql); when the caller does not know, it is looked up in
 * pg_class (one short catalog read).
 */
export async function countAllRows(
  session: Session,
  entity: EntityName,
  kind: { partitioned?: boolean } = {},
): Promise<number> {
  let partitioned = kind.partitioned;
  if (partitioned === undefined) {
    const [row] = await session.query<{ partitioned: boolean }>(PARTITIONED_SQL, [
      entity.schema,
      entity.name,
    ]);
    partitioned = row?.partitioned === true;
  }
  const rows = await session.query<{ n: string }>(
    `select count(*)::int8 as n from ${ownRowsSql({ entity, partitioned })}`,
  );
  return Number(rows[0]?.n ?? 0);
}
