/**
 * The statements of the direct COPY fast path: a batch of `insert` or `merge`
 * that cannot meet a row already present is COPied straight into the target
 * instead of through the staging table. Pure SQL building from catalog names
 * and types; running it is `direct-copy.ts`.
 */
import type { WriteStrategy } from "../../connector.js";
import { settingValue } from "./copy-read.js";
import { parseCopyLine } from "./copy-text.js";
import type { EntityInfo } from "./entity-catalog.js";
import { qualifiedName, quoteIdentifier } from "./identifiers.js";
import { textArrayLiteral } from "./stage-rows.js";
import type { WritePlan } from "./write-plan.js";

/** The statements of one direct COPY, built by {@link planDirectCopy}. */
export interface DirectCopyPlan {
  /** `copy <target> (<fields>) from stdin`. */
  copySql: string;
  /**
   * One row `{ taken, blocked }`: `taken` when a row of the target lies in the
   * key range of parameters 1.. (lower bound, then upper bound, one parameter
   * per key field); `blocked` when the target has something a COPY would not
   * treat as the staged statement does (see {@link planDirectCopy}). It takes
   * no bind parameter: it reads {@link probeParams} from the transaction's
   * settings (copy-read.ts), so it needs no round trip of its own to be
   * described and can be sent together with the statement that sets them.
   */
  probeSql: string;
  /** Bound after the key bounds: the target's qualified name, and for merge the key field names. */
  catalogParams: string[];
}

/** `pg_trigger.tgtype` bits: ROW | BEFORE | INSERT, and UPDATE. */
const BEFORE_ROW_INSERT = 7;
const UPDATE_EVENT = 16;

/**
 * Plans the direct COPY of a write, or returns null when the strategy always
 * takes the staged path (`update`), or when no unique index starts with the
 * first key column: without one, the range probe could scan the whole table.
 *
 * The probe's `blocked` is true, so the staged path runs, when the target
 * - has rules (COPY ignores them), row-level security (COPY FROM refuses it)
 *   or a foreign table among its partitions (its wrapper may take a COPY
 *   differently from an INSERT);
 * - or one of its partitions has an enabled user trigger that is BEFORE ROW
 *   INSERT (it may skip rows, which the staged INSERT … RETURNING does not
 *   count) or, for merge, fires on UPDATE (ON CONFLICT DO UPDATE fires UPDATE
 *   statement triggers, COPY does not);
 * - or, for merge, the ON CONFLICT of the staged statement would fail however
 *   the rows look: no valid unique index on exactly the key columns, a
 *   deferrable one among them, or no table-level SELECT and UPDATE privilege.
 */
export function planDirectCopy(
  info: EntityInfo,
  plan: WritePlan,
  strategy: WriteStrategy,
  triggersOff = false,
): DirectCopyPlan | null {
  if ((strategy !== "insert" && strategy !== "merge") || plan.key.length === 0) return null;
  if (!info.uniqueKeys.some((columns) => columns[0] === plan.key[0]!.name)) return null;
  const merge = strategy === "merge";
  const target = qualifiedName(info.entity);
  const width = plan.key.length;
  const keyColumns = `(${plan.key.map((k) => quoteIdentifier(k.name)).join(", ")})`;
  const bound = (from: number) =>
    `(${plan.key.map((k, i) => `${settingValue(from + i)}::${k.castType}`).join(", ")})`;
  const relation = `${settingValue(2 * width + 1)}::text::regclass`;
  const triggerEvents = merge
    ? `(g.tgtype & ${BEFORE_ROW_INSERT}) = ${BEFORE_ROW_INSERT} or (g.tgtype & ${UPDATE_EVENT}) <> 0`
    : `(g.tgtype & ${BEFORE_ROW_INSERT}) = ${BEFORE_ROW_INSERT}`;
  // With triggers off (session_replication_role = replica), only triggers and rules enabled
  // ALWAYS still act, on the staged statement as on COPY alike for triggers; rules never touch COPY.
  const enabled = triggersOff ? "= 'A'" : "<> 'D'";
  const blockers = [
    "c.relrowsecurity",
    `exists (select 1 from pg_catalog.pg_rewrite r where r.ev_class = c.oid and r.ev_enabled ${enabled})`,
    "exists (select 1 from (select c.oid as relid union all select p.relid from pg_catalog.pg_partition_tree(c.oid) p) m" +
      " join pg_catalog.pg_class mc on mc.oid = m.relid" +
      " where mc.relkind = 'f' or exists (select 1 from pg_catalog.pg_trigger g" +
      ` where g.tgrelid = m.relid and not g.tgisinternal and g.tgenabled ${enabled} and (${triggerEvents})))`,
  ];
  if (merge) {
    const indexColumns =
      "array(select distinct k.attnum from unnest(i.indkey::int2[]) with ordinality k(attnum, ord)" +
      " where k.ord <= i.indnkeyatts order by 1)";
    const keyAttnums =
      "array(select a.attnum from pg_catalog.pg_attribute a" +
      ` where a.attrelid = c.oid and a.attname = any(${settingValue(2 * width + 2)}::text[]) order by 1)`;
    blockers.push(
      "not pg_catalog.has_table_privilege(c.oid, 'SELECT')",
      "not pg_catalog.has_table_privilege(c.oid, 'UPDATE')",
      "not coalesce((select bool_and(i.indimmediate) from pg_catalog.pg_index i" +
        " where i.indrelid = c.oid and i.indisunique and i.indisvalid and i.indexprs is null and i.indpred is null" +
        ` and ${indexColumns} = ${keyAttnums}), false)`,
    );
  }
  const fields = plan.fields.map((f) => quoteIdentifier(f.name)).join(", ");
  return {
    copySql: `copy ${target} (${fields}) from stdin`,
    probeSql:
      `select exists (select 1 from ${target} where ${keyColumns} >= ${bound(1)} and ${keyColumns} <= ${bound(width + 1)}) as taken,` +
      ` (${blockers.join(" or ")}) as blocked` +
      ` from pg_catalog.pg_class c where c.oid = ${relation}`,
    catalogParams: merge ? [target, textArrayLiteral(plan.key.map((k) => k.name))] : [target],
  };
}

/**
 * The probe's parameters for a prepared batch (`\n`-terminated, well-formed
 * lines in ascending key order): the key values of its first line, then of
 * its last, then `catalogParams`. Null when the batch is empty or a bound has
 * a NULL key value.
 */
export function probeParams(plan: WritePlan, direct: DirectCopyPlan, data: Uint8Array): string[] | null {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const firstEnd = bytes.indexOf(0x0a);
  if (bytes.length === 0 || firstEnd === -1) return null;
  const lastStart = bytes.length >= 2 ? bytes.lastIndexOf(0x0a, bytes.length - 2) + 1 : 0;
  const keyOf = (line: Uint8Array) => {
    const values = parseCopyLine(line);
    return plan.keyPositions.map((at) => values[at] ?? null);
  };
  const bounds = [
    ...keyOf(bytes.subarray(0, firstEnd)),
    ...keyOf(bytes.subarray(lastStart, bytes.length - 1)),
  ];
  if (bounds.some((value) => value === null)) return null;
  return [...(bounds as string[]), ...direct.catalogParams];
}
