/**
 * The agent's fence against a control-plane replica that lost its session.
 * Every work stream starts with the epoch of its session (SessionStart), and
 * every task and cancel carries the epoch of the session that sent it. The
 * agent keeps the newest epoch it has been given; a command from an older one
 * comes from a replica that still believes it holds the agent after a newer
 * session began elsewhere, and is not run. Epoch 0 means "not sent" (a control
 * plane older than the field) and is always accepted.
 */

import { TASK_ERROR_REASONS } from "@dray/proto";

/** Reason of the TaskError answering a command from an older session. */
export const STALE_SESSION_EPOCH = TASK_ERROR_REASONS.staleSessionEpoch;

/** What a session announcement did to the fence. */
export interface Announcement {
  /** The newest epoch grew: commands of older sessions are stale from now on. */
  raised: boolean;
  /**
   * The first message of a new work stream named an older epoch than the
   * newest seen: the control plane counts again (its store or a lone replica
   * started over). The stream's own epoch is adopted.
   */
  wentBack: boolean;
  previous: bigint;
}

/** See the module comment. Pure: no I/O, no clock. */
export class SessionEpochFence {
  private newest = 0n;

  /** The newest epoch given (0 before any). */
  get current(): bigint {
    return this.newest;
  }

  /**
   * Records a session announcement. `firstOfStream`: it opened the work
   * stream the agent has just dialled, which is then the only authority.
   */
  announce(epoch: bigint, firstOfStream: boolean): Announcement {
    const previous = this.newest;
    if (epoch === 0n) return { raised: false, wentBack: false, previous };
    if (epoch < previous) {
      if (!firstOfStream) return { raised: false, wentBack: false, previous };
      this.newest = epoch;
      return { raised: false, wentBack: true, previous };
    }
    this.newest = epoch;
    return { raised: epoch > previous, wentBack: false, previous };
  }

  /** True when a command of `epoch` is older than the newest session (never for 0). */
  isStale(epoch: bigint): boolean {
    return epoch !== 0n && epoch < this.newest;
  }

  /**
   * Accepts a command of `epoch` unless it is stale; a command of a newer
   * epoch than announced raises the fence (it is the newest given).
   */
  admit(epoch: bigint): { admitted: boolean; raised: boolean } {
    if (this.isStale(epoch)) return { admitted: false, raised: false };
    const raised = epoch > this.newest;
    if (raised) this.newest = epoch;
    return { admitted: true, raised };
  }

  /** The message of the error answering a stale command. */
  staleMessage(epoch: bigint, what: "task" | "cancel"): string {
    return `${what} sent under session epoch ${epoch}, older than this agent's session epoch ${this.newest}: a newer session of the agent exists, so the replica that sent it no longer holds the agent`;
  }
}
