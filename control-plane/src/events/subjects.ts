/** NATS subjects of Dray's events (DESIGN.md §5). Ids are UUIDs, so they are safe subject tokens. */
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
