import type { Logger } from "@dray/common";
import type { EntityKind } from "../environments/schema-snapshot.js";
import type { EventBus } from "../events/event-bus.js";
import type { LoadOrder, TargetTriggers } from "../pipelines/pipeline-defaults.js";
import type { PipelineSettings } from "../pipelines/pipeline-validation.js";
import type { Db } from "../store/db.js";
import type { AgentPort, SequenceChecked } from "./agent-port.js";
import type { ExecutorTunables } from "./executor-options.js";
import type { EntityCounters } from "./progress-math.js";

/**
 * How one entity is read and written, fixed at preflight. Plans stored before a
 * field existed lack it: read them through {@link entityRunPlanDefaults}.
 */
export interface EntityRunPlan {
  entity: string;
  schema: string;
  name: string;
  level: number;
  /**
   * The row key (primary key, else a unique key of NOT NULL fields): keyset reads,
   * merges and back-fills use it. Empty for an entity without one (insert or clean
   * only): read in one consistent snapshot in physical order.
   */
  keyFields: string[];
  /** Fields copied, in order (non-generated fields present on both sides). */
  fields: string[];
  /** Reference fields loaded NULL in pass 1 and back-filled in pass 2. */
  deferredFields: string[];
  /**
   * Constraint names of the entity's postponed references (NOT NULL references of a
   * cycle or self-references, with targetTriggers off): written without their check
   * (WriteBatchTask.unchecked_references) and validated after load (see
   * `ExecutionPlan.postponed`). Absent in older plans: none.
   */
  uncheckedReferences?: string[];
  /**
   * References the source enforces for every row, to entities of the run, that a
   * write need not check again while the run reads in one source snapshot and the
   * referenced entity was copied whole in it (see run-snapshot.ts). Absent in
   * older plans: none.
   */
  trustedReferences?: { name: string; referencedEntity: string }[];
  /**
   * Entities that must be loaded (pass 1) before this one starts: the ones it
   * references, except through deferred or postponed references. Absent in
   * plans stored before it existed: every entity of a lower level.
   */
  dependsOn?: string[];
  /** Absent in older plans: `table`. */
  kind?: EntityKind;
  /**
   * The entity's total at preflight is the source's planner estimate, not a
   * count (a large table whose most possible rows fit the monthly limit): it is
   * set to the rows read once the entity's first pass ends. Absent: counted.
   */
  totalEstimated?: boolean;
  /**
   * Field transformations the source agent applies while reading
   * (ReadBatchTask.transforms; `options` goes as options_json): the pipeline's
   * rules on this entity plus those carried over from referenced keys. Empty
   * for a copy; absent in older plans: none.
   */
  transforms?: { field: string; transformer: string; options: Record<string, unknown> }[];
  /**
   * Data-quality rules the source agent checks on every row it reads
   * (ReadBatchTask.quality_rules); rows that fail are not returned but reported
   * (ReadBatchResult.rejected_records). Absent: none.
   */
  qualityRules?: { field: string; rule: string; options: Record<string, unknown> }[];
  /**
   * Continuous pipelines: the read order, the cursor field then the row key's
   * other fields. Reads go by it (with the agent's high-water mark), writes
   * merge by `keyFields`, and checkpoints are positions in it. Absent for once runs.
   */
  cursorKey?: string[];
}

/** A reference written unchecked and validated once every entity it joins is loaded. */
export interface PostponedReference {
  /** The referencing entity (FinishEntityTask.check_references runs on it). */
  entity: string;
  /** Constraint name. */
  reference: string;
  referencedEntity: string;
}

/**
 * The plan stored in the execution's snapshot (`snapshot.plan`) so a resumed run
 * follows it. Fields added later are optional: absent in older stored plans.
 */
export interface ExecutionPlan {
  levels: string[][];
  entities: EntityRunPlan[];
  /**
   * Every postponed reference, to validate (FinishEntityTask.check_references) once
   * both its entity and its referenced entity are loaded. The entities they join
   * form NOT NULL cycles (or, with loadOrder parallel, are any selected entities
   * referencing each other): clean them with CleanEntityTask.suspend_references.
   * Absent in older plans: none.
   */
  postponed?: PostponedReference[];
  /**
   * The pipeline's targetTriggers the plan was made for (WriteBatchTask.fire_triggers
   * is `targetTriggers === "fire"`). Absent in older plans: the frozen settings', else `off`.
   */
  targetTriggers?: TargetTriggers;
  /**
   * The pipeline's loadOrder the plan was made for. With `parallel` every reference
   * between selected entities is postponed, so no entity depends on another and all
   * form one level. Absent in older plans: `dependencies`.
   */
  loadOrder?: LoadOrder;
  sourcePlatform: "postgres" | "mysql";
  targetPlatform: "postgres" | "mysql";
  targetName: string;
  sourceName: string;
}

/**
 * The fields an entity plan gained after plans were first stored, with their
 * defaults filled in (a resumed run of an older plan).
 *
 * @example
 * const { uncheckedReferences, kind } = entityRunPlanDefaults(entity); // [] and "table" for an old plan
 */
export function entityRunPlanDefaults(
  entity: EntityRunPlan,
): Required<Pick<EntityRunPlan, "uncheckedReferences" | "kind" | "transforms">> {
  return {
    uncheckedReferences: entity.uncheckedReferences ?? [],
    kind: entity.kind ?? "table",
    transforms: entity.transforms ?? [],
  };
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
  /** Records many errors at once (a batch's rejected records): all stored, the first few announced live. */
  errors(entries: readonly ErrorEntry[]): Promise<void>;
  /** Publishes a status event. */
  status(status: string, extra?: Record<string, unknown>): Promise<void>;
  /** Publishes a progress event. */
  progress(body: Record<string, unknown>): Promise<void>;
  /** Resolves once every entry made so far is written (entries are written behind the copy). */
  flush(): Promise<void>;
}

/** Everything a running execution needs, passed down explicitly. */
export interface RunContext {
  db: Db;
  bus: EventBus;
  /** The only way to the agents (gateway-agent-port.ts; a fake in the executor's unit tests). */
  agents: AgentPort;
  logger: Logger;
  executionId: string;
  organisationId: string;
  pipelineToken: string;
  settings: PipelineSettings;
  plan: ExecutionPlan;
  /** Aborts on cancel, lost lease or shutdown; `signal.reason` says which. */
  signal: AbortSignal;
  /** Continuous runs: fires when a stop was asked for (the run ends at a batch boundary, completed). */
  stop?: AbortSignal;
  /** Live counters per entity (mirrors execution_entities). */
  counters: Map<string, EntityCounters>;
  /** Called after every batch; emits throttled progress. */
  onProgress(): void;
  /**
   * The executor's timeouts and limits (executor-options.ts). Preflight counts
   * `agentAwayLimitMs` from the agent's last heartbeat, the copier from when it left.
   */
  options: Readonly<ExecutorTunables>;
  journal: Journal;
  /** A fresh run's snapshot of the source, which every read of the run shares (run-snapshot.ts). */
  snapshot?: RunSnapshot;
  /**
   * Set by runs that move each entity's sequences once it is loaded: its
   * last write of pass 1 asks the agent to move them, and the moves it
   * reports land here by entity; an entity missing here gets a finish task.
   */
  sequenceMoves?: Map<string, readonly SequenceChecked[]>;
}

/** The source snapshot a run reads in, and what it has let the run trust. */
export interface RunSnapshot {
  /** ReadBatchTask.snapshot_id. */
  id: string;
  /** Set once a read found it gone: later reads go without it, and every reference is checked again. */
  lost: boolean;
  /** Entities whose pass 1 ended with every row read in the snapshot written (none skipped or failed). */
  loadedWhole: Set<string>;
}

export type { PipelineSettings };
