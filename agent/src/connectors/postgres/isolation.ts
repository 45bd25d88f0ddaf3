/**
 * Rejected-record isolation: when a batch fails on data, split it until the
 * failing rows stand alone. Pure control flow; the caller supplies how a range
 * of staged rows is written (atomically, e.g. under a SAVEPOINT) and how a bad
 * row is described.
 */

/** Rows a write created and updated. */
export interface RangeCounts {
  created: number;
  updated: number;
}

/** The operations {@link bisectWrite} drives. */
export interface BisectSteps<R> {
  /** Writes staged rows `first..last` (ordinals, inclusive) all or nothing; throws the database error otherwise. */
  write(first: number, last: number): Promise<RangeCounts>;
  /** Describes the single row at `ordinal`, which failed with `error`. */
  reject(ordinal: number, error: unknown): Promise<R>;
  /** True when `error` was caused by row data, so splitting can isolate it; other errors end the batch. */
  isDataError(error: unknown): boolean;
}

/** Outcome of {@link bisectWrite}. */
export interface BisectResult<R> extends RangeCounts {
  rejected: R[];
}

/**
 * Writes ordinals `first..last`, left to right. A range failing on data is
 * split in halves (the left half first, so earlier rows win over later
 * duplicates) until single rows remain; those are rejected. With k bad rows
 * out of n this takes about 2·k·log2(n) attempts; with none, one.
 */
export async function bisectWrite<R>(
  first: number,
  last: number,
  steps: BisectSteps<R>,
): Promise<BisectResult<R>> {
  const result: BisectResult<R> = { created: 0, updated: 0, rejected: [] };
  const pending: [number, number][] = first <= last ? [[first, last]] : [];
  while (pending.length > 0) {
    const [lo, hi] = pending.pop()!;
    try {
      const counts = await steps.write(lo, hi);
      result.created += counts.created;
      result.updated += counts.updated;
    } catch (error) {
      if (!steps.isDataError(error)) throw error;
      if (lo === hi) {
        result.rejected.push(await steps.reject(lo, error));
      } else {
        const mid = Math.floor((lo + hi) / 2);
        pending.push([mid + 1, hi], [lo, mid]);
      }
    }
  }
  return result;
}
