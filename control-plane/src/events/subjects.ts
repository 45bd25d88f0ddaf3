/** NATS subjects of Dray's events (docs/architecture.md §6). Ids are UUIDs, so they are safe subject tokens. */
export const subjects = {
  environmentHealth: (orgId: string, environmentId: string) =>
    `dray.${orgId}.environments.${environmentId}.health`,
  executionStatus: (orgId: string, executionId: string) => `dray.${orgId}.executions.${executionId}.status`,
  executionProgress: (orgId: string, executionId: string) =>
    `dray.${orgId}.executions.${executionId}.progress`,
  executionLog: (orgId: string, executionId: string) => `dray.${orgId}.executions.${executionId}.log`,
} as const;

/** JetStream stream holding every event. */
export const EVENTS_STREAM = "DRAY_EVENTS";
export const EVENTS_SUBJECTS = "dray.>";

/** The channel of an execution event: the last token of its subject. */
export type ExecutionEventChannel = "status" | "progress" | "log";

/** The subject of an execution event: `dray.<orgId>.executions.<id>.<channel>`. */
export function executionEventSubject(
  channel: ExecutionEventChannel,
  orgId: string,
  executionId: string,
): string {
  return `dray.${orgId}.executions.${executionId}.${channel}`;
}

/** The JetStream deduplication id of an execution event: `<executionId>:<seq>`. */
export function executionEventMsgId(executionId: string, seq: number): string {
  return `${executionId}:${seq}`;
}
