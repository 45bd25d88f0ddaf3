import { randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { codeOfGrpcStatus, DrayError, type Logger } from "@dray/common";
import type { OpenWorkStreamResponseSchema, Task, TaskError, TaskResult, TaskSchema } from "@dray/proto";
import { TASK_ERROR_REASONS, taskErrorReasonFromWire } from "@dray/proto";
import { AsyncQueue } from "./async-queue.js";

/** The kinds of task the control plane can send. */
export type TaskKind = NonNullable<Task["kind"]["case"]>;
type TaskInit = MessageInitShape<typeof TaskSchema>;
type TaskKindInit = NonNullable<TaskInit["kind"]>;
/** The payload of a task of kind K, as accepted by `dispatch`. */
export type TaskPayload<K extends TaskKind> = Extract<TaskKindInit, { case: K }>["value"];
/** The result of a task of kind K. */
export type TaskResultOf<K extends TaskKind> = Extract<TaskResult["kind"], { case: K }>["value"];

/** Options of {@link AgentSessions.dispatch}. */
export interface DispatchOptions {
  signal?: AbortSignal;
  /** Deadline for the whole task; always set. @default 30000 */
  timeoutMs?: number;
  /** Byte budget for the result. @default 32 MiB */
  maxResultBytes?: number;
}

interface PendingTask {
  kind: TaskKind;
  resolve: (result: TaskResult) => void;
  reject: (error: DrayError) => void;
}

/** The reason of an agent refusing a task sent under an older session epoch than its newest. */
export const STALE_SESSION_EPOCH = TASK_ERROR_REASONS.staleSessionEpoch;

/** Marker in `details.reason` of the errors meaning "no usable agent right now" (none, gone, draining). */
export const AGENT_AWAY = "agent_away";

/** True for an error of {@link AgentSessions} meaning the environment's agent is away (not the agent's own error). */
export function isAgentAway(error: unknown): boolean {
  return (
    error instanceof DrayError && (error.details as { reason?: string } | undefined)?.reason === AGENT_AWAY
  );
}

/** Where an environment's agent went, while it is away. */
export interface AgentAbsence {
  /** When it disconnected or announced its drain (or, when it never connected here, when that was first noticed). */
  since: number;
  /** The agent that left, when known. */
  agentId: string | undefined;
  environmentName: string | undefined;
}

/** One connected agent and its work stream. */
export interface AgentSession {
  readonly agentId: string;
  readonly environmentId: string;
  readonly organisationId: string;
  readonly environmentName: string;
  readonly maxConcurrentTasks: number;
  /** When the work stream opened (ms since the epoch, this process's clock). */
  readonly openedAt: number;
  readonly stream: AsyncQueue<MessageInitShape<typeof OpenWorkStreamResponseSchema>>;
  readonly pending: Map<string, PendingTask>;
  /** Dispatches waiting for one of the agent's task slots. */
  readonly waiting: (() => void)[];
  /** Task slots taken (tasks sent or about to be sent). */
  slotsInUse: number;
  draining: boolean;
  /**
   * The session's epoch, sent to the agent first on the stream and on every
   * task and cancel; 0 until {@link AgentSession.established} settles.
   */
  epoch: number;
  /** Settles once the epoch is known and sent (true), or the session could not be recorded and closed (false). */
  established: Promise<boolean>;
}

/** What {@link AgentSessions.open} is given: the agent and its stream's limits. */
export type AgentSessionInfo = Omit<
  AgentSession,
  "openedAt" | "stream" | "pending" | "waiting" | "slotsInUse" | "draining" | "epoch" | "established"
>;

/**
 * The agents connected to this control-plane replica, and the tasks in flight
 * on each. `dispatch` pushes a task down the agent's work stream and resolves
 * with the result the agent returns through CompleteTask.
 */
export class AgentSessions {
  private readonly byEnvironment = new Map<string, AgentSession>();
  /** Environments whose agent left (disconnected or draining), since when. */
  private readonly absences = new Map<string, AgentAbsence>();
  /** Waiters woken whenever an agent opens its work stream. */
  private readonly arrivals = new Set<() => void>();
  /** The last epoch given by {@link claimEpoch} in a single replica. */
  private lastEpoch = 0;

  constructor(private readonly logger: Logger) {}

  /**
   * Registers the work stream of an agent, replacing (and closing) an older
   * one of the same environment, and starts its session: the epoch is claimed
   * ({@link claimEpoch}), then sent as the stream's first message.
   */
  open(info: AgentSessionInfo): AgentSession {
    const previous = this.byEnvironment.get(info.environmentId);
    if (previous) this.close(previous, "replaced by a newer work stream");
    const session: AgentSession = {
      ...info,
      openedAt: Date.now(),
      stream: new AsyncQueue(),
      pending: new Map(),
      waiting: [],
      slotsInUse: 0,
      draining: false,
      epoch: 0,
      established: Promise.resolve(false),
    };
    session.established = this.establish(session);
    this.byEnvironment.set(info.environmentId, session);
    this.absences.delete(info.environmentId);
    for (const wake of [...this.arrivals]) wake();
    this.logger.info("agent connected", { agentId: info.agentId, environmentId: info.environmentId });
    return session;
  }

  /**
   * The epoch of a new session of the environment's agent: one replica alone
   * counts in memory, from the clock (milliseconds), so epochs keep growing
   * across restarts. Replicas sharing a store take it from the store.
   */
  protected async claimEpoch(_session: AgentSession): Promise<number> {
    this.lastEpoch = Math.max(this.lastEpoch + 1, Date.now());
    return this.lastEpoch;
  }

  /** Claims the session's epoch and sends it to the agent; closes the session when it cannot be claimed. */
  private async establish(session: AgentSession): Promise<boolean> {
    try {
      const epoch = await this.claimEpoch(session);
      if (session.stream.isClosed) return false;
      session.epoch = epoch;
      session.stream.push({ kind: { case: "session", value: { sessionEpoch: BigInt(epoch) } } });
      this.logger.debug("agent session started", { environmentId: session.environmentId, epoch });
      return true;
    } catch (error) {
      this.logger.warn("cannot record the agent's session; its work stream is closed", {
        environmentId: session.environmentId,
        error: String(error),
      });
      this.close(session, "its session could not be recorded");
      return false;
    }
  }

  /** Closes a session: its stream ends and every task in flight fails `unavailable` (retryable). */
  close(session: AgentSession, reason: string): void {
    if (this.byEnvironment.get(session.environmentId) === session) {
      this.byEnvironment.delete(session.environmentId);
      this.markAway(session);
    }
    session.stream.close();
    for (const [taskId, pending] of session.pending) {
      pending.reject(
        new DrayError(
          "unavailable",
          `the agent of environment "${session.environmentName}" disconnected: ${reason}`,
          {
            retryable: true,
            details: { taskId, reason: AGENT_AWAY, environmentId: session.environmentId },
          },
        ),
      );
    }
    session.pending.clear();
    for (const wake of session.waiting.splice(0)) wake();
    this.logger.info("agent disconnected", {
      agentId: session.agentId,
      environmentId: session.environmentId,
      reason,
    });
  }

  get(environmentId: string): AgentSession | undefined {
    return this.byEnvironment.get(environmentId);
  }

  /** The environments whose agent holds a work stream here. */
  localEnvironments(): string[] {
    return [...this.byEnvironment.keys()];
  }

  /** True when an agent of the environment has an open work stream here and is not draining. */
  isConnected(environmentId: string): boolean {
    const s = this.byEnvironment.get(environmentId);
    return s !== undefined && !s.draining;
  }

  /** Marks the environment's agent as draining: it gets no new tasks. */
  markDraining(agentId: string): AgentSession | undefined {
    for (const s of this.byEnvironment.values()) {
      if (s.agentId === agentId) {
        s.draining = true;
        this.markAway(s);
        return s;
      }
    }
    return undefined;
  }

  /** Records that the session's agent left, keeping the earliest time of an absence already recorded. */
  private markAway(session: AgentSession): void {
    if (this.absences.has(session.environmentId)) return;
    this.absences.set(session.environmentId, {
      since: Date.now(),
      agentId: session.agentId,
      environmentName: session.environmentName,
    });
  }

  /**
   * Since when the environment's agent has been away, or undefined when it is
   * connected. An environment never seen here counts as away from the first
   * time this is asked.
   */
  absence(environmentId: string): AgentAbsence | undefined {
    if (this.isConnected(environmentId)) return undefined;
    let absence = this.absences.get(environmentId);
    if (!absence) {
      absence = { since: Date.now(), agentId: undefined, environmentName: undefined };
      this.absences.set(environmentId, absence);
    }
    return absence;
  }

  /**
   * Waits until an agent of the environment is connected (and not draining).
   * Resolves with the absence it waited out (undefined when none); rejects
   * `unavailable` (not retryable, `details.reason` "agent_unavailable") once the
   * agent has been away for `awayLimitMs`, counted from when it left, or
   * `cancelled` when the signal aborts.
   */
  async waitForAgent(
    environmentId: string,
    awayLimitMs: number,
    signal?: AbortSignal,
  ): Promise<AgentAbsence | undefined> {
    const absence = this.absence(environmentId);
    if (!absence) return undefined;
    for (;;) {
      if (signal?.aborted) throw new DrayError("cancelled", "cancelled while waiting for the agent");
      if (this.isConnected(environmentId)) return absence;
      const awayMs = Date.now() - absence.since;
      const left = awayLimitMs - awayMs;
      if (left <= 0) {
        throw new DrayError(
          "unavailable",
          `the agent of environment "${absence.environmentName ?? environmentId}" has been away for ${Math.round(awayMs / 1000)} s`,
          {
            retryable: false,
            details: {
              reason: "agent_unavailable",
              environmentId,
              agentId: absence.agentId,
              awayMs,
            },
          },
        );
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.arrivals.delete(done);
          signal?.removeEventListener("abort", done);
          resolve();
        };
        const timer = setTimeout(done, left);
        this.arrivals.add(done);
        signal?.addEventListener("abort", done, { once: true });
      });
    }
  }

  /** Agents with an open work stream here. */
  connectedCount(): number {
    return this.byEnvironment.size;
  }

  /** Tasks sent to this replica's agents and not answered yet. */
  tasksInFlight(): number {
    let n = 0;
    for (const s of this.byEnvironment.values()) n += s.pending.size;
    return n;
  }

  /** Number of tasks in flight on the environment's agent. */
  inFlight(environmentId: string): number {
    return this.byEnvironment.get(environmentId)?.pending.size ?? 0;
  }

  /**
   * Sends one task to the environment's agent and waits for its result.
   * Rejects with `unavailable` when no agent is connected, `deadline_exceeded`
   * after the timeout, `cancelled` when the signal aborts (the agent is told
   * to cancel), or the agent's own error.
   */
  async dispatch<K extends TaskKind>(
    environmentId: string,
    kind: K,
    payload: TaskPayload<K>,
    options: DispatchOptions = {},
  ): Promise<TaskResultOf<K>> {
    const session = this.byEnvironment.get(environmentId);
    if (!session || session.draining) {
      throw new DrayError(
        "unavailable",
        session
          ? "the environment's agent is shutting down; wait for it to reconnect, then retry"
          : "the environment has no connected agent: start dray-agent with its enrollment token (or check that it is running and can reach the control plane), then retry",
        { retryable: true, details: { environmentId, reason: AGENT_AWAY } },
      );
    }
    if (options.signal?.aborted)
      throw new DrayError("cancelled", "the task was cancelled before it was sent");
    // Every task carries the session's epoch: wait for it (a claim in the store, just after the stream opened).
    await session.established;
    await this.waitForSlot(session, options.signal);
    if (session.stream.isClosed) {
      // The agent left while this dispatch took its slot: the task would never be answered.
      session.slotsInUse--;
      throw new DrayError(
        "unavailable",
        `the agent of environment "${session.environmentName}" disconnected`,
        {
          retryable: true,
          details: { reason: AGENT_AWAY, environmentId },
        },
      );
    }
    const taskId = randomUUID();
    const timeoutMs = options.timeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    const result = await new Promise<TaskResult>((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        if (session.pending.delete(taskId)) {
          session.slotsInUse--;
          session.waiting.shift()?.();
        }
      };
      const cancelOnAgent = (reason: string) => {
        session.stream.push({
          kind: { case: "cancel", value: { taskId, reason, sessionEpoch: BigInt(session.epoch) } },
        });
      };
      const onAbort = () => {
        cleanup();
        cancelOnAgent("cancelled by the control plane");
        reject(new DrayError("cancelled", "the task was cancelled", { details: { taskId } }));
      };
      const timer = setTimeout(() => {
        cleanup();
        cancelOnAgent("deadline exceeded");
        reject(
          new DrayError("deadline_exceeded", `the agent did not answer within ${timeoutMs} ms`, {
            retryable: true,
            details: { taskId, kind },
          }),
        );
      }, timeoutMs);
      options.signal?.addEventListener("abort", onAbort, { once: true });
      session.pending.set(taskId, {
        kind,
        resolve: (r) => {
          cleanup();
          resolve(r);
        },
        reject: (e) => {
          cleanup();
          reject(e);
        },
      });
      session.stream.push({
        kind: {
          case: "task",
          value: {
            taskId,
            deadlineUnixMs: BigInt(deadline),
            maxResultBytes: BigInt(options.maxResultBytes ?? 32 * 1024 * 1024),
            sessionEpoch: BigInt(session.epoch),
            kind: { case: kind, value: payload } as TaskKindInit,
          },
        },
      });
    });
    if (result.kind.case !== kind) {
      throw new DrayError(
        "internal",
        `the agent answered a ${kind} task with ${result.kind.case ?? "nothing"}`,
      );
    }
    return result.kind.value as TaskResultOf<K>;
  }

  /**
   * Waits until the agent has a free task slot: the control plane never sends
   * more tasks at once than the agent said it runs (max_concurrent_tasks).
   */
  private async waitForSlot(session: AgentSession, signal: AbortSignal | undefined): Promise<void> {
    const disconnected = () =>
      new DrayError("unavailable", `the agent of environment "${session.environmentName}" disconnected`, {
        retryable: true,
        details: { reason: AGENT_AWAY, environmentId: session.environmentId },
      });
    while (session.slotsInUse >= session.maxConcurrentTasks) {
      if (session.stream.isClosed) throw disconnected();
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          const at = session.waiting.indexOf(wake);
          if (at >= 0) session.waiting.splice(at, 1);
          reject(new DrayError("cancelled", "the task was cancelled before it was sent"));
        };
        const wake = () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
        session.waiting.push(wake);
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    }
    if (session.stream.isClosed) throw disconnected();
    // Taken synchronously after the check, so concurrent dispatches cannot overbook.
    session.slotsInUse++;
  }

  /**
   * Delivers a result from CompleteTask. Returns false when nobody waits for
   * the task any more (cancelled, timed out, unknown, or another agent's).
   */
  complete(agentId: string, taskId: string, outcome: { result?: TaskResult; error?: TaskError }): boolean {
    for (const session of this.byEnvironment.values()) {
      if (session.agentId !== agentId) continue;
      const pending = session.pending.get(taskId);
      if (!pending) return false;
      if (outcome.error) {
        const reason = taskErrorReasonFromWire(outcome.error);
        pending.reject(
          new DrayError(
            codeOfGrpcStatus(outcome.error.code),
            outcome.error.message || "the agent reported an error",
            {
              retryable: outcome.error.retryable,
              details:
                outcome.error.sqlState || reason
                  ? {
                      ...(outcome.error.sqlState ? { sqlState: outcome.error.sqlState } : {}),
                      ...(reason ? { reason } : {}),
                    }
                  : undefined,
            },
          ),
        );
        // The agent has seen a newer session (on another replica): this one is stale. Closing it lets
        // the next task go to the replica that holds the agent now.
        if (reason === STALE_SESSION_EPOCH)
          this.close(session, `the agent has a newer session than epoch ${session.epoch}`);
      } else if (outcome.result) {
        pending.resolve(outcome.result);
      } else {
        pending.reject(new DrayError("internal", "the agent completed a task with neither result nor error"));
      }
      return true;
    }
    return false;
  }

  /** Closes every session (shutdown). */
  closeAll(reason: string): void {
    for (const s of [...this.byEnvironment.values()]) this.close(s, reason);
  }
}
