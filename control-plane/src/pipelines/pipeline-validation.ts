/**
 * Checks of a pipeline's settings against the organisation's environments and
 * the source's entity snapshot, shared by create and update (which checks the
 * merged result). Every failure names the field and what to do.
 */
import { DrayError } from "@dray/common";
import { cachedSnapshotOf } from "../environments/entity-snapshots.js";
import { type EnvironmentRow, findEnvironment } from "../environments/environments-service.js";
import type { SchemaSnapshot } from "../environments/schema-snapshot.js";
import { validateFileSettings } from "../files/file-settings.js";
import type { Db } from "../store/open-store.js";
import {
  checkContinuousSettings,
  checkFilesQualityRules,
  checkFilesShape,
  checkFilesTarget,
} from "./mode-validation.js";
import {
  LOAD_ORDERS,
  type LoadOrder,
  type PipelineAction,
  type PipelineMode,
  type SourceKind,
  SUPPORTED_ACTIONS,
  TARGET_TRIGGERS,
  type TargetTriggers,
  type WriteStrategy,
} from "./pipeline-defaults.js";
import { type FieldQualityRule, type PipelineQualityRule, resolveQualityRules } from "./quality-rules.js";
import {
  type EffectiveTransformation,
  type PipelineTransformation,
  resolveTransformations,
} from "./transformations.js";

/** Every setting of a pipeline, as stored. */
export interface PipelineSettings {
  name: string;
  /**
   * `environment` (rows read by the source environment's agent) or `files`
   * (rows from uploaded files; no source environment). Settings frozen before
   * it existed lack it: read them as `environment`.
   */
  sourceKind?: SourceKind;
  /** The source environment; null for a `files` pipeline. */
  sourceEnvironmentId: string | null;
  targetEnvironmentId: string;
  action: PipelineAction;
  writeStrategy: WriteStrategy;
  entities: string[];
  batchSize: number;
  batchBytes: number;
  maxRetriesPerBatch: number;
  stopOnError: boolean;
  entityConcurrency: number;
  /**
   * `off`: writes run with the target's user triggers and rules off and the agent
   * checks foreign keys; `fire`: triggers fire. Settings frozen into executions
   * before it existed lack it: read them as `off`.
   */
  targetTriggers: TargetTriggers;
  /**
   * `dependencies`: entities load once the entities they reference are loaded;
   * `parallel`: all at once, references checked after load. Settings frozen into
   * executions before it existed lack it: read them as `dependencies`.
   */
  loadOrder: LoadOrder;
  /**
   * Field transformations of an `action: "transform"` pipeline, as the user set
   * them; empty otherwise. Settings frozen into executions before it existed
   * lack it: read them as none.
   */
  transformations?: PipelineTransformation[];
  /**
   * Data-quality rules checked by the source agent on every row read (any
   * action); rows that fail are skipped and reported. Settings frozen into
   * executions before they existed lack them: read them as none.
   */
  qualityRules?: PipelineQualityRule[];
  /** `once` or `continuous`; absent in older settings: `once`. */
  mode?: PipelineMode;
  /** Continuous mode: the cursor field; null = the row key. */
  cursorField?: string | null;
  /** Continuous mode: wait between polls that found nothing new. */
  batchIntervalMs?: number;
  /** Continuous mode: the safety lag of date/time cursors. */
  safetyLagMs?: number;
  /** Continuous mode: consecutive failed polls before the pipeline pauses itself. */
  maxFailedPolls?: number;
  /** Continuous mode: reconcile deletes every N polls; 0 = on demand only. */
  reconcileEveryPolls?: number;
  /** A `files` pipeline's format and field mapping (files/file-settings.ts); null otherwise. */
  fileSettings?: Record<string, unknown> | null;
}

/** A validation problem at a field path, as in `details.issues` of a 400. */
interface Issue {
  path: string;
  message: string;
}

function invalid(message: string, issues: Issue[]): DrayError {
  return new DrayError("invalid_argument", message, { details: { issues } });
}

/**
 * The `failed_precondition` error for an environment without a cached entity
 * snapshot whose agent is not connected (with a connected agent the snapshot
 * is fetched instead, see `ensureEntitySnapshot`).
 *
 * @example
 * if (!(await ensureEntitySnapshot(db, agents, env, { now }))) throw noSnapshot(env);
 */
export function noSnapshot(environment: Pick<EnvironmentRow, "id" | "name">): DrayError {
  return new DrayError(
    "failed_precondition",
    `environment ${environment.name} (${environment.id}) has no entity snapshot yet and no agent of it is ` +
      `connected: start its dray-agent (paired with the environment's enrollment token) and retry once the ` +
      `environment is healthy; the snapshot is then fetched from the agent automatically`,
    { details: { environmentId: environment.id, reason: "no_entity_snapshot" } },
  );
}

/**
 * Checks `settings` and returns the two environments and the source snapshot.
 * Throws `invalid_argument` for an unsupported action, an unknown
 * targetTriggers or loadOrder, duplicate entities,
 * environments unknown in the organisation, source = target, different
 * platforms, entities the source does not have or transformations that do
 * not hold (see `resolveTransformations`); `failed_precondition` when
 * the source has no entity snapshot yet (fetch it first with
 * `ensureEntitySnapshot` when its agent is connected).
 */
export async function validatePipelineSettings(
  db: Pick<Db, "select">,
  organisationId: string,
  settings: PipelineSettings,
): Promise<{
  /** Null for a `files` pipeline. */
  source: EnvironmentRow | null;
  target: EnvironmentRow;
  /** Null for a `files` pipeline. */
  sourceSnapshot: SchemaSnapshot | null;
  /** The effective transformations per entity (empty unless the action is transform). */
  transformations: Map<string, EffectiveTransformation[]>;
  /** The data-quality rules per entity (only entities with one). */
  qualityRules: Map<string, FieldQualityRule[]>;
}> {
  if (!SUPPORTED_ACTIONS.includes(settings.action)) {
    throw invalid(`action "${settings.action}" is not supported yet: use "copy" or "transform"`, [
      { path: "action", message: "not supported yet" },
    ]);
  }
  if (!TARGET_TRIGGERS.includes(settings.targetTriggers)) {
    throw invalid(`targetTriggers "${settings.targetTriggers}" is not known: use "off" or "fire"`, [
      { path: "targetTriggers", message: 'must be "off" or "fire"' },
    ]);
  }
  if (!LOAD_ORDERS.includes(settings.loadOrder)) {
    throw invalid(`loadOrder "${settings.loadOrder}" is not known: use "dependencies" or "parallel"`, [
      { path: "loadOrder", message: 'must be "dependencies" or "parallel"' },
    ]);
  }
  assertNoDuplicates(settings.entities);
  if (settings.sourceKind === "files") return validateFilesPipeline(db, organisationId, settings);
  if (!settings.sourceEnvironmentId) {
    throw invalid('sourceEnvironmentId is required (or set source "files" for a pipeline fed by uploads)', [
      { path: "sourceEnvironmentId", message: "required" },
    ]);
  }

  const [source, target] = await Promise.all([
    findEnvironment(db, organisationId, settings.sourceEnvironmentId),
    findEnvironment(db, organisationId, settings.targetEnvironmentId),
  ]);
  const unknown: Issue[] = [];
  if (!source) unknown.push({ path: "sourceEnvironmentId", message: settings.sourceEnvironmentId });
  if (!target) unknown.push({ path: "targetEnvironmentId", message: settings.targetEnvironmentId });
  if (!source || !target) {
    const issues = unknown.map((u) => ({
      path: u.path,
      message: `environment ${u.message} was not found in this organisation`,
    }));
    throw invalid(issues.map((i) => `${i.path}: ${i.message}`).join("; "), issues);
  }
  if (source.id === target.id) {
    throw invalid(
      `sourceEnvironmentId and targetEnvironmentId are the same environment (${source.name}): a pipeline copies between two environments`,
      [{ path: "targetEnvironmentId", message: "must differ from sourceEnvironmentId" }],
    );
  }
  if (source.platform !== target.platform) {
    throw invalid(
      `source environment ${source.name} (${source.platform}) and target environment ${target.name} (${target.platform}) must share a platform`,
      [
        {
          path: "targetEnvironmentId",
          message: `platform ${target.platform} differs from the source's ${source.platform}`,
        },
      ],
    );
  }

  const sourceSnapshot = cachedSnapshotOf(source);
  if (!sourceSnapshot) throw noSnapshot(source);
  const known = new Set(sourceSnapshot.entities.map((e) => e.entity));
  const missing = settings.entities.flatMap((entity, i) => (known.has(entity) ? [] : [{ entity, i }]));
  if (missing.length > 0) {
    throw invalid(
      `${missing.length === 1 ? "entity" : "entities"} ${missing.map((m) => m.entity).join(", ")} ` +
        `${missing.length === 1 ? "does" : "do"} not exist in source environment ${source.name}` +
        ` (snapshot of ${sourceSnapshot.capturedAt}; refresh it if the schema changed since)`,
      missing.map((m) => ({
        path: `entities.${m.i}`,
        message: `${m.entity} is not in the source's entity snapshot`,
      })),
    );
  }
  const transformations = resolveTransformations(
    settings.action,
    settings.entities,
    settings.transformations ?? [],
    sourceSnapshot,
  );
  const qualityRules = resolveQualityRules(settings.entities, settings.qualityRules ?? [], sourceSnapshot);
  checkContinuousSettings(settings, sourceSnapshot);
  return { source, target, sourceSnapshot, transformations, qualityRules };
}

/** The checks of a `files` pipeline: its shape, file settings, target environment and entity, data-quality rules. */
async function validateFilesPipeline(
  db: Pick<Db, "select">,
  organisationId: string,
  settings: PipelineSettings,
): ReturnType<typeof validatePipelineSettings> {
  checkFilesShape(settings);
  const files = validateFileSettings(settings.fileSettings);
  const target = await findEnvironment(db, organisationId, settings.targetEnvironmentId);
  if (!target) {
    const message = `environment ${settings.targetEnvironmentId} was not found in this organisation`;
    throw invalid(`targetEnvironmentId: ${message}`, [{ path: "targetEnvironmentId", message }]);
  }
  const targetSnapshot = cachedSnapshotOf(target);
  if (!targetSnapshot) throw noSnapshot(target);
  checkFilesTarget(settings, targetSnapshot, target.name, files.fieldMapping);
  const qualityRules = checkFilesQualityRules(settings, targetSnapshot, files.fieldMapping);
  return { source: null, target, sourceSnapshot: null, transformations: new Map(), qualityRules };
}

/** Throws `invalid_argument` naming each entity selected more than once. */
function assertNoDuplicates(entities: readonly string[]): void {
  const first = new Map<string, number>();
  const duplicates = new Set<string>();
  const issues: Issue[] = [];
  entities.forEach((entity, i) => {
    const seen = first.get(entity);
    if (seen === undefined) {
      first.set(entity, i);
      return;
    }
    duplicates.add(entity);
    issues.push({ path: `entities.${i}`, message: `${entity} is already selected at entities.${seen}` });
  });
  if (issues.length > 0) {
    throw invalid(`entities are selected more than once: ${[...duplicates].join(", ")}`, issues);
  }
}

/**
 * The pipeline's source environment id, for the work only a pipeline with a
 * source environment can do (plans, previews, once and continuous runs).
 *
 * @throws DrayError `failed_precondition` for a `files` pipeline, saying it `what`.
 */
export function requireSourceEnvironment(
  pipeline: Pick<PipelineSettings, "name" | "sourceEnvironmentId">,
  what: string,
): string {
  if (pipeline.sourceEnvironmentId) return pipeline.sourceEnvironmentId;
  throw new DrayError(
    "failed_precondition",
    `pipeline ${pipeline.name} loads uploaded files and ${what}: upload files with POST /api/v1/pipeline/upload ` +
      "(dray upload) and follow them with GET /api/v1/pipelines/{id}/files",
    { details: { sourceKind: "files" } },
  );
}
