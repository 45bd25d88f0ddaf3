/**
 * How a run's errors say why it ended: each error class of the executor
 * carries its own reason code (read with {@link reasonCodeOf}, no instanceof
 * chain), and a run is aborted with a {@link RunAborted} — an error with a
 * code and a message, not a bare object that would print "[object Object]".
 */
import { DrayError } from "@dray/common";
import { REASON_CODES } from "../executions/execution-vocabulary.js";

/** Why a run's signal aborted: a user's cancel, a lost lease, or this control plane shutting down. */
export type AbortKind = "cancel" | "lost" | "shutdown";

/** The reason a run's signal is aborted with. */
export class RunAborted extends DrayError {
  constructor(
    readonly kind: AbortKind,
    message: string,
  ) {
    super(kind === "cancel" ? "cancelled" : "aborted", message, { retryable: false, details: { kind } });
  }
}

/** The kind of a run's abort, or undefined when the signal did not abort with a {@link RunAborted}. */
export function abortKindOf(signal: AbortSignal): AbortKind | undefined {
  return signal.aborted && signal.reason instanceof RunAborted ? signal.reason.kind : undefined;
}

/** The reason code an error ends a run with: its own `reasonCode`, else `internal`. */
export function reasonCodeOf(error: unknown): string {
  const code = (error as { reasonCode?: unknown } | null)?.reasonCode;
  return typeof code === "string" && code.length > 0 ? code : REASON_CODES.internal;
}

/** Thrown when the monthly record limit stops the run at a batch boundary. */
export class RecordLimitReached extends DrayError {
  readonly reasonCode: string = REASON_CODES.monthlyRecordLimit;
  constructor(message: string, details: unknown) {
    super("resource_exhausted", message, { details, retryable: false });
  }
}

/** Thrown when a batch (or a task of the run) failed for good and the run must stop. */
export class BatchFailed extends DrayError {
  readonly reasonCode: string = REASON_CODES.batchFailed;
}

/**
 * Thrown when the agent of an environment stayed away (disconnected, draining
 * or never connected) for longer than the time that marks its environment
 * unhealthy: the run fails with reason `agent_unavailable`, naming it.
 */
export class AgentUnavailable extends BatchFailed {
  override readonly reasonCode: string = REASON_CODES.agentUnavailable;
}

/** True when the run is being handed over to another owner (shutdown, lost lease), not ended. */
export function handedOver(signal: AbortSignal): boolean {
  const kind = abortKindOf(signal);
  return kind === "shutdown" || kind === "lost";
}
