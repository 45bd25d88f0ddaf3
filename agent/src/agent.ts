import { hostname } from "node:os";
import { backoffDelay, DRAY_VERSION, DrayError, type Logger, settleWithin, sleep } from "@dray/common";
import { ErrorCode, Platform, type Task, TaskErrorReason, taskErrorReasonToWire } from "@dray/proto";
import { ClientError, Status } from "nice-grpc";
import type { AgentConfig } from "./config.js";
import type { Connector } from "./connector.js";
import type { CredentialStore, StoredCredential } from "./credential-store.js";
import { fixedGatewayFailover, type GatewayConnection } from "./gateway-client.js";
import { SessionEpochFence, STALE_SESSION_EPOCH } from "./session-epoch.js";
import { runTask } from "./task-runner.js";

/** Lifecycle states of an agent, logged on every change. */
export type AgentState = "starting" | "enrolling" | "running" | "draining" | "stopped" | "failed";

/** Dependencies of {@link createAgent}. */
export interface AgentDeps {
  config: Pick<AgentConfig, "enrollmentToken" | "name" | "maxTasks" | "drainTimeoutMs" | "controlPlane">;
  connector: Connector;
  gateway: GatewayConnection;
  credentials: CredentialStore;
  logger: Logger;
}

/** A running agent. */
export interface Agent {
  readonly state: AgentState;
  /** Enrolls if needed, then heartbeats and serves the work stream until stopped. */
  start(): Promise<void>;
  /**
   * Graceful drain: tells the control plane, takes no new tasks, waits up to the
   * drain timeout for tasks in flight, cancels the rest, then closes. Idempotent.
   */
  stop(reason?: string): Promise<void>;
  /** Settles when the agent stops; rejects when it failed for good (e.g. credential revoked). */
  readonly done: Promise<void>;
}

const SCHEMA_FINGERPRINT_EVERY_MS = 60_000;
/** How often an unreachable database is probed between heartbeats. */
const RECOVERY_PROBE_EVERY_MS = 1_000;

/** A signal that aborts after `ms`, or earlier with a parent. Every call to the gateway has one. */
function within(ms: number, ...parents: AbortSignal[]): AbortSignal {
  const timeout = AbortSignal.timeout(ms);
  return parents.length ? AbortSignal.any([timeout, ...parents]) : timeout;
}

/**
 * True when a call failed because its gateway cannot be reached: dead, refused, not answering
 * in time (the call's signal aborted), or given up meanwhile.
 */
function isUnreachable(error: unknown): boolean {
  if (error instanceof ClientError)
    return error.code === Status.UNAVAILABLE || error.code === Status.DEADLINE_EXCEEDED;
  return error instanceof Error && error.name === "AbortError";
}

/** Creates an agent. Only main.ts wires it to signals. */
export function createAgent(deps: AgentDeps): Agent {
  const { config, connector, gateway, credentials, logger } = deps;
  const failover = gateway.failover ?? fixedGatewayFailover();
  const stopController = new AbortController();
  /** Tasks in flight, with the gateway connection (generation) and the session epoch that sent them. */
  const inFlight = new Map<
    string,
    { controller: AbortController; promise: Promise<void>; generation: number; epoch: bigint }
  >();
  /** The newest session epoch given: commands of older sessions are refused (session-epoch.ts). */
  const fence = new SessionEpochFence();
  /** Stale epochs already warned about: one warning each, not one per command. */
  const warnedEpochs = new Set<bigint>();
  let running = 0;
  let state: AgentState = "starting";
  let heartbeatIntervalMs = 10_000;
  let fingerprint = { value: "", at: 0 };
  /** When a task last succeeded against the database: proof enough that it is reachable. */
  let lastDatabaseSuccess = { at: 0, latencyMs: 0 };
  /** When a task last failed because the database could not be reached. */
  let lastDatabaseFailure = 0;
  /** The schema fingerprint being refreshed, if it is. */
  let describing: Promise<void> | undefined;
  /** What the last heartbeat said about the database. */
  let reportedReachable = true;
  /** Ends the heartbeat loop's wait early (the database just became unreachable). */
  let wakeHeartbeat = () => {};
  let stopping: Promise<void> | undefined;
  let settle!: { resolve: () => void; reject: (e: unknown) => void };
  const done = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });
  done.catch(() => {});

  const info = () => ({
    name: config.name,
    version: DRAY_VERSION,
    platform: Platform.POSTGRES,
    hostname: hostname(),
  });

  function setState(next: AgentState) {
    if (state === next) return;
    logger.info("agent state", { from: state, to: next });
    state = next;
  }

  function fail(error: DrayError) {
    if (state === "failed" || state === "stopped") return;
    setState("failed");
    logger.error("agent stopped: cannot continue", { code: error.code, error: error.message });
    stopController.abort(error);
    for (const t of inFlight.values()) t.controller.abort(error);
    void Promise.allSettled([...inFlight.values()].map((t) => t.promise)).then(async () => {
      gateway.close();
      await connector.close().catch(() => {});
      settle.reject(error);
    });
  }

  const isAuthError = (error: unknown) =>
    error instanceof ClientError &&
    (error.code === Status.UNAUTHENTICATED || error.code === Status.PERMISSION_DENIED);

  async function enroll(): Promise<StoredCredential> {
    const token = config.enrollmentToken;
    if (!token) {
      throw new DrayError(
        "failed_precondition",
        `no stored credential at ${credentials.path} and DRAY_ENROLLMENT_TOKEN is not set: create the environment with POST /api/v1/environments and pass its enrollmentToken`,
      );
    }
    setState("enrolling");
    for (;;) {
      const generation = failover.generation;
      try {
        const response = await gateway.client.enroll(
          { enrollmentToken: token, agent: info() },
          { signal: within(15_000, stopController.signal, failover.signal) },
        );
        failover.answered(generation);
        const stored: StoredCredential = {
          agentId: response.agentId,
          environmentId: response.environmentId,
          credential: response.credential,
          controlPlaneAddress: failover.address || config.controlPlane.address,
          enrolledAt: new Date().toISOString(),
        };
        await credentials.save(stored);
        heartbeatIntervalMs = response.heartbeatIntervalMs || heartbeatIntervalMs;
        logger.info("enrolled", { agentId: stored.agentId, environmentId: stored.environmentId });
        return stored;
      } catch (error) {
        if (error instanceof ClientError && !isUnreachable(error)) {
          throw new DrayError("unauthenticated", `enrolment refused: ${error.details}`);
        }
        if (stopController.signal.aborted) throw DrayError.from(error);
        logger.warn("control plane unreachable, retrying enrolment", { error: String(error) });
        await switchGateway(generation, String(error));
        if (stopController.signal.aborted) throw DrayError.from(stopController.signal.reason);
      }
    }
  }

  async function probeDatabase(): Promise<{ reachable: boolean; latencyMs: number; error: string }> {
    // A busy agent (every connection in a batch) need not queue a probe behind its own work,
    // unless a task has failed to reach the database since its last success.
    if (
      Date.now() - lastDatabaseSuccess.at < heartbeatIntervalMs &&
      lastDatabaseFailure < lastDatabaseSuccess.at
    ) {
      return { reachable: true, latencyMs: lastDatabaseSuccess.latencyMs, error: "" };
    }
    try {
      const signal = AbortSignal.timeout(Math.min(5_000, Math.max(500, heartbeatIntervalMs / 2)));
      const r = await connector.testConnection(signal);
      // The schema fingerprint is refreshed beside the heartbeat, never in its way: describing
      // a large schema can take seconds, and a heartbeat must say "reachable" at once.
      if (Date.now() - fingerprint.at > SCHEMA_FINGERPRINT_EVERY_MS && !describing) {
        describing = connector
          .describeSchema([], AbortSignal.timeout(30_000), { estimates: false })
          .then((d) => {
            fingerprint = { value: d.fingerprint, at: Date.now() };
          })
          .catch(() => {})
          .finally(() => {
            describing = undefined;
          });
      }
      lastDatabaseSuccess = { at: Date.now(), latencyMs: Math.round(r.databaseLatencyMs) };
      return { reachable: true, latencyMs: lastDatabaseSuccess.latencyMs, error: "" };
    } catch (error) {
      const message = DrayError.from(error).message;
      logger.debug("database probe failed", { error: message });
      return { reachable: false, latencyMs: 0, error: message };
    }
  }

  /**
   * Waits one heartbeat interval. While the database is reported unreachable it
   * is probed every second meanwhile, and the wait ends as soon as it answers,
   * so its return is reported at once rather than at the next interval.
   */
  async function pause(signal: AbortSignal) {
    if (reportedReachable) return sleep(heartbeatIntervalMs, signal).catch(() => {});
    const until = Date.now() + heartbeatIntervalMs;
    while (!signal.aborted && Date.now() < until) {
      await sleep(Math.min(RECOVERY_PROBE_EVERY_MS, until - Date.now()), signal).catch(() => {});
      if (signal.aborted || Date.now() >= until) return;
      if ((await probeDatabase()).reachable) return;
    }
  }

  /**
   * The gateway of connection `generation` failed: moves to the next one (or
   * waits for the switch another loop started). Tasks sent by an earlier
   * connection are cancelled: that replica has failed them already and the
   * control plane retries them, so their results would not be taken.
   */
  async function switchGateway(generation: number, reason: string) {
    await failover.switchFrom(generation, reason, stopController.signal);
    for (const [taskId, task] of inFlight) {
      if (task.generation >= failover.generation) continue;
      logger.debug("task cancelled: its control plane gateway is gone", { taskId });
      task.controller.abort(
        new DrayError("unavailable", "the control plane gateway that sent this task is gone"),
      );
    }
    // Heartbeat the new gateway now: it learns the agent's state, and the agent that it answers.
    wakeHeartbeat();
  }

  async function heartbeatLoop() {
    while (!stopController.signal.aborted) {
      const db = await probeDatabase();
      const generation = failover.generation;
      try {
        const response = await gateway.client.heartbeat(
          {
            agent: info(),
            databaseReachable: db.reachable,
            databaseLatencyMs: db.latencyMs,
            databaseError: db.error,
            schemaFingerprint: fingerprint.value,
            tasksInFlight: inFlight.size,
            draining: state === "draining",
          },
          { signal: within(Math.max(2_000, heartbeatIntervalMs), stopController.signal, failover.signal) },
        );
        failover.answered(generation);
        if (response.heartbeatIntervalMs) heartbeatIntervalMs = response.heartbeatIntervalMs;
        if (db.reachable !== reportedReachable)
          logger[db.reachable ? "info" : "warn"](
            db.reachable ? "the database is reachable again" : "the database is unreachable",
            db.reachable ? {} : { error: db.error },
          );
        reportedReachable = db.reachable;
      } catch (error) {
        if (stopController.signal.aborted) return;
        if (isAuthError(error)) return fail(new DrayError("unauthenticated", (error as ClientError).details));
        logger.warn("heartbeat failed", { error: String(error) });
        // The gateway is gone (or was given up meanwhile): the next heartbeat goes to the next one, at once.
        if (isUnreachable(error) || generation !== failover.generation) {
          await switchGateway(generation, String(error));
          continue;
        }
      }
      // One controller per pause, woken by a stop or an early heartbeat. Not AbortSignal.any:
      // on Node 20 a signal combined with the long-lived stop signal may never be collected.
      const wake = new AbortController();
      const onStop = () => wake.abort();
      stopController.signal.addEventListener("abort", onStop, { once: true });
      if (stopController.signal.aborted) wake.abort();
      wakeHeartbeat = () => wake.abort();
      try {
        await pause(wake.signal);
      } finally {
        stopController.signal.removeEventListener("abort", onStop);
        wakeHeartbeat = () => {};
      }
    }
  }

  async function complete(
    taskId: string,
    generation: number,
    outcome: Awaited<ReturnType<typeof runTask>>,
    durationMs: number,
  ) {
    for (let attempt = 0; attempt < 5; attempt++) {
      // A result goes only to the gateway that sent the task: another replica does not know it.
      if (generation !== failover.generation) {
        logger.debug("task result not sent: its control plane gateway is gone", { taskId });
        return;
      }
      try {
        await gateway.client.completeTask({ taskId, outcome, durationMs }, { signal: within(30_000) });
        return;
      } catch (error) {
        if (isAuthError(error) || attempt === 4) {
          logger.warn("could not return a task result", { taskId, error: String(error) });
          return;
        }
        await sleep(backoffDelay(attempt, { initialMs: 200, maxMs: 2_000 }));
      }
    }
  }

  /** Logs a command from an older session: a warning the first time for its epoch, debug after. */
  function logStale(epoch: bigint, fields: Record<string, unknown>) {
    const first = !warnedEpochs.has(epoch);
    warnedEpochs.add(epoch);
    logger[first ? "warn" : "debug"]("command from an older session refused", {
      ...fields,
      reason: STALE_SESSION_EPOCH,
      sessionEpoch: String(epoch),
      currentEpoch: String(fence.current),
    });
  }

  /** A newer session began: tasks still running for an older one are aborted (their replica lost the agent). */
  function fenceOlderTasks() {
    for (const [taskId, task] of inFlight) {
      if (!fence.isStale(task.epoch)) continue;
      logStale(task.epoch, { taskId, action: "aborted" });
      task.controller.abort(
        new DrayError("failed_precondition", fence.staleMessage(task.epoch, "task"), {
          retryable: true,
          details: { reason: STALE_SESSION_EPOCH },
        }),
      );
    }
  }

  function startTask(task: Task, generation: number) {
    const controller = new AbortController();
    const started = performance.now();
    const admission = fence.admit(task.sessionEpoch);
    if (admission.raised) fenceOlderTasks();
    const refusal:
      | { code: number; message: string; retryable: boolean; reason: string; reasonCode: TaskErrorReason }
      | undefined = !admission.admitted
      ? {
          code: ErrorCode.FAILED_PRECONDITION,
          message: fence.staleMessage(task.sessionEpoch, "task"),
          // The task is sound; sent again it goes through the replica that holds the agent now.
          retryable: true,
          reason: STALE_SESSION_EPOCH,
          reasonCode: taskErrorReasonToWire(STALE_SESSION_EPOCH),
        }
      : state === "draining"
        ? {
            code: ErrorCode.UNAVAILABLE,
            message: "the agent is draining and takes no new tasks",
            retryable: true,
            reason: "",
            reasonCode: TaskErrorReason.UNSPECIFIED,
          }
        : running >= config.maxTasks
          ? {
              code: ErrorCode.RESOURCE_EXHAUSTED,
              message: "the agent is at its task limit",
              retryable: true,
              reason: "",
              reasonCode: TaskErrorReason.UNSPECIFIED,
            }
          : undefined;
    // `running` counts tasks whose work is not done: a task stops counting before its result
    // is sent, because the control plane may send the next task as soon as it has the result.
    if (!refusal) running++;
    else if (!admission.admitted) logStale(task.sessionEpoch, { taskId: task.taskId, kind: task.kind.case });
    else
      logger.warn("task refused", {
        taskId: task.taskId,
        kind: task.kind.case,
        reason: refusal.message,
        running,
      });
    const promise = (async () => {
      let outcome: Awaited<ReturnType<typeof runTask>>;
      if (refusal) outcome = { case: "error", value: { ...refusal, sqlState: "" } };
      else {
        try {
          outcome = await runTask(connector, task, controller.signal);
        } finally {
          running--;
        }
      }
      if (outcome?.case === "result") {
        lastDatabaseSuccess = { at: Date.now(), latencyMs: lastDatabaseSuccess.latencyMs };
        // Back after an outage: say so now rather than at the next interval.
        if (!reportedReachable) wakeHeartbeat();
      } else if (!refusal && outcome?.case === "error" && outcome.value.code === ErrorCode.UNAVAILABLE) {
        // The database went away under a task: probe it and tell the control plane now,
        // not at the next interval.
        lastDatabaseFailure = Date.now();
        if (reportedReachable) wakeHeartbeat();
      }
      await complete(task.taskId, generation, outcome, Math.round(performance.now() - started));
    })().finally(() => inFlight.delete(task.taskId));
    inFlight.set(task.taskId, { controller, promise, generation, epoch: task.sessionEpoch });
  }

  /** A work stream announced its session's epoch. */
  function onSession(epoch: bigint, firstOfStream: boolean) {
    const announced = fence.announce(epoch, firstOfStream);
    if (announced.wentBack)
      logger.info("the control plane's session epochs started again; this stream's epoch is adopted", {
        previous: String(announced.previous),
        sessionEpoch: String(epoch),
      });
    else logger.debug("session started", { sessionEpoch: String(epoch) });
    if (announced.raised) fenceOlderTasks();
  }

  async function workLoop() {
    /** Work streams in a row that ended early: a gateway that answers but ends streams is not redialled at once. */
    let shortStreams = 0;
    while (!stopController.signal.aborted) {
      const generation = failover.generation;
      const opened = Date.now();
      // One controller per stream, aborted by a stop or when its gateway is given up.
      const streamController = new AbortController();
      const onAbort = () => streamController.abort();
      const parents = [stopController.signal, failover.signal];
      for (const parent of parents) parent.addEventListener("abort", onAbort, { once: true });
      if (parents.some((p) => p.aborted)) streamController.abort();
      let reason = "the control plane ended the work stream";
      try {
        const stream = gateway.client.openWorkStream(
          { agent: info(), maxConcurrentTasks: config.maxTasks },
          { signal: streamController.signal },
        );
        let firstOfStream = true;
        for await (const message of stream) {
          shortStreams = 0;
          failover.answered(generation);
          if (message.kind.case === "session") onSession(message.kind.value.sessionEpoch, firstOfStream);
          else if (message.kind.case === "task") startTask(message.kind.value, generation);
          else if (message.kind.case === "cancel") {
            const { taskId, reason, sessionEpoch } = message.kind.value;
            // A cancel from an older session is dropped: the task it names is not that replica's any more.
            if (!fence.admit(sessionEpoch).admitted)
              logStale(sessionEpoch, { taskId, action: "cancel dropped" });
            else
              inFlight
                .get(taskId)
                ?.controller.abort(new DrayError("cancelled", reason || "cancelled by the control plane"));
          }
          firstOfStream = false;
        }
      } catch (error) {
        if (stopController.signal.aborted) return;
        if (isAuthError(error)) return fail(new DrayError("unauthenticated", (error as ClientError).details));
        reason = error instanceof ClientError ? error.details : String(error);
      } finally {
        for (const parent of parents) parent.removeEventListener("abort", onAbort);
      }
      if (stopController.signal.aborted) return;
      logger.warn("work stream lost", { gateway: failover.address, error: reason });
      if (Date.now() - opened > 5_000) shortStreams = 0;
      const lost = Date.now();
      await switchGateway(generation, reason);
      // The first loss moves on at once; repeated early losses wait (the time the switch took counts).
      if (shortStreams++ > 0) {
        const wait = backoffDelay(shortStreams - 2, { initialMs: 200, maxMs: 2_000, jitter: 0.25 });
        await sleep(Math.max(0, wait - (Date.now() - lost)), stopController.signal).catch(() => {});
      }
    }
  }

  const agent: Agent = {
    get state() {
      return state;
    },
    done,

    async start() {
      let stored = await credentials.load();
      if (!stored) stored = await enroll();
      else if (config.enrollmentToken) {
        logger.info("using the stored credential; DRAY_ENROLLMENT_TOKEN is ignored", {
          agentId: stored.agentId,
        });
      }
      gateway.setCredential(stored.credential);
      setState("running");
      void Promise.all([heartbeatLoop(), workLoop()]).then(() => {
        if (state === "running") settle.resolve();
      });
    },

    stop(reason = "shutdown") {
      if (stopping) return stopping;
      stopping = (async () => {
        if (state === "failed" || state === "stopped") return;
        setState("draining");
        await gateway.client
          .drain({ reason }, { signal: within(3_000) })
          .catch((error) => logger.warn("could not announce the drain", { error: String(error) }));
        const pending = [...inFlight.values()].map((t) => t.promise);
        if (pending.length) {
          logger.info("waiting for tasks in flight", {
            tasks: pending.length,
            timeoutMs: config.drainTimeoutMs,
          });
          // The timer is cleared as soon as the tasks settle: a pending timer would keep the
          // process alive for the whole drain timeout after the last result was sent.
          const timedOut = await settleWithin(pending, config.drainTimeoutMs);
          if (timedOut) {
            for (const t of inFlight.values())
              t.controller.abort(new DrayError("cancelled", "the agent is shutting down"));
            await Promise.allSettled([...inFlight.values()].map((t) => t.promise));
          }
        }
        stopController.abort(new DrayError("cancelled", "agent stopped"));
        gateway.close();
        await connector.close().catch(() => {});
        setState("stopped");
        settle.resolve();
      })();
      return stopping;
    },
  };
  return agent;
}
