/**
 * The stable vocabulary of executions, shared by the executor, the API, the
 * events and logs (docs/architecture.md §2, seeds 01 and 02).
 */

export const EXECUTION_STATUSES = ["queued", "in_progress", "completed", "failed", "cancelled"] as const;
export type ExecutionStatus = (typeof EXECUTION_STATUSES)[number];

/** Statuses an execution never leaves. */
export const FINAL_STATUSES: ReadonlySet<ExecutionStatus> = new Set(["completed", "failed", "cancelled"]);

/** Machine-readable reasons an execution failed or was cancelled. */
export const REASON_CODES = {
  environmentUnhealthy: "environment_unhealthy",
  agentNotConnected: "agent_not_connected",
  agentUnavailable: "agent_unavailable",
  entityMissing: "entity_missing",
  planFailed: "plan_failed",
  monthlyRecordLimit: "monthly_record_limit",
  batchFailed: "batch_failed",
  confirmationRequired: "confirmation_required",
  cancelledByUser: "cancelled_by_user",
  /** A continuous pipeline paused itself after `maxFailedPolls` consecutive failed polls. */
  pausedAfterFailedPolls: "paused_after_failed_polls",
  internal: "internal",
} as const;
export type ReasonCode = (typeof REASON_CODES)[keyof typeof REASON_CODES];

/** Stage names of the stage log (seed 02). The loader is `<Platform>Loader`. */
export const STAGES = {
  intake: "StreamNotifier",
  fileIntake: "FileNotifier",
  dataQuality: "DataQuality",
  transformation: "Transformation",
  jobRunner: "JobRunner",
  loader: (platform: "postgres" | "mysql") => (platform === "postgres" ? "PostgresLoader" : "MysqlLoader"),
} as const;

export const STAGE_STATES = ["begin", "processing", "end", "error"] as const;
export type StageState = (typeof STAGE_STATES)[number];

/**
 * What the record counters mean, word for word the same in the API, the CLI
 * and the stage log: a record is `skipped` when the target rejected it on its
 * own (a constraint or a value it cannot take; listed by key in the error log,
 * the rest of its batch was written), and `failed` when its whole batch was
 * given up after its retries (not written, whatever its values). A batch given
 * up is `Failed` when it stopped the run, `Skipped` when the run went on
 * (`stopOnError=false`); either way its records count as failed.
 */
export const RECORD_COUNTER_MEANINGS = {
  skipped:
    "records the target rejected one by one (listed by key in the error log); the rest of their batch was written",
  failed: "records of batches given up after their retries (not written)",
} as const;

/** Batch states as the API shows them (seed 03's vocabulary). */
export const BATCH_STATE_LABELS = {
  in_progress: "In Progress",
  succeeded: "Succeeded",
  failed: "Failed",
  cancelled: "Cancelled",
  skipped: "Skipped",
} as const;

/** Event channels: the last token of `dray.<orgId>.executions.<id>.<channel>`. */
export type EventChannel = "status" | "progress" | "log";
