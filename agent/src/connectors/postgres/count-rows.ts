import { DrayError } from "@dray/common";
import type { Condition, EntityName } from "../../connector.js";
import { BoundParams, conditionsSql } from "./conditions.js";
import { lookupEntity, ownRowsSql, requireFields } from "./entity-catalog.js";
import { displayName } from "./identifiers.js";
import type { Session } from "./session.js";
import { textArrayLiteral } from "./stage-rows.js";

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

/**
 * Bytes on disk of each entity (its partitions' for a partitioned table), its
 * planner estimate (-1 when a table of it was never analysed) and the block
 * size, in the order given; `$1` schemas, `$2` names. An entity that is not a
 * table is missing from the answer. pg_relation_size reads the files' length:
 * current, unlike the statistics, even for a table never analysed. Like the
 * planner, the estimate scales the rows per page last analysed to the pages
 * the table has now.
 */
const SIZES_SQL = `
select e.ord::int4 as ord, c.relkind = 'p' as partitioned, s.bytes::int8 as bytes,
  round(s.estimate)::int8 as estimate, pg_catalog.current_setting('block_size')::int8 as block_size
from unnest($1::text[], $2::text[]) with ordinality as e(schema_name, table_name, ord)
join pg_catalog.pg_namespace n on n.nspname = e.schema_name
join pg_catalog.pg_class c on c.relnamespace = n.oid and c.relname = e.table_name and c.relkind in ('r', 'p')
cross join lateral (
  select coalesce(sum(p.bytes), 0) as bytes,
    case when bool_or(p.reltuples < 0) then -1
         else coalesce(sum(case when p.relpages > 0
                                then p.reltuples / p.relpages * (p.bytes / pg_catalog.current_setting('block_size')::int8)
                                else p.reltuples end), 0) end as estimate
  from (
    select r.reltuples, r.relpages, pg_catalog.pg_relation_size(r.oid) as bytes
    from pg_catalog.pg_class r
    where r.relkind = 'r'
      and (r.oid = c.oid or (c.relkind = 'p' and r.oid in (select t.relid from pg_catalog.pg_partition_tree(c.oid) t)))
  ) p
) s`;

/**
 * Tables up to this size are counted together in one statement: a scan of
 * one takes a few milliseconds, less than a statement of its own costs. A
 * larger one is counted on a connection of its own, beside the others.
 */
export const COUNT_TOGETHER_BYTES = 8 * 1024 * 1024;

/** Large tables one count task scans at once, each on a connection of its own. */
export const COUNT_SIDE_BY_SIDE = 3;

/**
 * The most heap tuples a page of `blockSize` bytes can hold: the page header
 * (24 bytes) aside, each tuple takes at least a 4-byte line pointer and a
 * 24-byte header (23, aligned), as PostgreSQL's MaxHeapTuplesPerPage (291 for 8 kB).
 */
export function maxTuplesPerPage(blockSize: number): number {
  return Math.floor((blockSize - 24) / 28);
}

/** How {@link countManyRows} reaches the database. */
export interface CountSessions {
  /** Runs `fn` on a session of its own (a connection of the pool). */
  run<T>(fn: (session: Session) => Promise<T>): Promise<T>;
}

/** One entity's answer of {@link countManyRows}. */
export interface ManyCount {
  /** Its rows: exact, or the planner's estimate when `estimated`. */
  count: number;
  estimated: boolean;
  /** With `estimated`: the most rows its pages can hold; 0 otherwise. */
  upperBound: number;
}

/**
 * The number of own rows of each entity (see {@link ownRowsSql}), in the order
 * given. The small tables are counted in one statement, each large one in a
 * statement on a session of its own, {@link COUNT_SIDE_BY_SIDE} at once: a preflight that counts a
 * dozen small tables makes one round trip, and one that counts large tables
 * scans them side by side. With `estimateOverBytes` above 0, a table larger
 * than that whose planner estimate is known is not scanned: its count is the
 * estimate, with the most rows its pages can hold. `togetherBytes` (default
 * {@link COUNT_TOGETHER_BYTES}) is the size up to which tables share a statement.
 *
 * @throws DrayError `not_found` naming the first entity that is not a table.
 */
export async function countManyRows(
  sessions: CountSessions,
  entities: readonly EntityName[],
  options: { estimateOverBytes?: number; togetherBytes?: number } = {},
): Promise<ManyCount[]> {
  const togetherBytes = options.togetherBytes ?? COUNT_TOGETHER_BYTES;
  const sizes = await sessions.run((session) =>
    session.query<{ ord: number; partitioned: boolean; bytes: string; estimate: string; block_size: string }>(
      SIZES_SQL,
      [textArrayLiteral(entities.map((e) => e.schema)), textArrayLiteral(entities.map((e) => e.name))],
      { prepared: true },
    ),
  );
  const byOrd = new Map(sizes.map((s) => [s.ord, s]));
  const estimateOver = options.estimateOverBytes ?? 0;
  const infos = entities.map((entity, i) => {
    const size = byOrd.get(i + 1);
    if (!size) throw new DrayError("not_found", `entity ${displayName(entity)} was not found`);
    const bytes = Number(size.bytes);
    const estimate = Number(size.estimate);
    const blockSize = Number(size.block_size);
    // Estimated instead of scanned: large, with statistics, and estimates asked for.
    const estimated: ManyCount | undefined =
      estimateOver > 0 && bytes > estimateOver && estimate >= 0
        ? {
            count: Math.round(estimate),
            estimated: true,
            upperBound: Math.ceil(bytes / blockSize) * maxTuplesPerPage(blockSize),
          }
        : undefined;
    return { entity, partitioned: size.partitioned, bytes, estimated };
  });
  const toCount = infos.filter((e) => !e.estimated);
  const together = toCount.filter((e) => e.bytes <= togetherBytes);
  const counts = new Map<EntityName, number>();
  const countTogether = async () => {
    if (together.length === 0) return;
    const columns = together.map((e, i) => `(select count(*) from ${ownRowsSql(e)})::int8 as c${i}`);
    const [row] = await sessions.run((session) =>
      session.query<Record<string, string>>(`select ${columns.join(", ")}`),
    );
    for (const [i, e] of together.entries()) counts.set(e.entity, Number(row?.[`c${i}`] ?? 0));
  };
  // The large tables, at most COUNT_SIDE_BY_SIDE at once: the task leaves connections to the others.
  const large = toCount.filter((e) => e.bytes > togetherBytes);
  const countLarge = async () => {
    let next = large.shift();
    while (next) {
      const table = next;
      counts.set(table.entity, await sessions.run((session) => countAllRows(session, table.entity, table)));
      next = large.shift();
    }
  };
  await Promise.all([
    countTogether(),
    ...Array.from({ length: Math.min(COUNT_SIDE_BY_SIDE, large.length) }, countLarge),
  ]);
  return infos.map((e) => e.estimated ?? { count: counts.get(e.entity)!, estimated: false, upperBound: 0 });
}
