/** Pure rules of environment health (docs/architecture.md §3, "Heartbeat and health"). */

export type Health = "healthy" | "unhealthy" | "unknown";

/** Heartbeat interval agents are told to use when none is configured (DRAY_HEARTBEAT_INTERVAL_MS). */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 10_000;

/** Heartbeats that may be missed before an environment turns unhealthy. */
export const MISSED_HEARTBEATS_ALLOWED = 3;

/** What an agent's heartbeat says about its database. */
export interface HeartbeatReport {
  databaseReachable: boolean;
  databaseError: string;
  draining: boolean;
}

/** Health an environment has right after a heartbeat. */
export function healthAfterHeartbeat(report: HeartbeatReport): { health: Health; reason: string | null } {
  if (report.draining) return { health: "unhealthy", reason: "the agent is shutting down (draining)" };
  if (!report.databaseReachable) {
    return {
      health: "unhealthy",
      reason: `the agent cannot reach its database: ${report.databaseError || "no reason given"}`,
    };
  }
  return { health: "healthy", reason: null };
}

/**
 * Age of the last heartbeat after which an environment is unhealthy:
 * three intervals plus a quarter interval of grace for network jitter.
 */
export function staleAfterMs(heartbeatIntervalMs: number): number {
  return MISSED_HEARTBEATS_ALLOWED * heartbeatIntervalMs + Math.round(heartbeatIntervalMs / 4);
}

/** How often the monitor sweeps for silent agents: a quarter interval, so detection stays under four intervals. */
export function sweepEveryMs(heartbeatIntervalMs: number): number {
  return Math.max(50, Math.round(heartbeatIntervalMs / 4));
}

/** Reason recorded when heartbeats stop. */
export function silenceReason(heartbeatIntervalMs: number): string {
  const seconds = (staleAfterMs(heartbeatIntervalMs) / 1000).toFixed(1);
  return `no heartbeat for ${seconds} s (${MISSED_HEARTBEATS_ALLOWED} missed): the agent is stopped or cannot reach the control plane`;
}
