import type { Logger } from "@dray/common";
import type { EventBus } from "../events/event-bus.js";
import type { AgentSessions } from "../gateway/agent-sessions.js";
import type { PipelineSettings } from "../pipelines/pipeline-validation.js";
import type { Db } from "../store/db.js";
import type { EntityCounters } from "./progress-math.js";

/** How one entity is read and written, fixed at preflight. */
export interface EntityRunPlan {
  entity: string;
  schema: string;
  name: string;
  level: number;
  keyFields: string[];
  /** Fields copied, in order (non-generated fields present on both sides). */
  fields: string[];
  /** Reference fields loaded NULL in pass 1 and back-filled in pass 2. */
  deferredFields: string[];
}

/** The plan stored in the execution's snapshot (`snapshot.plan`) so a resumed run follows it. */
export interface ExecutionPlan {
  levels: string[][];
  entities: EntityRunPlan[];
  sourcePlatform: "postgres" | "mysql";
  targetPlatform: "postgres" | "mysql";
  targetName: string;
  sourceName: string;
}

/** One stage-log entry (seed 02's vocabulary). */
export interface StageEntry {
  processName: string;
  state: "begin" | "processing" | "end" | "error";
  code: string;
  description: string;
  entity?: string;
}

/** One error or warning of an execution. */
export interface ErrorEntry {
  severity: "error" | "warning";
  entity?: string;
  recordKey?: string[] | null;
  field?: string | null;
  code?: string | null;
  message: string;
}

/** Where an execution writes its stage log, errors and events (store + bus). */
export interface Journal {
  stage(entry: StageEntry): Promise<void>;
  error(entry: ErrorEntry): Promise<void>;
  /** Publishes a status event. */
  status(status: string, extra?: Record<string, unknown>): Promise<void>;
  /** Publishes a progress event. */
  progress(body: Record<string, unknown>): Promise<void>;
}

/** Everything a running execution needs, passed down explicitly. */
export interface RunContext {
  db: Db;
  bus: EventBus;
  sessions: AgentSessions;
  logger: Logger;
  executionId: string;
  organisationId: string;
  pipelineToken: string;
  settings: PipelineSettings;
  plan: ExecutionPlan;
  /** Aborts on cancel, lost lease or shutdown; `signal.reason` says which. */
  signal: AbortSignal;
  /** Live counters per entity (mirrors execution_entities). */
  counters: Map<string, EntityCounters>;
  /** Called after every batch; emits throttled progress. */
  onProgress(): void;
  /** Deadline for one agent task. */
  taskTimeoutMs: number;
  /**
   * How long a task waits for an agent that is away (disconnected, draining)
   * before the run fails with `agent_unavailable`: the time after which its
   * environment turns unhealthy (health-rules.ts `staleAfterMs`). Preflight
   * counts it from the agent's last heartbeat, the copier from when it left.
   */
  agentAwayLimitMs: number;
  /** Write batches of one entity in flight at once (commits are settled in order). */
  writesInFlight: number;
  journal: Journal;
}

export type { PipelineSettings };
