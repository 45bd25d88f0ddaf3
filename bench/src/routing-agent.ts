/**
 * A simulated Dray agent for the routing bench: it speaks the real
 * `dray.agent.v1` protocol through the agent's own gateway client (one channel,
 * one HTTP/2 connection per agent, like a real agent) but has no database. It
 * enrolls, heartbeats at the interval the control plane asks for, holds one work
 * stream, and answers `count` and `test_connection` tasks at once. Many of them
 * run in one process; each reports when a task reached it, on this process's clock.
 */
import { connectGateway, type GatewayConnection } from "../../agent/src/gateway-client.js";
import { Platform } from "../../proto/src/index.js";

/** What a simulated agent saw of one task. */
export interface ReceivedTask {
  /** The environment of the agent that received it. */
  environmentId: string;
  /** `count`'s entity name (the bench puts its command id there), or "" for other kinds. */
  tag: string;
  kind: string;
  /** `performance.now()` when the task came off the work stream. */
  at: number;
}

/** One simulated agent. Create with {@link startSimulatedAgent}. */
export interface SimulatedAgent {
  readonly name: string;
  readonly environmentId: string;
  /** The gateway it dialled, `host:port`. */
  readonly gateway: string;
  /** Tasks that came off its work stream so far. */
  tasksReceived(): number;
  /** Stops heartbeats and the stream and closes the channel. */
  close(): void;
  /** The last error of the stream or a heartbeat, if any. */
  lastError(): string | undefined;
}

/** Options of {@link startSimulatedAgent}. */
export interface SimulatedAgentOptions {
  name: string;
  environmentId: string;
  enrollmentToken: string;
  /** The replica's gateway, `host:port`. */
  gateway: string;
  /** `max_concurrent_tasks` sent when the stream opens. */
  maxConcurrentTasks: number;
  /** Called for each task as it comes off the stream, before it is answered. */
  onTask: (task: ReceivedTask) => void;
}

const AGENT_VERSION = "0.0.0-bench";

/**
 * Enrolls with the enrollment token, sends a first heartbeat, and opens the work
 * stream; resolves once the enrollment and first heartbeat succeeded (the
 * stream is then opening: the control plane has it when its API says the agent
 * is connected).
 */
export async function startSimulatedAgent(options: SimulatedAgentOptions): Promise<SimulatedAgent> {
  const gateway: GatewayConnection = await connectGateway({
    controlPlanes: [{ address: options.gateway, tls: false }],
    tls: {},
  });
  const stop = new AbortController();
  const info = { name: options.name, version: AGENT_VERSION, platform: Platform.POSTGRES, hostname: "bench" };
  let received = 0;
  let lastError: string | undefined;

  const enrolled = await gateway.client.enroll(
    { enrollmentToken: options.enrollmentToken, agent: info },
    // Generous: on a busy machine a thousand enrolments queue up; a token is single use, so no retry.
    { signal: AbortSignal.timeout(120_000) },
  );
  gateway.setCredential(enrolled.credential);
  let intervalMs = enrolled.heartbeatIntervalMs || 10_000;

  const beat = async (timeoutMs = Math.max(2_000, intervalMs)) => {
    const response = await gateway.client.heartbeat(
      {
        agent: info,
        databaseReachable: true,
        databaseLatencyMs: 1,
        databaseError: "",
        schemaFingerprint: "",
        tasksInFlight: 0,
        draining: false,
      },
      { signal: AbortSignal.any([stop.signal, AbortSignal.timeout(timeoutMs)]) },
    );
    if (response.heartbeatIntervalMs) intervalMs = response.heartbeatIntervalMs;
  };
  await beat(120_000);
  const heartbeats = async () => {
    while (!stop.signal.aborted) {
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
      if (stop.signal.aborted) return;
      await beat().catch((error) => {
        if (!stop.signal.aborted) lastError = `heartbeat: ${String(error)}`;
      });
    }
  };

  const answer = (taskId: string, kind: string) => {
    const outcome =
      kind === "count"
        ? { case: "result" as const, value: { kind: { case: "count" as const, value: { count: 0n } } } }
        : kind === "testConnection"
          ? {
              case: "result" as const,
              value: {
                kind: {
                  case: "testConnection" as const,
                  value: { databaseLatencyMs: 1, serverVersion: "bench", databaseName: "bench" },
                },
              },
            }
          : {
              case: "error" as const,
              value: {
                code: 12,
                message: `the simulated agent does not run ${kind} tasks`,
                retryable: false,
              },
            };
    gateway.client
      .completeTask({ taskId, outcome, durationMs: 0 }, { signal: AbortSignal.timeout(30_000) })
      .catch((error) => {
        if (!stop.signal.aborted) lastError = `completeTask: ${String(error)}`;
      });
  };

  const workStream = async () => {
    try {
      const stream = gateway.client.openWorkStream(
        { agent: info, maxConcurrentTasks: options.maxConcurrentTasks },
        { signal: stop.signal },
      );
      for await (const message of stream) {
        if (message.kind.case !== "task") continue;
        const task = message.kind.value;
        const kind = task.kind.case ?? "";
        received++;
        options.onTask({
          environmentId: options.environmentId,
          tag: task.kind.case === "count" ? (task.kind.value.entity?.name ?? "") : "",
          kind,
          at: performance.now(),
        });
        answer(task.taskId, kind);
      }
      if (!stop.signal.aborted) lastError = "the control plane ended the work stream";
    } catch (error) {
      if (!stop.signal.aborted) lastError = `work stream: ${String(error)}`;
    }
  };

  void heartbeats();
  void workStream();
  return {
    name: options.name,
    environmentId: options.environmentId,
    gateway: options.gateway,
    tasksReceived: () => received,
    lastError: () => lastError,
    close() {
      stop.abort();
      gateway.close();
    },
  };
}
