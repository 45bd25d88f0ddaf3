/**
 * Foreign-key checks of a write made with the target's triggers off
 * (session_replication_role = replica, as pg_restore --disable-triggers): the
 * server then enforces no foreign key, so the agent does, one set-based
 * statement per key over the staged rows, before they are written.
 */
import type { RejectedRecord } from "../../connector.js";
import type { EntityInfo } from "./entity-catalog.js";
import { qualifiedName, quoteIdentifier } from "./identifiers.js";
import type { Session } from "./session.js";
import { STAGE, stageColumn, type WritePlan } from "./write-plan.js";

/** A rejected record with the staged ordinal of its row (records are reported in batch order). */
export type OrdinalRecord = RejectedRecord & { ordinal: number };

/** A foreign key of the target table (or declared on every one of its partitions). */
export interface ForeignKeyInfo {
  name: string;
  fields: string[];
  referenced: { schema: string; name: string };
  /** The referenced table is partitioned: its rows are read without ONLY. */
  referencedPartitioned: boolean;
  referencedFields: string[];
  /** MATCH FULL: a key with some but not all fields NULL is a violation too. */
  matchFull: boolean;
}

const FOREIGN_KEYS_SQL = `
with tree as (
  select c.oid as relid, true as is_root
  from pg_catalog.pg_class c where c.oid = $1::text::regclass
  union all
  select p.relid, false
  from pg_catalog.pg_partition_tree($1::text::regclass) p
  where p.relid <> $1::text::regclass and p.isleaf
)
select
  co.conname as name,
  co.confmatchtype = 'f' as match_full,
  t.is_root,
  t.relid::int8::text as relid,
  (select json_agg(a.attname order by k.ord)
     from unnest(co.conkey) with ordinality k(attnum, ord)
     join pg_catalog.pg_attribute a on a.attrelid = co.conrelid and a.attnum = k.attnum) as fields,
  rn.nspname as ref_schema,
  rc.relname as ref_name,
  rc.relkind = 'p' as ref_partitioned,
  (select json_agg(a.attname order by k.ord)
     from unnest(co.confkey) with ordinality k(attnum, ord)
     join pg_catalog.pg_attribute a on a.attrelid = co.confrelid and a.attnum = k.attnum) as ref_fields,
  (select count(*) from tree where not is_root)::int as leaves
from tree t
join pg_catalog.pg_constraint co on co.conrelid = t.relid and co.contype = 'f' and co.conparentid = 0
join pg_catalog.pg_class rc on rc.oid = co.confrelid
join pg_catalog.pg_namespace rn on rn.oid = rc.relnamespace
order by co.conname`;

interface ForeignKeyRow {
  name: string;
  match_full: boolean;
  is_root: boolean;
  relid: string;
  fields: string[];
  ref_schema: string;
  ref_name: string;
  ref_partitioned: boolean;
  ref_fields: string[];
  leaves: number;
}

/**
 * Reduces catalog rows to the keys every row of the table obeys: the table's
 * own keys, and keys its partitions declare that every leaf partition has
 * (equivalent ones merged, named after the first in name order). A key only
 * some partitions have is left out: checking it on every row would reject
 * rows the database would accept.
 */
export function foreignKeysOf(rows: readonly ForeignKeyRow[]): ForeignKeyInfo[] {
  const signature = (r: ForeignKeyRow) =>
    JSON.stringify([r.fields, r.ref_schema, r.ref_name, r.ref_fields, r.match_full]);
  const out = new Map<string, ForeignKeyInfo>();
  const partitionsWith = new Map<string, Set<string>>();
  for (const r of rows) {
    const key = signature(r);
    if (!r.is_root) {
      const set = partitionsWith.get(key) ?? new Set<string>();
      set.add(r.relid);
      partitionsWith.set(key, set);
    }
    if (r.is_root || !out.has(key))
      out.set(key, {
        name: r.name,
        fields: r.fields,
        referenced: { schema: r.ref_schema, name: r.ref_name },
        referencedPartitioned: r.ref_partitioned,
        referencedFields: r.ref_fields,
        matchFull: r.match_full,
      });
  }
  const leaves = rows[0]?.leaves ?? 0;
  const rootKeys = new Set(rows.filter((r) => r.is_root).map(signature));
  return [...out.entries()]
    .filter(([key]) => rootKeys.has(key) || (partitionsWith.get(key)?.size ?? 0) === leaves)
    .map(([, fk]) => fk);
}

/** The foreign keys of a target table that a write with triggers off must check itself. */
export async function lookupForeignKeys(session: Session, info: EntityInfo): Promise<ForeignKeyInfo[]> {
  const rows = await session.query<ForeignKeyRow>(FOREIGN_KEYS_SQL, [qualifiedName(info.entity)], {
    prepared: true,
  });
  return foreignKeysOf(rows);
}

/**
 * SQL true for a row that breaks `fk`, given each referencing field's value
 * as SQL (`sqlOf`). MATCH SIMPLE: a key with a NULL field references
 * nothing; MATCH FULL: all NULL or none. `alsoPresent`, when given, is extra
 * SQL (over `r`-free terms) that counts as the referenced row existing, e.g.
 * a staged row of the same batch for a self-reference.
 */
export function violationSql(
  fk: ForeignKeyInfo,
  sqlOf: (field: string) => string,
  alsoPresent?: string,
): string {
  const values = fk.fields.map(sqlOf);
  const allSet = values.map((v) => `${v} is not null`).join(" and ");
  const referenced = `${fk.referencedPartitioned ? "" : "only "}${qualifiedName(fk.referenced)}`;
  const match = fk.referencedFields.map((f, i) => `r.${quoteIdentifier(f)} = ${values[i]}`).join(" and ");
  const missing =
    `not exists (select 1 from ${referenced} r where ${match})` +
    (alsoPresent ? ` and not (${alsoPresent})` : "");
  const simple = `(${allSet} and ${missing})`;
  if (!fk.matchFull || values.length === 1) return simple;
  const someNull = values.map((v) => `${v} is null`).join(" or ");
  return `(${simple} or ((${someNull}) and not (${values.map((v) => `${v} is null`).join(" and ")})))`;
}

/** The keys among `keys` whose referencing fields are all written by `plan`, minus `unchecked`. */
export function keysToCheck(
  keys: readonly ForeignKeyInfo[],
  plan: Pick<WritePlan, "fields">,
  unchecked: readonly string[],
): ForeignKeyInfo[] {
  const written = new Set(plan.fields.map((f) => f.name));
  const skip = new Set(unchecked);
  return keys.filter((fk) => !skip.has(fk.name) && fk.fields.every((f) => written.has(f)));
}

/**
 * Finds the staged rows of ordinals `range` that break one of `keys`, one
 * statement per key, and takes them out of the staging table, returning them as rejected records
 * (SQLSTATE 23503, worded as Postgres words it). A self-reference is
 * satisfied by a row staged in the same batch; when a row it relied on is
 * taken out, the check runs again, so what stays is consistent.
 */
export async function rejectBrokenReferences(
  session: Session,
  info: EntityInfo,
  plan: WritePlan,
  keys: readonly ForeignKeyInfo[],
  range: { first: number; last: number },
): Promise<OrdinalRecord[]> {
  if (keys.length === 0) return [];
  const position = new Map(plan.fields.map((f, i) => [f.name, i]));
  const value = (field: string) => {
    const i = position.get(field)!;
    return `s.${stageColumn(i)}::${plan.fields[i]!.castType}`;
  };
  const self = (fk: ForeignKeyInfo) =>
    fk.referenced.schema === info.entity.schema &&
    fk.referenced.name === info.entity.name &&
    fk.referencedFields.every((f) => position.has(f));
  const keyColumns = plan.keyPositions.map((at) => `s.${stageColumn(at)}`);
  const rejected: OrdinalRecord[] = [];
  for (let round = 0; round < 10; round++) {
    let removed = 0;
    for (const fk of keys) {
      const alsoPresent = self(fk)
        ? `exists (select 1 from ${STAGE} s2 where ${fk.referencedFields
            .map((f, i) => {
              const at = position.get(f)!;
              return `s2.${stageColumn(at)}::${plan.fields[at]!.castType} = ${value(fk.fields[i]!)}`;
            })
            .join(" and ")})`
        : undefined;
      const shown = fk.fields.map((f) => `s.${stageColumn(position.get(f)!)}`);
      const rows = await session.query<{ dray_ord: string; key: string; shown: string }>(
        `select s.dray_ord::text as dray_ord, ${jsonTextArray(keyColumns)} as key,` +
          ` ${jsonTextArray(shown)} as shown from ${STAGE} s` +
          ` where s.dray_ord between $1::int8 and $2::int8 and ${violationSql(fk, value, alsoPresent)}`,
        [range.first, range.last],
      );
      if (rows.length === 0) continue;
      for (const row of rows) {
        rejected.push({
          ordinal: Number(row.dray_ord),
          key: parseJsonTextArray(row.key).map((v) => v ?? "\\N"),
          field: fk.fields[0]!,
          message:
            `insert or update on table ${JSON.stringify(info.entity.name)} violates foreign key constraint ` +
            `${JSON.stringify(fk.name)}: Key (${fk.fields.join(", ")})=(${parseJsonTextArray(row.shown)
              .map((v) => v ?? "null")
              .join(", ")}) ` +
            `is not present in table ${JSON.stringify(fk.referenced.name)}`,
          sqlState: "23503",
        });
      }
      removed += await session.execute(`delete from ${STAGE} where dray_ord = any($1::int8[])`, [
        `{${rows.map((r) => r.dray_ord).join(",")}}`,
      ]);
    }
    if (removed === 0 || !keys.some(self)) break;
  }
  return rejected;
}

/**
 * SQL giving the text values of `columns` as a JSON array (as text), so a NULL
 * stays null: a text[] comes back from the driver with the string "NULL".
 */
export function jsonTextArray(columns: readonly string[]): string {
  return `pg_catalog.to_json(array[${columns.join(", ")}]::text[])::text`;
}

/** Parses what {@link jsonTextArray} gives. */
export function parseJsonTextArray(text: string): (string | null)[] {
  const parsed = JSON.parse(text) as unknown;
  return Array.isArray(parsed) ? (parsed as (string | null)[]) : [];
}

/**
 * SQL true when a row of the target among `rows` (`from … where …` over
 * alias `t`, e.g. the key range of a direct COPY) breaks one of `keys`;
 * null when there is nothing to check. Each key is checked over the distinct
 * values the rows hold, so a parent referenced by many copied rows is looked
 * up once.
 */
export function copiedRowsViolationSql(keys: readonly ForeignKeyInfo[], rows: string): string | null {
  if (keys.length === 0) return null;
  return keys
    .map((fk) => {
      const columns = fk.fields.map((f) => `t.${quoteIdentifier(f)}`);
      const aliases = fk.fields.map((_, i) => `k${i + 1}`);
      const allSet = columns.map((c) => `${c} is not null`).join(" and ");
      const distinct = `select distinct ${columns.map((c, i) => `${c} as ${aliases[i]}`).join(", ")} ${rows} and ${allSet}`;
      const missing = violationSql({ ...fk, matchFull: false }, (f) => `d.${aliases[fk.fields.indexOf(f)]}`);
      const simple = `exists (select 1 from (${distinct}) d where ${missing})`;
      if (!fk.matchFull || columns.length === 1) return simple;
      const someNull = columns.map((c) => `${c} is null`).join(" or ");
      const allNull = columns.map((c) => `${c} is null`).join(" and ");
      return `(${simple} or exists (select 1 ${rows} and (${someNull}) and not (${allNull})))`;
    })
    .join(" or ");
}
