/**
 * Row estimates for tables whose planner statistics are empty (never analysed:
 * `reltuples` is -1, or 0 while the table has pages). Small tables are counted
 * exactly; large ones are estimated from a page sample (`TABLESAMPLE SYSTEM`).
 */
import type { EntityName } from "../../connector.js";
import { countAllRows } from "./count-rows.js";
import { ownRowsSql } from "./entity-catalog.js";
import type { Session } from "./session.js";

/** Where an entity's row estimate comes from. */
export type EstimateSource = "statistics" | "exact" | "sampled";

/** Tables of at most this many pages (8 KiB each by default: 32 MiB) are counted exactly. */
export const EXACT_COUNT_MAX_PAGES = 4096;

/** About how many pages a sampled estimate reads. */
export const SAMPLE_PAGES = 1024;

/** Pages one describe counts exactly in all (512 MiB); past it, tables are sampled. */
export const EXACT_COUNT_BUDGET_PAGES = 65_536;

/** What the catalog says about one table. */
export interface TableStatistics {
  /** `pg_class.reltuples`: -1 when never analysed. */
  reltuples: number;
  /** Pages on disk now (all partitions for a partitioned table). */
  pages: number;
}

/** How to get a table's estimate. */
export type EstimatePlan =
  | { source: "statistics"; rows: number }
  | { source: "exact" }
  | { source: "sampled"; percent: number };

/**
 * Decides how to estimate a table's rows. Statistics are used when they exist
 * (`reltuples` ≥ 0, and not a stale 0 for a table that has pages); else a
 * small table is counted exactly while `exactPagesLeft` allows it, and any
 * other is sampled.
 *
 * @example
 * estimatePlan({ reltuples: -1, pages: 10 }) // { source: "exact" }
 * estimatePlan({ reltuples: 5000.4, pages: 60 }) // { source: "statistics", rows: 5000 }
 */
export function estimatePlan(
  stats: TableStatistics,
  exactPagesLeft = EXACT_COUNT_BUDGET_PAGES,
): EstimatePlan {
  const known = stats.reltuples > 0 || (stats.reltuples === 0 && stats.pages === 0);
  if (known) return { source: "statistics", rows: Math.round(stats.reltuples) };
  if (stats.pages <= Math.min(EXACT_COUNT_MAX_PAGES, exactPagesLeft)) return { source: "exact" };
  return { source: "sampled", percent: Math.min(100, (SAMPLE_PAGES / stats.pages) * 100) };
}

/**
 * Counts the rows in a `TABLESAMPLE SYSTEM (percent)` sample of the table and
 * scales the count up to the whole table.
 */
async function sampledCount(
  session: Session,
  entity: EntityName,
  percent: number,
  partitioned: boolean,
): Promise<number> {
  const rows = await session.query<{ n: string }>(
    `select count(*)::int8 as n from ${ownRowsSql({ entity, partitioned })} tablesample system (${percent.toFixed(6)}) repeatable (0)`,
  );
  return Math.round((Number(rows[0]?.n ?? 0) * 100) / percent);
}

/**
 * The row estimate of a table and where it comes from: the statistics when
 * they exist, else an exact count (small table, within `exactPagesLeft`) or a
 * sampled one (large table).
 */
export async function estimateRows(
  session: Session,
  entity: EntityName,
  stats: TableStatistics,
  exactPagesLeft = EXACT_COUNT_BUDGET_PAGES,
  kind: { partitioned?: boolean } = {},
): Promise<{ rows: number; source: EstimateSource }> {
  const plan = estimatePlan(stats, exactPagesLeft);
  if (plan.source === "statistics") return { rows: plan.rows, source: "statistics" };
  if (plan.source === "exact") return { rows: await countAllRows(session, entity, kind), source: "exact" };
  const partitioned = kind.partitioned === true;
  return { rows: await sampledCount(session, entity, plan.percent, partitioned), source: "sampled" };
}
