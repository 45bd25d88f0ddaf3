/**
 * Formatting of the seed-compatible status API (seed 02): timestamps without
 * milliseconds, human durations and job statuses. Pure.
 */
import type { ExecutionStatus, StageState } from "./execution-vocabulary.js";

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

/** A job summary's `status`: a stage state, or `cancelled` for a cancelled job. */
export type JobStatus = StageState | "cancelled";

/**
 * The `status` of a job summary (seed 02, by pipeline name): the state of the
 * job's last stage entry while it is queued, running or completed, but
 * `error` for a failed job and `cancelled` for a cancelled one, so that
 * neither reads like a success (`end`).
 *
 * @example
 * jobStatusOf("completed", "end") // "end"
 * jobStatusOf("failed", "end") // "error"
 * jobStatusOf("cancelled", "end") // "cancelled"
 */
export function jobStatusOf(execution: ExecutionStatus, lastState: StageState | null): JobStatus | null {
  if (execution === "failed") return "error";
  if (execution === "cancelled") return "cancelled";
  return lastState;
}
