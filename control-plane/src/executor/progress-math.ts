/** Pure helpers of live progress: ETA and the event throttle. */
export type { RecordCounters as EntityCounters } from "../executions/execution-math.js";

/** Seconds left at the current rate; null when unknown (no rate yet or no total). */
export function etaSeconds(processed: number, total: number, recordsPerSecond: number): number | null {
  if (recordsPerSecond <= 0 || total <= 0) return null;
  return Math.max(0, Math.ceil((total - processed) / recordsPerSecond));
}

/**
 * Lets a call through at most once per `intervalMs` (progress events are
 * throttled to about four a second per execution).
 */
export function createThrottle(intervalMs: number, now: () => number = Date.now) {
  let last = Number.NEGATIVE_INFINITY;
  return {
    /** True when enough time passed since the last accepted call; records this one. */
    ready(): boolean {
      const t = now();
      if (t - last < intervalMs) return false;
      last = t;
      return true;
    },
  };
}
