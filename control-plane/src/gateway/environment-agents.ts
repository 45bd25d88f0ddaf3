import type { ReadBatchResult } from "@dray/proto";
import type { SchemaSnapshot } from "../environments/schema-snapshot.js";
import type { TaskPayload } from "./agent-sessions.js";

/** Result of a live round trip to an environment's agent and database. */
export interface ConnectionTest {
  /** Control plane → agent → database → control plane, in ms. */
  roundTripMs: number;
  databaseLatencyMs: number;
  serverVersion: string;
  databaseName: string;
}

/**
 * What the HTTP API may ask of an environment's agent. Implemented by the agent
 * gateway. Each call rejects with a DrayError: `unavailable` when no agent of
 * the environment is connected (message says so and what to check), or the
 * agent's own error.
 */
export interface EnvironmentAgents {
  isConnected(environmentId: string): boolean;
  testConnection(environmentId: string, signal?: AbortSignal): Promise<ConnectionTest>;
  /**
   * The environment's schema. `statisticsOnly`: row estimates from the planner
   * statistics alone (no count or sample of never-analysed tables).
   */
  describeSchema(
    environmentId: string,
    signal?: AbortSignal,
    options?: { statisticsOnly?: boolean },
  ): Promise<SchemaSnapshot>;
  /** One page of rows (transformed when the task carries transforms); used by the pipeline preview. */
  readBatch?(
    environmentId: string,
    task: TaskPayload<"readBatch">,
    signal?: AbortSignal,
  ): Promise<ReadBatchResult>;
}
