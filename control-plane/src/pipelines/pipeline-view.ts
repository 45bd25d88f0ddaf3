/** The API's JSON view of a pipeline, with whether it runs and its latest execution. */
import { and, desc, inArray } from "drizzle-orm";
import { cachedSnapshotOf } from "../environments/entity-snapshots.js";
import type { Db } from "../store/open-store.js";
import { environments, executions, type pipelines } from "../store/schema.js";
import type { PipelineQualityRule } from "./quality-rules.js";
import {
  type EffectiveTransformation,
  effectiveTransformations,
  type PipelineTransformation,
} from "./transformations.js";

/** A stored pipeline. */
export type PipelineRow = typeof pipelines.$inferSelect;

/** The latest execution of a pipeline, as the pipeline view shows it. */
export interface LastExecutionView {
  id: string;
  status: (typeof executions.$inferSelect)["status"];
  pipelineToken: string;
  createdAt: string;
}

/** What a pipeline view says about its executions. */
export interface PipelineActivity {
  /** True while an execution is queued or in progress. */
  running: boolean;
  lastExecution: LastExecutionView | null;
}

/** A `files` pipeline's settings as stored (validated on save by files/file-settings.ts). */
export interface FileSettingsView {
  format: "csv" | "ndjson";
  delimiter?: string;
  quote?: string;
  fieldMapping?: Record<string, string>;
}

/** A pipeline as the API shows it; timestamps are ISO strings. */
export interface PipelineView extends PipelineActivity {
  id: string;
  organisationId: string;
  name: string;
  /** `environment` or `files` (rows from uploads). */
  sourceKind: PipelineRow["sourceKind"];
  /** Null for a `files` pipeline. */
  sourceEnvironmentId: string | null;
  targetEnvironmentId: string;
  action: PipelineRow["action"];
  writeStrategy: PipelineRow["writeStrategy"];
  entities: string[];
  /** `once` or `continuous`, with the continuous settings (ignored by once pipelines). */
  mode: PipelineRow["mode"];
  cursorField: string | null;
  batchIntervalMs: number;
  safetyLagMs: number;
  maxFailedPolls: number;
  reconcileEveryPolls: number;
  /** A `files` pipeline's format and field mapping; null otherwise. */
  fileSettings: FileSettingsView | null;
  batchSize: number;
  batchBytes: number;
  maxRetriesPerBatch: number;
  stopOnError: boolean;
  entityConcurrency: number;
  /** What the target's user triggers and rules do during a load: `off` (the default) or `fire`. */
  targetTriggers: PipelineRow["targetTriggers"];
  /** How a run orders its entities: `dependencies` (the default) or `parallel`. */
  loadOrder: PipelineRow["loadOrder"];
  /** The transformation rules as set; only for action `transform` (a copy's view is unchanged). */
  transformations?: PipelineTransformation[];
  /**
   * What a run would transform, per field: the rules plus the transformers
   * carried over to referencing fields (`propagatedFrom`), from the source's
   * cached snapshot; null when they cannot be worked out (no snapshot, or the
   * schema changed under a rule: the plan says why). Only for action `transform`.
   */
  effectiveTransformations?: (EffectiveTransformation & { entity: string })[] | null;
  /** The data-quality rules as set; absent when there are none. */
  qualityRules?: PipelineQualityRule[];
  createdAt: string;
  updatedAt: string;
}

const IDLE: PipelineActivity = { running: false, lastExecution: null };

/** The API view of a stored pipeline; `effective` as {@link effectiveOf} works it out (default: none). */
export function toPipelineView(
  row: PipelineRow,
  activity: PipelineActivity = IDLE,
  effective: PipelineView["effectiveTransformations"] = null,
): PipelineView {
  return {
    id: row.id,
    organisationId: row.organisationId,
    name: row.name,
    sourceKind: row.sourceKind,
    sourceEnvironmentId: row.sourceEnvironmentId,
    targetEnvironmentId: row.targetEnvironmentId,
    action: row.action,
    writeStrategy: row.writeStrategy,
    entities: [...row.entities],
    mode: row.mode,
    cursorField: row.cursorField,
    batchIntervalMs: row.batchIntervalMs,
    safetyLagMs: row.safetyLagMs,
    maxFailedPolls: row.maxFailedPolls,
    reconcileEveryPolls: row.reconcileEveryPolls,
    fileSettings: row.fileSettings
      ? (structuredClone(row.fileSettings) as unknown as FileSettingsView)
      : null,
    batchSize: row.batchSize,
    batchBytes: row.batchBytes,
    maxRetriesPerBatch: row.maxRetriesPerBatch,
    stopOnError: row.stopOnError,
    entityConcurrency: row.entityConcurrency,
    targetTriggers: row.targetTriggers,
    loadOrder: row.loadOrder,
    ...(row.action === "transform"
      ? {
          transformations: (row.transformations ?? []).map((t) => ({ ...t, options: { ...t.options } })),
          effectiveTransformations: effective ?? null,
        }
      : {}),
    ...((row.qualityRules ?? []).length > 0
      ? { qualityRules: row.qualityRules.map((r) => ({ ...r, options: { ...r.options } })) }
      : {}),
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
    running: activity.running,
    lastExecution: activity.lastExecution,
  };
}

/**
 * Whether each pipeline runs and its latest execution, in two queries whatever
 * the number of pipelines. Pipelines without executions are absent from the map.
 */
export async function pipelineActivity(
  db: Pick<Db, "select" | "selectDistinctOn">,
  pipelineIds: readonly string[],
): Promise<Map<string, PipelineActivity>> {
  const out = new Map<string, PipelineActivity>();
  if (pipelineIds.length === 0) return out;
  const ids = [...pipelineIds];
  const latest = await db
    .selectDistinctOn([executions.pipelineId], {
      pipelineId: executions.pipelineId,
      id: executions.id,
      status: executions.status,
      pipelineToken: executions.pipelineToken,
      createdAt: executions.createdAt,
    })
    .from(executions)
    .where(inArray(executions.pipelineId, ids))
    .orderBy(executions.pipelineId, desc(executions.createdAt), desc(executions.id));
  const active = await db
    .select({ pipelineId: executions.pipelineId })
    .from(executions)
    .where(and(inArray(executions.pipelineId, ids), inArray(executions.status, ["queued", "in_progress"])));
  const running = new Set(active.map((a) => a.pipelineId));
  for (const e of latest) {
    out.set(e.pipelineId, {
      running: running.has(e.pipelineId),
      lastExecution: {
        id: e.id,
        status: e.status,
        pipelineToken: e.pipelineToken,
        createdAt: e.createdAt.toISOString(),
      },
    });
  }
  return out;
}

/**
 * The effective transformations of each pipeline with rules, by pipeline id,
 * from the source environments' cached snapshots (one query); null for one
 * whose rules do not hold against its snapshot or without a snapshot.
 */
export async function effectiveOf(
  db: Pick<Db, "select">,
  rows: readonly PipelineRow[],
): Promise<Map<string, PipelineView["effectiveTransformations"]>> {
  const out = new Map<string, PipelineView["effectiveTransformations"]>();
  const transforming = rows.filter(
    (r): r is PipelineRow & { sourceEnvironmentId: string } =>
      (r.transformations ?? []).length > 0 && r.sourceEnvironmentId !== null,
  );
  if (transforming.length === 0) return out;
  const sourceIds = [...new Set(transforming.map((r) => r.sourceEnvironmentId))];
  const sources = await db.select().from(environments).where(inArray(environments.id, sourceIds));
  const byId = new Map(sources.map((e) => [e.id, e]));
  for (const row of transforming) {
    const env = byId.get(row.sourceEnvironmentId);
    const snapshot = env ? cachedSnapshotOf(env) : undefined;
    if (!snapshot) {
      out.set(row.id, null);
      continue;
    }
    try {
      const map = effectiveTransformations(row, snapshot);
      out.set(
        row.id,
        row.entities.flatMap((entity) => (map.get(entity) ?? []).map((t) => ({ entity, ...t }))),
      );
    } catch {
      out.set(row.id, null);
    }
  }
  return out;
}

/** The views of `rows`, with their activity and effective transformations. */
export async function toPipelineViews(
  db: Pick<Db, "select" | "selectDistinctOn">,
  rows: readonly PipelineRow[],
): Promise<PipelineView[]> {
  const activity = await pipelineActivity(
    db,
    rows.map((r) => r.id),
  );
  const effective = await effectiveOf(db, rows);
  return rows.map((row) => toPipelineView(row, activity.get(row.id), effective.get(row.id) ?? null));
}
