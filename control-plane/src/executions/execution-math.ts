/**
 * The numbers of the execution view (seed 01's Execution Monitor): duration,
 * throughput, totals and per-entity percentages. Pure.
 */

/** Record counters of an entity, or of a whole execution. */
export interface RecordCounters {
  total: number;
  processed: number;
  created: number;
  updated: number;
  skipped: number;
  failed: number;
}

/**
 * Milliseconds an execution ran: finished − started, or now − started while
 * it runs; null when it never started.
 *
 * @example
 * durationMsOf(new Date(0), new Date(2_500), new Date(9_000)) // 2500
 */
export function durationMsOf(startedAt: Date | null, finishedAt: Date | null, now: Date): number | null {
  if (!startedAt) return null;
  return Math.max(0, (finishedAt ?? now).getTime() - startedAt.getTime());
}

/**
 * Records per second over `durationMs`, rounded to 2 decimals; 0 without a duration.
 *
 * @example
 * throughputOf(1_000, 4_000) // 250
 */
export function throughputOf(records: number, durationMs: number | null): number {
  if (!durationMs || durationMs <= 0) return 0;
  return Math.round((records / (durationMs / 1000)) * 100) / 100;
}

/**
 * How far an entity is, 0–100 with one decimal: processed / total. An entity
 * with nothing to do counts as 100 once completed, else 0.
 *
 * @example
 * percentOf(1, 3, "in_progress") // 33.3
 */
export function percentOf(processed: number, total: number, status: string): number {
  if (total <= 0) return status === "completed" ? 100 : 0;
  return Math.min(100, Math.round((processed / total) * 1000) / 10);
}

/** The sums of the counters of several entities. */
export function sumCounters(rows: readonly RecordCounters[]): RecordCounters {
  const sum: RecordCounters = { total: 0, processed: 0, created: 0, updated: 0, skipped: 0, failed: 0 };
  for (const row of rows) {
    sum.total += row.total;
    sum.processed += row.processed;
    sum.created += row.created;
    sum.updated += row.updated;
    sum.skipped += row.skipped;
    sum.failed += row.failed;
  }
  return sum;
}
