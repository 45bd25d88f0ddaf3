/**
 * Agent sessions of one replica among several: the agents connected here are
 * served as before, and recorded in the store (agent-registry.ts) and on NATS
 * (task-relay.ts), so that a task for an agent held by another replica is
 * relayed to it. To the executor and the API this is the same
 * {@link AgentSessions}: `isConnected` is true for an agent connected to any
 * replica, and `dispatch` reaches it wherever it is.
 */
import type { Logger } from "@dray/common";
import type { AgentRegistry } from "./agent-registry.js";
import {
  type AgentSession,
  type AgentSessionInfo,
  AgentSessions,
  type DispatchOptions,
  type TaskKind,
  type TaskPayload,
  type TaskResultOf,
} from "./agent-sessions.js";
import { isHolderGone, type TaskRelay } from "./task-relay.js";

/** How often a wait for an agent held elsewhere looks again. */
const REMOTE_POLL_MS = 500;

/** See the module comment. */
export class ReplicaAgentSessions extends AgentSessions {
  private relay: TaskRelay | undefined;

  constructor(
    logger: Logger,
    private readonly registry: AgentRegistry,
  ) {
    super(logger);
  }

  /** Attaches the NATS relay (it needs this object's local dispatch, so it comes second). */
  attachRelay(relay: TaskRelay): void {
    this.relay = relay;
    for (const environmentId of this.localEnvironments()) relay.serve(environmentId);
  }

  override open(info: AgentSessionInfo): AgentSession {
    const session = super.open(info);
    this.relay?.serve(info.environmentId);
    // Tasks relayed to the agent's previous replica will not be answered there any more.
    this.relay?.abandon(info.environmentId, "the environment's agent moved to this replica");
    return session;
  }

  /**
   * The session's epoch is the store's (one more than the environment's last
   * session on any replica). The agent refuses tasks from an older one, so a
   * replica that still believes it holds the agent cannot act once it moved.
   */
  protected override async claimEpoch(session: AgentSession): Promise<number> {
    const epoch = await this.registry.claim(session.environmentId, session.agentId);
    // The agent left while the claim was being written: let it lapse again.
    if (session.stream.isClosed && !this.get(session.environmentId))
      void this.registry.release(session.environmentId).catch(() => {});
    return epoch;
  }

  override close(session: AgentSession, reason: string): void {
    const current = this.get(session.environmentId) === session;
    super.close(session, reason);
    if (current && !this.get(session.environmentId)) {
      void this.relay?.unserve(session.environmentId);
      void this.registry.release(session.environmentId).catch(() => {});
    }
  }

  /** True when an agent of the environment is connected here, or to another live replica. */
  override isConnected(environmentId: string): boolean {
    return super.isConnected(environmentId) || this.registry.heldElsewhere(environmentId) !== undefined;
  }

  /** Runs the task here when the agent is connected here, else relays it to the replica holding it. */
  override async dispatch<K extends TaskKind>(
    environmentId: string,
    kind: K,
    payload: TaskPayload<K>,
    options: DispatchOptions = {},
  ): Promise<TaskResultOf<K>> {
    // No session here at all (a draining one here still answers for itself).
    if (this.relay && !this.get(environmentId)) {
      const holder = this.registry.heldElsewhere(environmentId);
      try {
        return await this.relay.dispatch(environmentId, kind, payload, options);
      } catch (error) {
        // Nobody holds it after all (its replica died with the claim): stop counting that claim. Only
        // that one: the agent may have opened a newer session on a live replica meanwhile.
        if (isHolderGone(error) && holder) this.registry.markUnreachable(environmentId, holder.epoch);
        throw error;
      }
    }
    return super.dispatch(environmentId, kind, payload, options);
  }

  /** Local dispatch only: what the relay runs for tasks sent here by other replicas. */
  dispatchHere<K extends TaskKind>(
    environmentId: string,
    kind: K,
    payload: TaskPayload<K>,
    options: DispatchOptions,
  ): Promise<TaskResultOf<K>> {
    return super.dispatch(environmentId, kind, payload, options);
  }

  /** Waits for an agent here or elsewhere (an agent held elsewhere is looked for every 500 ms). */
  override async waitForAgent(environmentId: string, awayLimitMs: number, signal?: AbortSignal) {
    const poll = new AbortController();
    const linked = signal ? AbortSignal.any([signal, poll.signal]) : poll.signal;
    const timer = setInterval(() => {
      void this.registry.refresh().then(() => {
        if (this.registry.heldElsewhere(environmentId)) poll.abort();
      });
    }, REMOTE_POLL_MS);
    try {
      return await super.waitForAgent(environmentId, awayLimitMs, linked);
    } catch (error) {
      if (poll.signal.aborted && !signal?.aborted && this.isConnected(environmentId)) return undefined;
      throw error;
    } finally {
      clearInterval(timer);
    }
  }
}
