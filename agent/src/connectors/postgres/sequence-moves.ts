/**
 * Moving the sequences an entity's fields use past the values its rows hold,
 * as pg_restore does, so that the application's next INSERT without an id
 * does not collide: after a finish task, or inside an entity's last write
 * batch.
 */
import { DrayError } from "@dray/common";
import type { SequenceMove } from "../../connector.js";
import { type EntityInfo, ownRowsSql } from "./entity-catalog.js";
import { displayName, qualifiedName, quoteIdentifier } from "./identifiers.js";
import type { Session } from "./session.js";

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
  sq.seqmax::text as max_value, sq.seqincrement::text as increment,
  (pg_catalog.has_sequence_privilege(s.oid, 'SELECT')
   and pg_catalog.has_sequence_privilege(s.oid, 'UPDATE')) as allowed
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
export interface SequenceUse {
  oid: string;
  schema: string;
  name: string;
  field: string;
  /** An integer or numeric column (or a domain over one): its maximum can be compared with the sequence. */
  integral: boolean;
  max_value: string;
  increment: string;
  /** The agent's role may read and set the sequence (SELECT and UPDATE on it). */
  allowed: boolean;
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
 * types (e.g. a text default `'A-' || nextval(…)`) are not looked at. `uses`:
 * the entity's sequences ({@link lookupSequenceUses}, held in the catalog cache).
 */
export async function moveSequences(
  session: Session,
  info: EntityInfo,
  uses: readonly SequenceUse[],
): Promise<SequenceMove[]> {
  if (uses.length === 0) return [];
  return session.transaction(() => moveSequencesNow(session, info, uses));
}

/**
 * The sequences each integral field of the table uses (see {@link SEQUENCES_SQL});
 * other fields (e.g. a text default `'A-' || nextval(…)`) are left out.
 */
export async function lookupSequenceUses(session: Session, info: EntityInfo): Promise<SequenceUse[]> {
  const rows = await session.query<SequenceUse>(SEQUENCES_SQL, [info.entity.schema, info.entity.name], {
    prepared: true,
  });
  return rows.filter((u) => u.integral);
}

/**
 * {@link moveSequences} inside the caller's transaction, from the sequence
 * uses already looked up, in two statements: one reads every field's maximum
 * and every sequence's state, the other sets the sequences that are behind.
 * Sees what the transaction sees (a write batch calls it once its
 * predecessor has committed).
 */
export async function moveSequencesNow(
  session: Session,
  info: EntityInfo,
  uses: readonly SequenceUse[],
): Promise<SequenceMove[]> {
  if (uses.length === 0) return [];
  const fields = [...new Set(uses.map((u) => u.field))];
  const { maxima, states } = await readMaximaAndSequences(session, info, fields, uses);
  const moves: SequenceMove[] = [];
  // A sequence two fields use is looked at once per field, from where the first left it (as in order).
  const position = new Map<string, SequenceState>();
  const setTo = new Map<string, bigint>();
  uses.forEach((use, i) => {
    const state = position.get(use.oid) ?? states[i]!;
    const decision = sequenceDecision(
      state,
      maxima.get(use.field) ?? null,
      BigInt(use.max_value),
      BigInt(use.increment),
    );
    if (decision.move) {
      position.set(use.oid, { lastValue: decision.to, isCalled: true });
      setTo.set(use.oid, decision.to);
    }
    moves.push({
      sequence: displayName({ schema: use.schema, name: use.name }),
      field: use.field,
      before: state.lastValue.toString(),
      after: (decision.move ? decision.to : state.lastValue).toString(),
      moved: decision.move,
    });
  });
  const params = [...setTo].flatMap(([oid, to]) => [oid, to.toString()]);
  const sets = [...setTo.keys()].map(
    (_, i) => `pg_catalog.setval($${2 * i + 1}::text::oid::regclass, $${2 * i + 2}::text::int8, true)`,
  );
  if (sets.length > 0) await session.query(`select ${sets.join(", ")}`, params);
  return moves;
}

/**
 * The maximum of each field over the table's own rows (rounded up; null for an
 * empty table) and each sequence's `last_value` and `is_called` (read from the
 * sequence relation, which needs SELECT on it), in one statement.
 */
async function readMaximaAndSequences(
  session: Session,
  info: EntityInfo,
  fields: readonly string[],
  uses: readonly SequenceUse[],
): Promise<{ maxima: Map<string, bigint | null>; states: SequenceState[] }> {
  const columns = fields.map((f) => `pg_catalog.ceil(max(${quoteIdentifier(f)})::numeric)::text`);
  const sequences = uses.map(
    (u) =>
      `(select pg_catalog.json_build_array(last_value::text, is_called) from ${qualifiedName({ schema: u.schema, name: u.name })})`,
  );
  const [row] = await session.query<{ maxima: (string | null)[]; sequences: [string, boolean][] }>(
    `select pg_catalog.json_build_array(${columns.join(", ")}) as maxima, ` +
      `pg_catalog.json_build_array(${sequences.join(", ")}) as sequences from ${ownRowsSql(info)}`,
  );
  if (!row)
    throw new DrayError("internal", `reading the maxima of ${displayName(info.entity)} returned no row`);
  const maxima = new Map<string, bigint | null>();
  fields.forEach((field, i) => {
    const value = row.maxima[i];
    maxima.set(field, value === null || value === undefined ? null : BigInt(value));
  });
  const states = uses.map((u, i): SequenceState => {
    const state = row.sequences[i];
    if (!state) throw new DrayError("internal", `sequence ${displayName(u)} returned no row`);
    return { lastValue: BigInt(state[0]), isCalled: state[1] === true };
  });
  return { maxima, states };
}
