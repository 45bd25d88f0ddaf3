import { DrayError } from "@dray/common";
import type { EntityName } from "../../connector.js";
import { displayName, qualifiedName, validateFieldList } from "./identifiers.js";
import type { Session } from "./session.js";

/** One column of an entity as the catalog describes it. */
export interface FieldInfo {
  name: string;
  /** `format_type` with the type modifier, e.g. `character varying(80)`. */
  type: string;
  /**
   * The type without its modifier, e.g. `character varying`, `bpchar`, `"bit"`:
   * what text values are cast to. The column's modifier is then applied by
   * assignment, which errors on a too-long value the way COPY does (an explicit
   * `::varchar(3)` would truncate silently). `format_type(oid, -1)` is used, not
   * `(oid, NULL)`, which spells `character` — that is, char(1).
   */
  castType: string;
  notNull: boolean;
  hasDefault: boolean;
  /** A stored generated column: never written. */
  generated: boolean;
  /** `a` = GENERATED ALWAYS AS IDENTITY (needs OVERRIDING SYSTEM VALUE), `d` = BY DEFAULT, `` = none. */
  identity: string;
}

/** What the connector needs to know about one table to read or write it. */
export interface EntityInfo {
  entity: EntityName;
  fields: FieldInfo[];
  /** Primary key columns in key order; empty without a primary key. */
  primaryKey: string[];
  /** Column sets of valid, non-partial unique indexes on plain columns (primary key included). */
  uniqueKeys: string[][];
  /** The same indexes with their names, primary key first, then by name. */
  uniqueIndexes: { name: string; columns: string[]; primary: boolean }[];
  /** A partitioned table (relkind p): RETURNING cannot read its system columns. */
  partitioned: boolean;
  /** A plain table other tables inherit from: read, counted and cleaned with ONLY. */
  inheritanceParent: boolean;
  /** The table has rewrite rules (never written through: writes run with rules off). */
  hasRules: boolean;
}

/**
 * SQL (a JSON array) of the valid, non-partial unique indexes on plain columns
 * of the table `c`: `{ name, primary, columns }` each. Shared by the catalog
 * lookup and the schema description.
 */
export const UNIQUE_INDEXES_SQL = `coalesce((
    select json_agg(json_build_object(
      'name', ic.relname,
      'primary', i.indisprimary,
      'columns', (
        select json_agg(a.attname order by k.ord)
        from unnest(i.indkey::int2[]) with ordinality k(attnum, ord)
        join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum
        where k.ord <= i.indnkeyatts)))
    from pg_catalog.pg_index i
    join pg_catalog.pg_class ic on ic.oid = i.indexrelid
    where i.indrelid = c.oid and i.indisunique and i.indisvalid
      and i.indpred is null and i.indexprs is null), '[]')`;

const LOOKUP_SQL = `
select
  c.relkind = 'p' as partitioned,
  (c.relkind = 'r' and exists (select 1 from pg_catalog.pg_inherits ih where ih.inhparent = c.oid)) as inheritance_parent,
  c.relhasrules as has_rules,
  coalesce((
    select json_agg(json_build_object(
      'name', a.attname,
      'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
      'castType', pg_catalog.format_type(a.atttypid, -1),
      'notNull', a.attnotnull,
      'hasDefault', (a.atthasdef and a.attgenerated = '') or a.attidentity <> '',
      'generated', a.attgenerated <> '',
      'identity', a.attidentity::text) order by a.attnum)
    from pg_catalog.pg_attribute a
    where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped), '[]') as fields,
  ${UNIQUE_INDEXES_SQL} as unique_keys
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where n.nspname = $1::text and c.relname = $2::text and c.relkind in ('r', 'p')`;

interface LookupRow {
  partitioned: boolean;
  inheritance_parent: boolean;
  has_rules: boolean;
  fields: FieldInfo[];
  unique_keys: { name: string; primary: boolean; columns: string[] | null }[];
}

/**
 * Looks an entity up in pg_catalog (names bound as parameters).
 *
 * @throws DrayError `not_found` when no table or partitioned table has that name.
 */
export async function lookupEntity(session: Session, entity: EntityName): Promise<EntityInfo> {
  const rows = await session.query<LookupRow>(LOOKUP_SQL, [entity.schema, entity.name], { prepared: true });
  const row = rows[0];
  if (!row) throw new DrayError("not_found", `entity ${displayName(entity)} was not found`);
  const keys = row.unique_keys
    .filter((k): k is { name: string; primary: boolean; columns: string[] } => Array.isArray(k.columns))
    .sort(
      (a, b) => Number(b.primary) - Number(a.primary) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
    );
  return {
    entity,
    fields: row.fields,
    primaryKey: keys.find((k) => k.primary)?.columns ?? [],
    uniqueKeys: keys.map((k) => k.columns),
    uniqueIndexes: keys,
    partitioned: row.partitioned === true,
    inheritanceParent: row.inheritance_parent === true,
    hasRules: row.has_rules === true,
  };
}

/**
 * The table as a FROM/DELETE target of its own rows only: `only "s"."t"` for a
 * plain table (never the rows of tables inheriting from it), the bare name for
 * a partitioned table (its rows live in its partitions).
 */
export function ownRowsSql(info: Pick<EntityInfo, "entity" | "partitioned">): string {
  return info.partitioned ? qualifiedName(info.entity) : `only ${qualifiedName(info.entity)}`;
}

/**
 * The fields that identify a row: the primary key, else the unique index whose
 * fields are all NOT NULL (fewest fields, then index name); empty when none.
 */
export function rowKeyOf(info: Pick<EntityInfo, "fields" | "uniqueIndexes">): string[] {
  const notNull = new Set(info.fields.filter((f) => f.notNull).map((f) => f.name));
  const primary = info.uniqueIndexes.find((k) => k.primary);
  if (primary) return [...primary.columns];
  const usable = info.uniqueIndexes
    .filter((k) => k.columns.every((c) => notNull.has(c)))
    .sort((a, b) => a.columns.length - b.columns.length || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return usable[0] ? [...usable[0].columns] : [];
}

/**
 * The catalog entry of each named field, in the given order.
 *
 * @throws DrayError `not_found` naming the first unknown field and the entity.
 */
export function requireFields(info: EntityInfo, names: readonly string[]): FieldInfo[] {
  const byName = new Map(info.fields.map((f) => [f.name, f]));
  return names.map((name) => {
    const field = byName.get(name);
    if (!field)
      throw new DrayError(
        "not_found",
        `field ${JSON.stringify(name)} of ${displayName(info.entity)} was not found`,
      );
    return field;
  });
}

/**
 * The key to read or delete by: `keyFields` when given, else the primary key.
 * Keyset paging needs a key that is NOT NULL and unique, so the fields must
 * cover a unique index (rows with a NULL key would be skipped, duplicates lost).
 *
 * @throws DrayError `failed_precondition` without a usable key, `not_found` for unknown fields.
 */
export function resolveKey(info: EntityInfo, keyFields: readonly string[] | undefined): FieldInfo[] {
  const names = validateFieldList("keyFields", keyFields ?? []);
  const entity = displayName(info.entity);
  if (names.length === 0) {
    const rowKey = rowKeyOf(info);
    if (rowKey.length === 0)
      throw new DrayError(
        "failed_precondition",
        `${entity} has no primary key and no unique key of NOT NULL fields, and no key fields were given`,
      );
    return requireFields(info, rowKey);
  }
  const fields = requireFields(info, names);
  const nullable = fields.filter((f) => !f.notNull).map((f) => f.name);
  if (nullable.length > 0)
    throw new DrayError(
      "failed_precondition",
      `key fields of ${entity} must be NOT NULL: ${nullable.join(", ")}`,
    );
  const chosen = new Set(names);
  if (!info.uniqueKeys.some((key) => key.every((column) => chosen.has(column))))
    throw new DrayError(
      "failed_precondition",
      `key fields (${names.join(", ")}) of ${entity} are not covered by a unique index or primary key`,
    );
  return fields;
}
