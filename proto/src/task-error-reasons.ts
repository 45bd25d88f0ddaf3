import { TaskErrorReason } from "./gen/dray/agent/v1/agent_pb.js";

/**
 * The reasons within an error code that both the agent and the control plane
 * act on, by the name they carry in `DrayError.details.reason`. On the wire
 * each is a {@link TaskErrorReason} (`TaskError.reason_code`); the name also
 * goes in `TaskError.reason` for control planes that predate the enum.
 */
export const TASK_ERROR_REASONS = {
  /** ABORTED: a write's `previous_batch_id` had not committed. */
  previousBatchNotCommitted: "previous_batch_not_committed",
  /** FAILED_PRECONDITION: rows sent under a batch id a fence sealed before it committed. */
  batchSealed: "batch_sealed",
  /** FAILED_PRECONDITION: a task sent under an older session epoch than the agent's newest. */
  staleSessionEpoch: "stale_session_epoch",
  /** FAILED_PRECONDITION: a read's `snapshot_id` names a snapshot that is no longer held. */
  snapshotGone: "snapshot_gone",
} as const;

export type TaskErrorReasonName = (typeof TASK_ERROR_REASONS)[keyof typeof TASK_ERROR_REASONS];

const TO_WIRE: Record<TaskErrorReasonName, TaskErrorReason> = {
  previous_batch_not_committed: TaskErrorReason.PREVIOUS_BATCH_NOT_COMMITTED,
  batch_sealed: TaskErrorReason.BATCH_SEALED,
  stale_session_epoch: TaskErrorReason.STALE_SESSION_EPOCH,
  snapshot_gone: TaskErrorReason.SNAPSHOT_GONE,
};

const FROM_WIRE = new Map<TaskErrorReason, TaskErrorReasonName>(
  Object.entries(TO_WIRE).map(([name, code]) => [code, name as TaskErrorReasonName]),
);

/**
 * The wire enum of a reason name; `UNSPECIFIED` for a name the wire does not carry.
 *
 * @example taskErrorReasonToWire("batch_sealed") // TaskErrorReason.BATCH_SEALED
 */
export function taskErrorReasonToWire(name: string | undefined): TaskErrorReason {
  return (name && TO_WIRE[name as TaskErrorReasonName]) || TaskErrorReason.UNSPECIFIED;
}

/**
 * The reason name of a received error: its `reason_code`, else the `reason`
 * text of an older agent, else undefined.
 */
export function taskErrorReasonFromWire(error: {
  reasonCode?: TaskErrorReason;
  reason?: string;
}): string | undefined {
  return FROM_WIRE.get(error.reasonCode ?? TaskErrorReason.UNSPECIFIED) ?? (error.reason || undefined);
}
