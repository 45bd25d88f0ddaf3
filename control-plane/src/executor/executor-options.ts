import { DrayError } from "@dray/common";
import { DEFAULT_HEARTBEAT_INTERVAL_MS, staleAfterMs } from "../health/health-rules.js";
import { FIRST_RETRY_DELAY_MS, MAX_RETRY_DELAY_MS } from "./retry-policy.js";

/**
 * Every timeout, interval and limit of the executor, in one place with its
 * default. {@link compileExecutorOptions} fills in the defaults and checks the
 * values once, when the executor is created; runs read the result from
 * `RunContext.options`.
 */
export interface ExecutorTunables {
  /** Lease of a running execution; renewed every third of it. A dead replica's runs resume after it. @default 15 000 ms */
  leaseMs: number;
  /** How often to look for queued work when not nudged. @default 1 000 ms */
  pollMs: number;
  /** Executions run at once by this replica. @default 4 */
  maxConcurrent: number;
  /**
   * How often a running execution looks for a cancel request in the store. The
   * `execution.cancel_requested` event stops it at once; this is the safety net
   * for an event that never arrives (NATS away). @default 1 000 ms
   */
  cancelCheckMs: number;
  /** Deadline of one read, write or finish task. @default 120 000 ms */
  taskTimeoutMs: number;
  /** Deadline of counting one source entity at preflight. @default 120 000 ms */
  countTimeoutMs: number;
  /**
   * A source table larger than this is not counted at preflight when its
   * planner statistics know its rows and the most rows its pages can hold fit
   * the monthly limit: its total is the estimate until it is loaded. 0: count
   * every table exactly. @default 16 MiB
   */
  countEstimateOverBytes: number;
  /** Deadline of emptying one target entity (`clean` mode). @default 600 000 ms */
  cleanTimeoutMs: number;
  /** How long a cancelled write's fence waits for the agent's answer. @default 5 000 ms */
  fenceTimeoutMs: number;
  /** How long a resumed run waits for its agents to reconnect before its first task. @default 30 000 ms */
  agentReconnectWaitMs: number;
  /**
   * How long a task waits for an agent that is away before the run fails with
   * `agent_unavailable`: the time after which its environment turns unhealthy.
   * @default staleAfterMs(10 000 ms heartbeat)
   */
  agentAwayLimitMs: number;
  /** Waits for an away agent in one task that do not count as attempts, so a flapping agent cannot loop forever. @default 20 */
  maxAgentWaits: number;
  /** Delay before a failed task's first retry; each next one doubles, plus up to 25 % jitter. @default 2 000 ms */
  firstRetryDelayMs: number;
  /** Longest delay between two retries. @default 30 000 ms */
  maxRetryDelayMs: number;
  /** Write batches of one entity in flight at once (settled in order). @default 2 */
  writesInFlight: number;
  /** Least time between two progress events of a run. @default 250 ms */
  progressEveryMs: number;
}

/** What callers may set: any tunable, and the agents' heartbeat interval the away limit follows. */
export type ExecutorTuning = Partial<ExecutorTunables> & {
  /** Heartbeat interval of the agents; sets `agentAwayLimitMs` when that is not given. @default 10 000 ms */
  heartbeatIntervalMs?: number;
};

/** The defaults, with agents on the default heartbeat. */
export const DEFAULT_EXECUTOR_TUNABLES: Readonly<ExecutorTunables> = Object.freeze({
  leaseMs: 15_000,
  pollMs: 1_000,
  maxConcurrent: 4,
  cancelCheckMs: 1_000,
  taskTimeoutMs: 120_000,
  countTimeoutMs: 120_000,
  countEstimateOverBytes: 16 * 1024 * 1024,
  cleanTimeoutMs: 600_000,
  fenceTimeoutMs: 5_000,
  agentReconnectWaitMs: 30_000,
  agentAwayLimitMs: staleAfterMs(DEFAULT_HEARTBEAT_INTERVAL_MS),
  maxAgentWaits: 20,
  firstRetryDelayMs: FIRST_RETRY_DELAY_MS,
  maxRetryDelayMs: MAX_RETRY_DELAY_MS,
  writesInFlight: 2,
  progressEveryMs: 250,
});

/**
 * The executor's tunables with defaults filled in, checked and frozen.
 *
 * @throws DrayError `invalid_argument` naming a value that is not a positive integer.
 * @example compileExecutorOptions({ leaseMs: 3_000, heartbeatIntervalMs: 2_000 })
 */
export function compileExecutorOptions(tuning: ExecutorTuning = {}): Readonly<ExecutorTunables> {
  const { heartbeatIntervalMs, ...given } = tuning;
  const defined = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
  const out: ExecutorTunables = {
    ...DEFAULT_EXECUTOR_TUNABLES,
    ...(heartbeatIntervalMs !== undefined ? { agentAwayLimitMs: staleAfterMs(heartbeatIntervalMs) } : {}),
    ...defined,
  };
  for (const [name, value] of Object.entries(out)) {
    if (!Number.isSafeInteger(value) || value <= 0)
      throw new DrayError(
        "invalid_argument",
        `executor option ${name} must be a positive integer, not ${value}`,
      );
  }
  return Object.freeze(out);
}
