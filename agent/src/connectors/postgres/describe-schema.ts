import { createHash } from "node:crypto";
import { DrayError } from "@dray/common";
import type {
  EntityDescription,
  EntityKind,
  ReferenceDescription,
  SchemaDescription,
} from "../../connector.js";
import { type FieldInfo, rowKeyOf, UNIQUE_INDEXES_SQL } from "./entity-catalog.js";
import { LEDGER_SCHEMA, validateIdentifier } from "./identifiers.js";
import {
  type EstimateSource,
  EXACT_COUNT_BUDGET_PAGES,
  estimatePlan,
  estimateRows,
} from "./row-estimates.js";
import type { Session } from "./session.js";

/** An entity as described, with where its row estimate comes from. */
export type DescribedEntity = EntityDescription & { estimateSource: EstimateSource };

/**
 * Tables (relkind r) and partitioned tables (p) of user schemas; partitions
 * are left out (they are read and written through their parent). System
 * schemas, TOAST and temp schemas and the ledger schema are excluded. `$1` is a
 * JSON array of schema names; empty = all.
 *
 * Foreign keys are those declared on the table and, for a partitioned table,
 * on any of its partitions (every level of pg_partition_tree): a partition's
 * foreign key constrains the rows written through its parent. Clones of a
 * parent's foreign key (on its partitions, or one per partition of a
 * referenced partitioned table) have `conparentid` set and are left out. A
 * referenced partition is named by its root (pg_partition_root), the entity it
 * belongs to. `level` is 0 for the table itself, the partition depth otherwise.
 */
const DESCRIBE_SQL = `
select
  n.nspname as schema,
  c.relname as name,
  c.reltuples::float8 as reltuples,
  (case when c.relkind = 'p'
     then coalesce((select sum(pg_catalog.pg_relation_size(pt.relid))
                    from pg_catalog.pg_partition_tree(c.oid) pt), 0)
     else pg_catalog.pg_relation_size(c.oid) end
   / pg_catalog.current_setting('block_size')::int8)::float8 as pages,
  case
    when c.relkind = 'p' then 'partitioned'
    when exists (select 1 from pg_catalog.pg_inherits ih where ih.inhparent = c.oid) then 'inheritance_parent'
    else 'table'
  end as kind,
  coalesce((
    select json_agg(json_build_object(
      'name', a.attname,
      'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
      'nullable', not a.attnotnull,
      'hasDefault', (a.atthasdef and a.attgenerated = '') or a.attidentity <> '',
      'generated', a.attgenerated <> '') order by a.attnum)
    from pg_catalog.pg_attribute a
    where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped), '[]') as fields,
  coalesce((
    select json_agg(json_build_object(
      'name', co.conname,
      'type', co.contype,
      'level', tree.level,
      'fields', (
        select json_agg(a.attname order by k.ord)
        from unnest(co.conkey) with ordinality k(attnum, ord)
        join pg_catalog.pg_attribute a on a.attrelid = co.conrelid and a.attnum = k.attnum),
      'validated', co.convalidated and not exists (
        select 1 from pg_catalog.pg_trigger t
        join pg_catalog.pg_constraint cc on cc.oid = t.tgconstraint
        where (cc.oid = co.oid or cc.conparentid = co.oid) and t.tgenabled = 'D'),
      'refSchema', rn.nspname,
      'refName', rc.relname,
      'refFields', (
        select json_agg(a.attname order by k.ord)
        from unnest(co.confkey) with ordinality k(attnum, ord)
        join pg_catalog.pg_attribute a on a.attrelid = co.confrelid and a.attnum = k.attnum)))
    from (select c.oid as relid, 0 as level
          union all
          select pt.relid, pt.level from pg_catalog.pg_partition_tree(c.oid) pt where pt.level > 0) tree
    join pg_catalog.pg_constraint co on co.conrelid = tree.relid
    left join pg_catalog.pg_class rp on rp.oid = co.confrelid
    left join pg_catalog.pg_class rc
      on rc.oid = case when rp.relispartition then pg_catalog.pg_partition_root(rp.oid) else rp.oid end
    left join pg_catalog.pg_namespace rn on rn.oid = rc.relnamespace
    where co.conparentid = 0
      and (co.contype = 'f' or (co.contype = 'p' and tree.level = 0))), '[]') as constraints,
  ${UNIQUE_INDEXES_SQL} as unique_indexes
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p')
  and not c.relispartition
  and n.nspname not in ('pg_catalog', 'information_schema', '${LEDGER_SCHEMA}')
  and n.nspname not like 'pg\\_toast%'
  and n.nspname not like 'pg\\_temp\\_%'
  and (pg_catalog.json_array_length($1::text::json) = 0
       or n.nspname in (select pg_catalog.json_array_elements_text($1::text::json)))`;

/** One primary key or foreign key as the catalog query returns it. */
interface ConstraintRow {
  name: string;
  type: "p" | "f";
  /** 0 on the table itself, the partition depth for a partition's foreign key; absent = 0. */
  level?: number;
  fields: string[];
  /** Validated (not NOT VALID) and its triggers not disabled; absent in unit tests' rows: false. */
  validated?: boolean;
  refSchema: string | null;
  refName: string | null;
  refFields: string[] | null;
}

/** A valid, non-partial unique index on plain columns (`columns` null when the catalog gave none). */
interface UniqueIndexRow {
  name: string;
  primary: boolean;
  columns: string[] | null;
}

interface DescribeRow {
  schema: string;
  name: string;
  reltuples: number;
  /** Pages on disk (of every partition for a partitioned table); absent in unit tests' rows. */
  pages?: number;
  /** Absent in unit tests' rows: `table`. */
  kind?: EntityKind;
  fields: EntityDescription["fields"];
  constraints: ConstraintRow[];
  /** Absent in unit tests' rows: none. */
  unique_indexes?: UniqueIndexRow[];
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The foreign keys of an entity, one per distinct reference: foreign keys
 * declared on several partitions with the same fields, referenced entity and
 * referenced fields are one reference, named after the one declared on the
 * table itself when there is one, else after the first partition's in name
 * order. Sorted by name. `validated` says the source enforces the reference
 * for every row: declared on the table itself, validated, triggers enabled.
 */
export function mergeReferences(constraints: readonly ConstraintRow[]): ReferenceDescription[] {
  const foreign = constraints
    .filter((c) => c.type === "f")
    .sort((a, b) => Number((a.level ?? 0) > 0) - Number((b.level ?? 0) > 0) || compareText(a.name, b.name));
  const byShape = new Map<string, ReferenceDescription>();
  for (const c of foreign) {
    const reference: ReferenceDescription = {
      name: c.name,
      fields: c.fields,
      referencedEntity: { schema: c.refSchema ?? "", name: c.refName ?? "" },
      referencedFields: c.refFields ?? [],
      // Enforced for every row only when declared on the table itself: one declared on partitions may miss some.
      validated: c.validated === true && (c.level ?? 0) === 0,
    };
    const shape = JSON.stringify([
      reference.fields,
      reference.referencedEntity.schema,
      reference.referencedEntity.name,
      reference.referencedFields,
    ]);
    if (!byShape.has(shape)) byShape.set(shape, reference);
  }
  return [...byShape.values()].sort((a, b) => compareText(a.name, b.name));
}

/**
 * The row key of a described table (see {@link rowKeyOf}): the primary key,
 * else the unique index of fewest NOT NULL fields (then by name), else none.
 */
function rowKeyOfRow(row: DescribeRow): string[] {
  const indexes = (row.unique_indexes ?? [])
    .filter((k): k is UniqueIndexRow & { columns: string[] } => Array.isArray(k.columns))
    .map((k) => ({ name: k.name, primary: k.primary, columns: k.columns }));
  const fields: FieldInfo[] = row.fields.map((f) => ({
    name: f.name,
    type: f.type,
    castType: f.type,
    notNull: !f.nullable,
    hasDefault: f.hasDefault,
    generated: f.generated,
    identity: "",
  }));
  return rowKeyOf({ fields, uniqueIndexes: indexes });
}

/** Turns catalog rows into entity descriptions, sorted by schema then name (code-point order). */
export function buildEntities(rows: readonly DescribeRow[]): EntityDescription[] {
  const entities = rows.map((row): EntityDescription => {
    const primary = row.constraints.find((c) => c.type === "p" && (c.level ?? 0) === 0);
    return {
      schema: row.schema,
      name: row.name,
      fields: row.fields.map((f) => ({
        name: f.name,
        type: f.type,
        nullable: f.nullable,
        hasDefault: f.hasDefault,
        generated: f.generated,
      })),
      primaryKey: primary?.fields ?? [],
      references: mergeReferences(row.constraints),
      estimatedRows: row.reltuples < 0 ? -1 : Math.round(row.reltuples),
      rowKey: primary ? [...primary.fields] : rowKeyOfRow(row),
      kind: row.kind ?? "table",
      uniqueKeys: (row.unique_indexes ?? [])
        .filter((k): k is UniqueIndexRow & { columns: string[] } => Array.isArray(k.columns))
        .map((k) => [...k.columns])
        .sort((a, b) => compareText(a.join("\u0000"), b.join("\u0000"))),
    };
  });
  return entities.sort((a, b) => compareText(a.schema, b.schema) || compareText(a.name, b.name));
}

/** JSON with object keys sorted at every level, so equal values always give equal text. */
export function stableStringify(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => compareText(a, b));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableStringify(v)}`).join(",")}}`;
}

/**
 * sha256 (hex) of the stable JSON of the entities. Row estimates are left out:
 * they move with every ANALYZE, while the fingerprint must change only when the
 * structure does.
 */
export function fingerprintOf(entities: readonly EntityDescription[]): string {
  const structure = entities.map(({ estimatedRows: _estimate, ...rest }) => {
    const { estimateSource: _source, ...structural } = rest as typeof rest & { estimateSource?: unknown };
    return structural;
  });
  return createHash("sha256").update(stableStringify(structure)).digest("hex");
}

/**
 * Describes the tables of `schemas` (all user schemas when empty) through
 * pg_catalog: columns in attnum order, primary keys, row keys, kinds, foreign
 * keys (composite and self-referencing ones included, for a partitioned table
 * those of its partitions too; see {@link DESCRIBE_SQL}) and row estimates: the planner's
 * statistics, or for a table never analysed an exact count (small table) or a
 * sampled estimate (large one); each entity says which (`estimateSource`).
 */
export async function describeSchema(
  session: Session,
  schemas: readonly string[],
  options: { estimates?: boolean } = {},
): Promise<SchemaDescription> {
  if (!Array.isArray(schemas))
    throw new DrayError("invalid_argument", "schemas must be a list of schema names");
  for (const schema of schemas) validateIdentifier("schema", schema);
  const rows = await session.query<DescribeRow>(DESCRIBE_SQL, [JSON.stringify(schemas)], { prepared: true });
  const entities = buildEntities(rows);
  const fingerprint = fingerprintOf(entities);
  if (options.estimates === false) {
    return { entities: entities.map((e) => ({ ...e, estimateSource: "statistics" as const })), fingerprint };
  }
  const statsOf = new Map(rows.map((r) => [`${r.schema}\u0000${r.name}`, r]));
  const described: DescribedEntity[] = [];
  const budget = { exactPagesLeft: EXACT_COUNT_BUDGET_PAGES };
  for (const entity of entities) {
    const row = statsOf.get(`${entity.schema}\u0000${entity.name}`);
    described.push(await withEstimate(session, entity, row, budget));
  }
  return { entities: described, fingerprint };
}

/**
 * `entity` with its best row estimate. A table that cannot be counted (e.g. no
 * SELECT privilege) keeps the statistics' value; an abort is rethrown.
 */
async function withEstimate(
  session: Session,
  entity: EntityDescription,
  row: DescribeRow | undefined,
  budget: { exactPagesLeft: number },
): Promise<DescribedEntity> {
  const stats = { reltuples: row?.reltuples ?? -1, pages: Number(row?.pages ?? 0) };
  const plan = estimatePlan(stats, budget.exactPagesLeft);
  if (plan.source === "statistics") return { ...entity, estimateSource: "statistics" };
  if (plan.source === "exact") budget.exactPagesLeft -= stats.pages;
  try {
    const { rows, source } = await estimateRows(session, entity, stats, budget.exactPagesLeft + stats.pages, {
      partitioned: entity.kind === "partitioned",
    });
    return { ...entity, estimatedRows: rows, estimateSource: source };
  } catch (error) {
    if (session.signal.aborted) throw error;
    return { ...entity, estimateSource: "statistics" };
  }
}
