/**
 * Defaults and bounds of a pipeline's options (batch sizing, retries, concurrency).
 * The API schema, the service and the executor all read them from here.
 */

/**
 * Rows per batch when a pipeline does not say. Chosen by measurement with the
 * benchmarks in `bench/` (throughput against commit size and memory; see
 * bench/RESULTS.md, 2026-11-25 03:00: 10k rows gave 0.73× the COPY pipe, 25k
 * 0.79×, 50k 0.84×, with every process under 240 MiB). The byte budget
 * (`DEFAULT_BATCH_BYTES`) still caps batches of wide rows. Tune it there, not
 * by guesswork, when the executor or the agents change.
 */
export const DEFAULT_BATCH_SIZE = 50_000;
/** Smallest and largest `batchSize`. */
export const MIN_BATCH_SIZE = 1;
export const MAX_BATCH_SIZE = 100_000;

/** Byte budget of a batch's row data when a pipeline does not say (8 MiB). */
export const DEFAULT_BATCH_BYTES = 8 * 1024 * 1024;
/** Smallest (64 KiB) and largest (48 MiB, under the agent protocol's message limit) `batchBytes`. */
export const MIN_BATCH_BYTES = 64 * 1024;
export const MAX_BATCH_BYTES = 48 * 1024 * 1024;

/** Retries of a batch after a retryable error (DESIGN §5: default 4). */
export const DEFAULT_MAX_RETRIES_PER_BATCH = 4;
export const MAX_RETRIES_PER_BATCH = 20;

/** Whether a batch that still fails after its retries fails the execution. */
export const DEFAULT_STOP_ON_ERROR = true;

/**
 * Entities copied at once (each as soon as the entities it references are
 * loaded). Four keep two cores busy on schemas of many small tables while
 * bounding memory: each entity has one read and two writes in flight.
 */
export const DEFAULT_ENTITY_CONCURRENCY = 4;
export const MAX_ENTITY_CONCURRENCY = 16;

/** Longest pipeline name and largest entity selection. */
export const MAX_PIPELINE_NAME_LENGTH = 100;
export const MAX_PIPELINE_ENTITIES = 500;
/** Most transformation rules of one pipeline. */
export const MAX_PIPELINE_TRANSFORMATIONS = 1000;

/** The most data-quality rules a pipeline may hold. */
export const MAX_PIPELINE_QUALITY_RULES = 1000;

/** Actions a pipeline may name, and the ones supported so far. */
export const PIPELINE_ACTIONS = ["copy", "transform", "delete"] as const;
export type PipelineAction = (typeof PIPELINE_ACTIONS)[number];
export const SUPPORTED_ACTIONS: readonly PipelineAction[] = ["copy", "transform"];

/** Write strategies (DESIGN §2). */
export const WRITE_STRATEGIES = ["insert", "merge", "clean"] as const;
export type WriteStrategy = (typeof WRITE_STRATEGIES)[number];

/**
 * What the target's user triggers and rules do while a run writes (issue 10):
 * `off` (the default) writes with them off, like pg_restore --disable-triggers,
 * the agent checking foreign keys itself; `fire` lets them fire for every row.
 */
export const TARGET_TRIGGERS = ["off", "fire"] as const;
export type TargetTriggers = (typeof TARGET_TRIGGERS)[number];
export const DEFAULT_TARGET_TRIGGERS: TargetTriggers = "off";

/**
 * How a run orders its entities: `dependencies` (the default) loads an entity once
 * the entities it references are loaded; `parallel` loads every entity at once,
 * like pg_restore, writing each reference between selected entities unchecked and
 * validating them all once everything is loaded (needs targetTriggers `off`).
 */
export const LOAD_ORDERS = ["dependencies", "parallel"] as const;
export type LoadOrder = (typeof LOAD_ORDERS)[number];
export const DEFAULT_LOAD_ORDER: LoadOrder = "dependencies";

/** Where a pipeline's rows come from: an environment's agent, or uploaded files. */
export const SOURCE_KINDS = ["environment", "files"] as const;
export type SourceKind = (typeof SOURCE_KINDS)[number];

/**
 * `once` (the default): a run copies what is there and ends. `continuous`: one
 * long-lived execution copies batch after batch of new and changed rows until
 * stopped (seed 03's START / STOP PIPELINE).
 */
export const PIPELINE_MODES = ["once", "continuous"] as const;
export type PipelineMode = (typeof PIPELINE_MODES)[number];

/** Continuous mode: the wait between polls that found nothing new (seed 03's BATCH_INTERVAL). */
export const DEFAULT_BATCH_INTERVAL_MS = 2_500;
export const MIN_BATCH_INTERVAL_MS = 100;
export const MAX_BATCH_INTERVAL_MS = 3_600_000;

/**
 * Continuous mode: rows whose date/time cursor is newer than now() minus this
 * lag are left for a later poll, so that a transaction committing late is
 * still seen.
 */
export const DEFAULT_SAFETY_LAG_MS = 5_000;
export const MAX_SAFETY_LAG_MS = 3_600_000;

/** Continuous mode: consecutive failed polls after which the pipeline pauses itself. */
export const DEFAULT_MAX_FAILED_POLLS = 5;
export const MAX_MAX_FAILED_POLLS = 1_000;

/** Continuous mode: reconcile deletes every N polls; 0 (the default) only when asked for. */
export const DEFAULT_RECONCILE_EVERY_POLLS = 0;
export const MAX_RECONCILE_EVERY_POLLS = 1_000_000;
