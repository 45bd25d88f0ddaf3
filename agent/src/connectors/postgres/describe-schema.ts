import { createHash } from "node:crypto";
import { DrayError } from "@dray/common";
import type { EntityDescription, ReferenceDescription, SchemaDescription } from "../../connector.js";
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
      'fields', (
        select json_agg(a.attname order by k.ord)
        from unnest(co.conkey) with ordinality k(attnum, ord)
        join pg_catalog.pg_attribute a on a.attrelid = co.conrelid and a.attnum = k.attnum),
      'refSchema', rn.nspname,
      'refName', rc.relname,
      'refFields', (
        select json_agg(a.attname order by k.ord)
        from unnest(co.confkey) with ordinality k(attnum, ord)
        join pg_catalog.pg_attribute a on a.attrelid = co.confrelid and a.attnum = k.attnum)))
    from pg_catalog.pg_constraint co
    left join pg_catalog.pg_class rc on rc.oid = co.confrelid
    left join pg_catalog.pg_namespace rn on rn.oid = rc.relnamespace
    where co.conrelid = c.oid and co.contype in ('p', 'f') and co.conparentid = 0), '[]') as constraints
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p')
  and not c.relispartition
  and n.nspname not in ('pg_catalog', 'information_schema', '${LEDGER_SCHEMA}')
  and n.nspname not like 'pg\\_toast%'
  and n.nspname not like 'pg\\_temp\\_%'
  and (pg_catalog.json_array_length($1::text::json) = 0
       or n.nspname in (select pg_catalog.json_array_elements_text($1::text::json)))`;

interface DescribeRow {
  schema: string;
  name: string;
  reltuples: number;
  /** Pages on disk (of every partition for a partitioned table); absent in unit tests' rows. */
  pages?: number;
  fields: EntityDescription["fields"];
  constraints: {
    name: string;
    type: "p" | "f";
    fields: string[];
    refSchema: string | null;
    refName: string | null;
    refFields: string[] | null;
  }[];
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Turns catalog rows into entity descriptions, sorted by schema then name (code-point order). */
export function buildEntities(rows: readonly DescribeRow[]): EntityDescription[] {
  const entities = rows.map((row): EntityDescription => {
    const primary = row.constraints.find((c) => c.type === "p");
    const references: ReferenceDescription[] = row.constraints
      .filter((c) => c.type === "f")
      .map((c) => ({
        name: c.name,
        fields: c.fields,
        referencedEntity: { schema: c.refSchema ?? "", name: c.refName ?? "" },
        referencedFields: c.refFields ?? [],
      }))
      .sort((a, b) => compareText(a.name, b.name));
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
      references,
      estimatedRows: row.reltuples < 0 ? -1 : Math.round(row.reltuples),
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
 * pg_catalog: columns in attnum order, primary keys and foreign keys (composite
 * and self-referencing ones included) and row estimates: the planner's
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
  const rows = await session.query<DescribeRow>(DESCRIBE_SQL, [JSON.stringify(schemas)]);
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
    const { rows, source } = await estimateRows(session, entity, stats, budget.exactPagesLeft + stats.pages);
    return { ...entity, estimatedRows: rows, estimateSource: source };
  } catch (error) {
    if (session.signal.aborted) throw error;
    return { ...entity, estimateSource: "statistics" };
  }
}
