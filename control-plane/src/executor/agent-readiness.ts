import { sleep, throwIfAborted } from "@dray/common";

/** What preflight sees of one environment of a run and its agent at one moment. */
export interface EnvironmentObservation {
  role: "source" | "target";
  id: string;
  name: string;
  health: "healthy" | "unhealthy" | "unknown";
  healthReason: string | null;
  /** What the last heartbeat said about the database (null before any). */
  databaseReachable: boolean | null;
  /** Age of the last heartbeat, by the store's clock; null when the agent never sent one. */
  heartbeatAgeMs: number | null;
  /** An agent of the environment has an open work stream here and is not draining. */
  connected: boolean;
  /** How long ago that work stream opened (only when connected). */
  connectedForMs?: number;
  /** The agent that left, when this control plane saw it leave. */
  agentId?: string;
}

/** Reason codes preflight fails with when an environment's agent is not ready. */
export type ReadinessReason = "environment_unhealthy" | "agent_unavailable";

/** What preflight does about one environment: go on, wait (at most `forMs` before looking again), or fail. */
export type Readiness =
  | { kind: "ready" }
  | { kind: "wait"; forMs: number }
  | { kind: "fail"; reasonCode: ReadinessReason; message: string };

function unhealthy(o: EnvironmentObservation, why: string): Readiness {
  return {
    kind: "fail",
    reasonCode: "environment_unhealthy",
    message: `${o.role} environment "${o.name}" is not healthy (${why}). Check that its agent is running, then run again.`,
  };
}

function storedWhy(o: EnvironmentObservation): string {
  return `it is unhealthy: ${o.healthReason ?? "no reason recorded"}`;
}

/**
 * Decides whether a run may use an environment's agent now (docs/architecture.md
 * §4, "Preflight"). An agent that is away (disconnected, draining, or reconnected but
 * not heard from yet) is waited for until its environment would turn
 * unhealthy: `awayLimitMs` after its last heartbeat, the health monitor's own
 * rule. Fails at once when the environment was never reported, when a live
 * agent reports it unhealthy (its database is unreachable), or when the agent
 * was already away past the limit at the first look (`environment_unhealthy`,
 * as the environment is); fails with `agent_unavailable` (the copier's reason
 * for the same condition) when the limit passes while the run `waited`.
 */
export function agentReadiness(o: EnvironmentObservation, awayLimitMs: number, waited: boolean): Readiness {
  if (o.connected) {
    if (o.health === "healthy") return { kind: "ready" };
    const connectedFor = o.connectedForMs ?? 0;
    // A heartbeat sent on this connection that still says unhealthy is the agent's own report.
    if (o.heartbeatAgeMs !== null && o.heartbeatAgeMs <= connectedFor) return unhealthy(o, storedWhy(o));
    // Just (re)connected: its first heartbeat is on its way.
    const left = awayLimitMs - connectedFor;
    if (left > 0) return { kind: "wait", forMs: left };
    return unhealthy(o, o.health === "unknown" ? "its agent has never reported" : storedWhy(o));
  }
  if (o.heartbeatAgeMs === null) return unhealthy(o, "its agent has never reported");
  if (o.health === "unhealthy" && o.databaseReachable === false) return unhealthy(o, storedWhy(o));
  const left = awayLimitMs - o.heartbeatAgeMs;
  if (left > 0) return { kind: "wait", forMs: left };
  if (!waited) {
    return unhealthy(
      o,
      o.health === "unhealthy"
        ? storedWhy(o)
        : `its agent has sent no heartbeat for ${Math.round(o.heartbeatAgeMs / 1000)} s`,
    );
  }
  const agent = o.agentId ? ` (agent ${o.agentId})` : "";
  return {
    kind: "fail",
    reasonCode: "agent_unavailable",
    message:
      `the agent of ${o.role} environment "${o.name}"${agent} has been away for ${Math.round(o.heartbeatAgeMs / 1000)} s, ` +
      "which marks its environment unhealthy: start it again (dray-agent with the same state directory) and re-run the pipeline",
  };
}

/** Options of {@link waitUntilReady}. */
export interface WaitUntilReadyOptions {
  /** Ends the wait with the signal's reason (cancel, shutdown). */
  signal: AbortSignal;
  /** True when the run already found the agent away (a task of it failed for that). */
  waited?: boolean;
  /** How often to look again while waiting. @default 200 */
  pollMs?: number;
  /** Called once, when the wait begins, with how long it may last at most. */
  onWait?: (observation: EnvironmentObservation, forMs: number) => Promise<void> | void;
}

/**
 * Looks at an environment (`observe`) until {@link agentReadiness} says it is
 * ready or fails. Resolves undefined when ready, or with the failure.
 */
export async function waitUntilReady(
  observe: () => Promise<EnvironmentObservation>,
  awayLimitMs: number,
  options: WaitUntilReadyOptions,
): Promise<Extract<Readiness, { kind: "fail" }> | undefined> {
  let waited = options.waited ?? false;
  let announced = false;
  for (;;) {
    throwIfAborted(options.signal);
    const observation = await observe();
    const readiness = agentReadiness(observation, awayLimitMs, waited);
    if (readiness.kind === "ready") return undefined;
    if (readiness.kind === "fail") return readiness;
    if (!announced) {
      announced = true;
      await options.onWait?.(observation, readiness.forMs);
    }
    waited = true;
    await sleep(Math.max(1, Math.min(options.pollMs ?? 200, readiness.forMs)), options.signal);
  }
}

/**
 * Runs `task`; when it fails because the agent is away (`isAway`), waits for
 * the agent (`waitForAgent`, which throws when it stays away) and runs the
 * task again, at most `maxWaits` times, so a flapping agent cannot loop
 * forever. Other errors, and errors after `signal` aborted, are thrown as they are.
 */
export async function retryWhileAway<T>(
  task: () => Promise<T>,
  options: {
    isAway: (error: unknown) => boolean;
    waitForAgent: () => Promise<void>;
    signal: AbortSignal;
    maxWaits: number;
  },
): Promise<T> {
  for (let waits = 0; ; waits++) {
    try {
      return await task();
    } catch (error) {
      if (!options.isAway(error) || waits >= options.maxWaits || options.signal.aborted) throw error;
      await options.waitForAgent();
    }
  }
}
