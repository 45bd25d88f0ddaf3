/**
 * The work that follows the load of an entity into the target: its sequences
 * are moved past the values the copied rows hold (so the next INSERT without
 * an id does not collide), and the foreign keys that were not checked while
 * writing (the references of a NOT NULL cycle) are validated, reporting every
 * violating row by key.
 */
import { DrayError } from "@dray/common";
import type {
  EntityName,
  FinishEntityRequest,
  FinishEntityResult,
  ReferenceViolation,
  SequenceMove,
} from "../../connector.js";
import { type EntityInfo, lookupEntity, ownRowsSql, requireFields, rowKeyOf } from "./entity-catalog.js";
import { displayName, qualifiedName, quoteIdentifier, validateFieldList } from "./identifiers.js";
import type { Session } from "./session.js";

/** Violations listed per result; `violationCount` counts them all. */
export const MAX_LISTED_VIOLATIONS = 1000;

/**
 * Every sequence a field of the table uses: owned by the column (serial, deptype
 * `a`), behind an identity column (`i`), or named in the column's default
 * expression (`DEFAULT nextval('s'::regclass)` without OWNED BY: the default,
 * a pg_attrdef row, depends on the sequence). `$1` schema, `$2` table.
 */
const SEQUENCES_SQL = `
select u.seq::text as oid, sn.nspname as schema, s.relname as name, a.attname as field,
  (with recursive base(oid, parent) as (
     select ty.oid, ty.typbasetype from pg_catalog.pg_type ty where ty.oid = a.atttypid
     union all
     select ty.oid, ty.typbasetype from base join pg_catalog.pg_type ty on ty.oid = base.parent)
   select bool_or(base.oid in ('pg_catalog.int2'::pg_catalog.regtype, 'pg_catalog.int4'::pg_catalog.regtype,
                               'pg_catalog.int8'::pg_catalog.regtype, 'pg_catalog.numeric'::pg_catalog.regtype))
   from base where base.parent = 0) as integral,
  sq.seqmax::text as max_value, sq.seqincrement::text as increment
from pg_catalog.pg_class t
join pg_catalog.pg_namespace tn on tn.oid = t.relnamespace
join pg_catalog.pg_attribute a on a.attrelid = t.oid and a.attnum > 0 and not a.attisdropped
join lateral (
  select d.objid as seq
  from pg_catalog.pg_depend d
  where d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
    and d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
    and d.refobjid = t.oid and d.refobjsubid = a.attnum and d.deptype in ('a', 'i')
  union
  select d.refobjid
  from pg_catalog.pg_attrdef ad
  join pg_catalog.pg_depend d on d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass and d.objid = ad.oid
    and d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
  where ad.adrelid = t.oid and ad.adnum = a.attnum) u on true
join pg_catalog.pg_class s on s.oid = u.seq and s.relkind = 'S'
join pg_catalog.pg_namespace sn on sn.oid = s.relnamespace
join pg_catalog.pg_sequence sq on sq.seqrelid = s.oid
where tn.nspname = $1::text and t.relname = $2::text and t.relkind in ('r', 'p')
order by a.attnum, sn.nspname, s.relname`;

/** One (sequence, field) pair of {@link SEQUENCES_SQL}. */
interface SequenceUse {
  oid: string;
  schema: string;
  name: string;
  field: string;
  /** An integer or numeric column (or a domain over one): its maximum can be compared with the sequence. */
  integral: boolean;
  max_value: string;
  increment: string;
}

/** A sequence's state as read from the sequence relation itself. */
export interface SequenceState {
  lastValue: bigint;
  isCalled: boolean;
}

/** What to do with one sequence given its field's maximum. */
export type SequenceDecision =
  | { move: true; to: bigint }
  | { move: false; reason: "empty" | "ahead" | "above_max_value" | "descending" | "not_integral" };

/**
 * Decides whether a sequence must move so that its next value is above the
 * field's maximum: only when the maximum is above the sequence's position (the
 * last value handed out: `last_value` once called, else `last_value - 1`), never
 * down, and never past the sequence's MAXVALUE. Descending sequences are left
 * alone (a maximum says nothing about them).
 *
 * @example
 * sequenceDecision({ lastValue: 1n, isCalled: false }, 100n, 2147483647n, 1n) // { move: true, to: 100n }
 * sequenceDecision({ lastValue: 500n, isCalled: true }, 100n, 2147483647n, 1n) // { move: false, reason: "ahead" }
 */
export function sequenceDecision(
  state: SequenceState,
  fieldMax: bigint | null,
  maxValue: bigint,
  increment: bigint,
): SequenceDecision {
  if (fieldMax === null) return { move: false, reason: "empty" };
  if (increment < 0n) return { move: false, reason: "descending" };
  const position = state.isCalled ? state.lastValue : state.lastValue - 1n;
  if (fieldMax <= position) return { move: false, reason: "ahead" };
  if (fieldMax > maxValue) return { move: false, reason: "above_max_value" };
  return { move: true, to: fieldMax };
}

/**
 * Moves every sequence used by a field of the entity (see {@link SEQUENCES_SQL})
 * so that its next `nextval()` returns more than the field's maximum over the
 * table's own rows, in one transaction. Returns one entry per (sequence, field)
 * looked at; `before`/`after` are the sequence's `last_value`. Fields of other
 * types (e.g. a text default `'A-' || nextval(…)`) are not looked at.
 */
export async function moveSequences(session: Session, info: EntityInfo): Promise<SequenceMove[]> {
  const uses = (
    await session.query<SequenceUse>(SEQUENCES_SQL, [info.entity.schema, info.entity.name], {
      prepared: true,
    })
  ).filter((u) => u.integral);
  if (uses.length === 0) return [];
  const fields = [...new Set(uses.map((u) => u.field))];
  return session.transaction(async () => {
    const maxima = await fieldMaxima(session, info, fields);
    const moves: SequenceMove[] = [];
    for (const use of uses) {
      const sequence = { schema: use.schema, name: use.name };
      const state = await readSequence(session, sequence);
      const decision = sequenceDecision(
        state,
        maxima.get(use.field) ?? null,
        BigInt(use.max_value),
        BigInt(use.increment),
      );
      let after = state.lastValue;
      if (decision.move) {
        await session.query(
          "select pg_catalog.setval($1::text::oid::regclass, $2::text::int8, true)",
          [use.oid, decision.to.toString()],
          { prepared: true },
        );
        after = decision.to;
      }
      moves.push({
        sequence: displayName(sequence),
        field: use.field,
        before: state.lastValue.toString(),
        after: after.toString(),
        moved: decision.move,
      });
    }
    return moves;
  });
}

/** The maximum of each field over the table's own rows (rounded up), null for an empty table. */
async function fieldMaxima(
  session: Session,
  info: EntityInfo,
  fields: readonly string[],
): Promise<Map<string, bigint | null>> {
  const columns = fields.map((f) => `pg_catalog.ceil(max(${quoteIdentifier(f)})::numeric)::text`);
  const [row] = await session.query<{ maxima: (string | null)[] }>(
    `select pg_catalog.json_build_array(${columns.join(", ")}) as maxima from ${ownRowsSql(info)}`,
  );
  const maxima = new Map<string, bigint | null>();
  fields.forEach((field, i) => {
    const value = row?.maxima[i];
    maxima.set(field, value === null || value === undefined ? null : BigInt(value));
  });
  return maxima;
}

/** `last_value` and `is_called`, read from the sequence relation (needs SELECT on it). */
async function readSequence(session: Session, sequence: EntityName): Promise<SequenceState> {
  const [row] = await session.query<{ last_value: string; is_called: boolean }>(
    `select last_value::text as last_value, is_called from ${qualifiedName(sequence)}`,
  );
  if (!row) throw new DrayError("internal", `sequence ${displayName(sequence)} returned no row`);
  return { lastValue: BigInt(row.last_value), isCalled: row.is_called === true };
}

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
 *
 * @throws DrayError `not_found` for an unknown entity, key field or foreign key.
 */
export async function finishEntity(
  session: Session,
  request: FinishEntityRequest,
): Promise<FinishEntityResult> {
  const info = await lookupEntity(session, request.entity);
  const references = request.checkReferences ?? [];
  if (!Array.isArray(references) || references.some((r) => typeof r !== "string" || r.length === 0))
    throw new DrayError("invalid_argument", "checkReferences must be a list of foreign key names");
  const named = validateFieldList("keyFields", request.keyFields ?? []);
  const keyFields = named.length > 0 ? named : rowKeyOf(info);
  requireFields(info, keyFields);
  // Every name is resolved before anything moves: an unknown one fails the task unchanged.
  const declarations = await findReferences(session, info, [...new Set(references)]);
  const sequences = request.moveSequences ? await moveSequences(session, info) : [];
  return { sequences, ...(await checkReferences(session, declarations, keyFields)) };
}
