/**
 * Formatting of the seed-compatible status API (seed 02): timestamps without
 * milliseconds and human durations. Pure.
 */

/**
 * An ISO-8601 UTC timestamp without milliseconds, as the seed shows them.
 *
 * @example
 * isoSeconds(new Date("2026-03-15T10:00:00.123Z")) // "2026-03-15T10:00:00Z"
 */
export function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** {@link isoSeconds}, or null for a missing date. */
export function isoSecondsOrNull(date: Date | null | undefined): string | null {
  return date ? isoSeconds(date) : null;
}

/**
 * A duration as the seed's `totalTime`: whole seconds (rounded down), with the
 * larger units once they are non-zero.
 *
 * @example
 * formatTotalTime(3_400) // "3s"
 * formatTotalTime(125_000) // "2m 5s"
 * formatTotalTime(3_723_000) // "1h 2m 3s"
 */
export function formatTotalTime(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  if (hours > 0) return `${hours}h ${minutes}m ${seconds}s`;
  if (minutes > 0) return `${minutes}m ${seconds}s`;
  return `${seconds}s`;
}
