/**
 * The work that follows the load of an entity into the target: its sequences
 * are moved past the values the copied rows hold (so the next INSERT without
 * an id does not collide), and the foreign keys that were not checked while
 * writing (the references of a NOT NULL cycle) are validated, reporting every
 * violating row by key.
 */
import { DrayError } from "@dray/common";
import type { FinishEntityRequest, FinishEntityResult, ReferenceViolation } from "../../connector.js";
import { CatalogCache } from "./catalog-cache.js";
import { type EntityInfo, ownRowsSql, requireFields, rowKeyOf } from "./entity-catalog.js";
import { displayName, quoteIdentifier, validateFieldList } from "./identifiers.js";
import { moveSequences } from "./sequence-moves.js";
import type { Session } from "./session.js";

/** Violations listed per result; `violationCount` counts them all. */
export const MAX_LISTED_VIOLATIONS = 1000;

/**
 * The foreign keys named `$3` in the table's partition tree (the table itself
 * when it is not partitioned): the one declared on the table when there is
 * one, else those declared on its partitions. Declarations only: never the
 * clones (`conparentid` set) a partitioned table's key leaves on its partitions,
 * nor those it gets for each partition of a referenced partitioned table. Each with
 * the table it is on, what it references and the equality operators.
 */
const REFERENCES_SQL = `
with recursive tree as (
  select t.oid, 0 as depth
  from pg_catalog.pg_class t
  join pg_catalog.pg_namespace tn on tn.oid = t.relnamespace
  where tn.nspname = $1::text and t.relname = $2::text and t.relkind in ('r', 'p')
  union all
  select i.inhrelid, tree.depth + 1
  from tree
  join pg_catalog.pg_inherits i on i.inhparent = tree.oid
  join pg_catalog.pg_class p on p.oid = i.inhrelid and p.relispartition
)
select co.conname as name, tree.depth, co.confmatchtype::text as match,
  n.nspname as schema, c.relname as table_name, c.relkind = 'p' as partitioned,
  rn.nspname as ref_schema, rc.relname as ref_table, rc.relkind = 'p' as ref_partitioned,
  (select json_agg(a.attname order by k.ord)
   from unnest(co.conkey) with ordinality k(attnum, ord)
   join pg_catalog.pg_attribute a on a.attrelid = co.conrelid and a.attnum = k.attnum) as fields,
  (select json_agg(a.attname order by k.ord)
   from unnest(co.confkey) with ordinality k(attnum, ord)
   join pg_catalog.pg_attribute a on a.attrelid = co.confrelid and a.attnum = k.attnum) as ref_fields,
  (select json_agg(json_build_array(opn.nspname, op.oprname) order by k.ord)
   from unnest(co.conpfeqop) with ordinality k(opr, ord)
   join pg_catalog.pg_operator op on op.oid = k.opr
   join pg_catalog.pg_namespace opn on opn.oid = op.oprnamespace) as operators
from tree
join pg_catalog.pg_constraint co on co.conrelid = tree.oid and co.contype = 'f' and co.conname = $3::text
join pg_catalog.pg_class c on c.oid = co.conrelid
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
join pg_catalog.pg_class rc on rc.oid = co.confrelid
join pg_catalog.pg_namespace rn on rn.oid = rc.relnamespace
where co.conparentid = 0
order by tree.depth, n.nspname, c.relname`;

/** One foreign key declaration of {@link REFERENCES_SQL}. */
export interface ReferenceDeclaration {
  name: string;
  depth: number;
  /** `f` MATCH FULL, `s` MATCH SIMPLE, `p` MATCH PARTIAL (not implemented by Postgres). */
  match: string;
  schema: string;
  table_name: string;
  partitioned: boolean;
  ref_schema: string;
  ref_table: string;
  ref_partitioned: boolean;
  fields: string[];
  ref_fields: string[];
  /** `[schema, name]` of each referenced = referencing equality operator (conpfeqop). */
  operators: [string, string][];
}

/** Characters an operator name may consist of (CREATE OPERATOR's rule). */
const OPERATOR_CHARS = new Set("+-*/<>=~!@#%^&|`?");

/** `OPERATOR("schema".=)`: the key's own equality operator, whatever the search_path. */
export function operatorSql([schema, name]: readonly [string, string]): string {
  if (name.length === 0 || [...name].some((ch) => !OPERATOR_CHARS.has(ch)))
    throw new DrayError("internal", `unexpected operator name ${JSON.stringify(name)} in the catalog`);
  return `operator(${quoteIdentifier(schema)}.${name})`;
}

/**
 * The statement that lists the rows of the table a key is declared on that
 * have no referenced row: with MATCH SIMPLE those whose referencing fields are
 * all non-null; with MATCH FULL also those with some but not all null. Each
 * row gives `key` (the values of `keyFields`), `values` (the referencing
 * fields) and `total` (every violation, counted before the limit).
 */
export function referenceCheckSql(declaration: ReferenceDeclaration, keyFields: readonly string[]): string {
  const from = ownRowsSql({
    entity: { schema: declaration.schema, name: declaration.table_name },
    partitioned: declaration.partitioned,
  });
  const referenced = ownRowsSql({
    entity: { schema: declaration.ref_schema, name: declaration.ref_table },
    partitioned: declaration.ref_partitioned,
  });
  const fields = declaration.fields.map((f) => `r.${quoteIdentifier(f)}`);
  const allSet = fields.map((f) => `${f} is not null`).join(" and ");
  const matches = declaration.fields
    .map(
      (_, i) =>
        `p.${quoteIdentifier(declaration.ref_fields[i]!)} ${operatorSql(declaration.operators[i]!)} ${fields[i]}`,
    )
    .join(" and ");
  const missing = `(${allSet} and not exists (select 1 from ${referenced} p where ${matches}))`;
  const condition =
    declaration.match === "f" && fields.length > 1
      ? `(${missing} or pg_catalog.num_nulls(${fields.join(", ")}) between 1 and ${fields.length - 1})`
      : missing;
  const keys = keyFields.map((f) => `r.${quoteIdentifier(f)}::text`);
  const order = keyFields.length > 0 ? keyFields.map((f) => `r.${quoteIdentifier(f)}`) : fields;
  return (
    `select pg_catalog.json_build_array(${keys.join(", ")}) as key, ` +
    `pg_catalog.json_build_array(${fields.map((f) => `${f}::text`).join(", ")}) as values, ` +
    `(count(*) over ())::int8 as total from ${from} r where ${condition} ` +
    `order by ${order.join(", ")} limit ${MAX_LISTED_VIOLATIONS}`
  );
}

/**
 * Postgres's own words for a violation (ri_ReportViolation): field names as
 * they are, values as text, NULL as `null`.
 *
 * @example
 * violationMessage("rental", "rental_customer_fkey", "customer", ["customer_id"], ["7"], false)
 * // 'insert or update on table "rental" violates foreign key constraint "rental_customer_fkey" Key (customer_id)=(7) is not present in table "customer".'
 */
export function violationMessage(
  table: string,
  reference: string,
  referencedTable: string,
  fields: readonly string[],
  values: readonly (string | null)[],
  matchFull: boolean,
): string {
  const head = `insert or update on table "${table}" violates foreign key constraint "${reference}"`;
  const mixed = values.some((v) => v === null);
  if (matchFull && mixed) return `${head} MATCH FULL does not allow mixing of null and nonnull key values.`;
  const shown = values.map((v) => v ?? "null");
  return `${head} Key (${fields.join(", ")})=(${shown.join(", ")}) is not present in table "${referencedTable}".`;
}

/**
 * The declarations of each named foreign key (see {@link REFERENCES_SQL}):
 * the table's own, else those on its partitions.
 *
 * @throws DrayError `not_found` for a name that is no foreign key of the table or its partitions.
 */
export async function findReferences(
  session: Session,
  info: EntityInfo,
  references: readonly string[],
): Promise<ReferenceDeclaration[]> {
  const all: ReferenceDeclaration[] = [];
  for (const reference of references) {
    const found = await session.query<ReferenceDeclaration>(
      REFERENCES_SQL,
      [info.entity.schema, info.entity.name, reference],
      { prepared: true },
    );
    if (found.length === 0)
      throw new DrayError(
        "not_found",
        `foreign key ${JSON.stringify(reference)} of ${displayName(info.entity)} was not found (nor on its partitions)`,
      );
    all.push(...(found[0]!.depth === 0 ? [found[0]!] : found));
  }
  return all;
}

/**
 * Validates foreign key declarations, one set-based statement each; lists up
 * to {@link MAX_LISTED_VIOLATIONS} violating rows in all (by `keyFields`, else
 * by the referencing fields) and counts every one.
 */
export async function checkReferences(
  session: Session,
  declarations: readonly ReferenceDeclaration[],
  keyFields: readonly string[],
): Promise<Pick<FinishEntityResult, "violations" | "violationCount">> {
  const violations: ReferenceViolation[] = [];
  let violationCount = 0;
  for (const declaration of declarations) {
    const key = keyFields.length > 0 ? keyFields : declaration.fields;
    const rows = await session.query<{ key: (string | null)[]; values: (string | null)[]; total: string }>(
      referenceCheckSql(declaration, key),
    );
    violationCount += Number(rows[0]?.total ?? 0);
    for (const row of rows) {
      if (violations.length >= MAX_LISTED_VIOLATIONS) break;
      violations.push({
        reference: declaration.name,
        key: row.key.map((v) => v ?? ""),
        message: violationMessage(
          declaration.table_name,
          declaration.name,
          declaration.ref_table,
          declaration.fields,
          row.values,
          declaration.match === "f",
        ),
      });
    }
  }
  return { violations, violationCount };
}

/**
 * Finishes a loaded entity: moves its sequences (`moveSequences`) and
 * validates the named foreign keys (`checkReferences`), reporting violating
 * rows by `keyFields` — by default the row key, else the referencing fields.
 * The entity and its sequences come from `catalog` (the connector's cache;
 * without one they are read for this call), and a finish whose cached entry
 * fails the way a changed catalog explains runs once more from a fresh
 * reading ({@link CatalogCache.use}; moving a sequence again is harmless).
 *
 * @throws DrayError `not_found` for an unknown entity, key field or foreign key.
 */
export async function finishEntity(
  session: Session,
  request: FinishEntityRequest,
  catalog: CatalogCache = new CatalogCache({ ttlMs: 0 }),
): Promise<FinishEntityResult> {
  const references = request.checkReferences ?? [];
  if (!Array.isArray(references) || references.some((r) => typeof r !== "string" || r.length === 0))
    throw new DrayError("invalid_argument", "checkReferences must be a list of foreign key names");
  const named = validateFieldList("keyFields", request.keyFields ?? []);
  return catalog.use(
    session,
    request.entity,
    async ({ info }) => {
      const keyFields = named.length > 0 ? named : rowKeyOf(info);
      requireFields(info, keyFields);
      // Every name is resolved before anything moves: an unknown one fails the task unchanged.
      const declarations = await findReferences(session, info, [...new Set(references)]);
      return { keyFields, declarations };
    },
    async ({ keyFields, declarations }, { info, sequences }) => {
      const moved = request.moveSequences ? await moveSequences(session, info, await sequences()) : [];
      return { sequences: moved, ...(await checkReferences(session, declarations, keyFields)) };
    },
  );
}
