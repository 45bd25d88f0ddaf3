/**
 * Pipelines of an organisation: create, list, read, update, delete. Every
 * function is scoped to one organisation: a pipeline of another organisation is
 * `not_found`, exactly like a missing one. Callers check roles first.
 */
import { DrayError } from "@dray/common";
import { and, eq, inArray } from "drizzle-orm";
import { ensureEntitySnapshot } from "../environments/entity-snapshots.js";
import { findEnvironment } from "../environments/environments-service.js";
import type { EnvironmentAgents } from "../gateway/environment-agents.js";
import { isUuid, newId } from "../store/ids.js";
import type { Db } from "../store/open-store.js";
import { isUniqueViolation } from "../store/raw-sql.js";
import { executions, pipelines } from "../store/schema.js";
import {
  DEFAULT_BATCH_BYTES,
  DEFAULT_BATCH_INTERVAL_MS,
  DEFAULT_BATCH_SIZE,
  DEFAULT_ENTITY_CONCURRENCY,
  DEFAULT_LOAD_ORDER,
  DEFAULT_MAX_FAILED_POLLS,
  DEFAULT_MAX_RETRIES_PER_BATCH,
  DEFAULT_RECONCILE_EVERY_POLLS,
  DEFAULT_SAFETY_LAG_MS,
  DEFAULT_STOP_ON_ERROR,
  DEFAULT_TARGET_TRIGGERS,
} from "./pipeline-defaults.js";
import { type PipelineSettings, validatePipelineSettings } from "./pipeline-validation.js";
import type { PipelineRow } from "./pipeline-view.js";

/** Fields of a new pipeline; options left out take their defaults (pipeline-defaults.ts). */
export type CreatePipelineInput = Pick<
  PipelineSettings,
  "name" | "sourceEnvironmentId" | "targetEnvironmentId" | "writeStrategy" | "entities"
> & {
  [K in
    | "action"
    | "batchSize"
    | "batchBytes"
    | "maxRetriesPerBatch"
    | "stopOnError"
    | "entityConcurrency"
    | "targetTriggers"
    | "loadOrder"
    | "transformations"
    | "qualityRules"
    | "sourceKind"
    | "mode"
    | "cursorField"
    | "batchIntervalMs"
    | "safetyLagMs"
    | "maxFailedPolls"
    | "reconcileEveryPolls"
    | "fileSettings"]?: PipelineSettings[K] | undefined;
};

/** Fields an update may change; the merged result is validated like a new pipeline. */
export type UpdatePipelineInput = { [K in keyof PipelineSettings]?: PipelineSettings[K] | undefined };

/** The `not_found` error for a pipeline the caller may not see or that does not exist. */
export function pipelineNotFound(id: string): DrayError {
  return new DrayError("not_found", `pipeline ${id} was not found`);
}

function duplicateName(name: string): DrayError {
  return new DrayError("already_exists", `a pipeline named "${name}" already exists in this organisation`, {
    details: { name },
  });
}

function settingsOf(row: PipelineRow): PipelineSettings {
  const { name, sourceEnvironmentId, targetEnvironmentId, action, writeStrategy, entities } = row;
  const {
    batchSize,
    batchBytes,
    maxRetriesPerBatch,
    stopOnError,
    entityConcurrency,
    targetTriggers,
    loadOrder,
  } = row;
  const transformations = (row.transformations ?? []).map((t) => ({ ...t, options: { ...t.options } }));
  const qualityRules = (row.qualityRules ?? []).map((r) => ({ ...r, options: { ...r.options } }));
  const { sourceKind, mode, cursorField, batchIntervalMs, safetyLagMs, maxFailedPolls, reconcileEveryPolls } =
    row;
  const fileSettings = row.fileSettings ? structuredClone(row.fileSettings) : null;
  return {
    ...{
      sourceKind,
      mode,
      cursorField,
      batchIntervalMs,
      safetyLagMs,
      maxFailedPolls,
      reconcileEveryPolls,
      fileSettings,
    },
    ...{ name, sourceEnvironmentId, targetEnvironmentId, action, writeStrategy, entities: [...entities] },
    ...{
      batchSize,
      batchBytes,
      maxRetriesPerBatch,
      stopOnError,
      entityConcurrency,
      targetTriggers,
      loadOrder,
      transformations,
      qualityRules,
    },
  };
}

/** `settings` with the fields `patch` sets (undefined leaves a field as it is). */
function mergeSettings(settings: PipelineSettings, patch: UpdatePipelineInput): PipelineSettings {
  const merged: Record<string, unknown> = { ...settings };
  for (const key of Object.keys(settings)) {
    const value = patch[key as keyof PipelineSettings];
    if (value !== undefined) merged[key] = value;
  }
  return merged as unknown as PipelineSettings;
}

/**
 * Fetches the source environment's entity snapshot from its connected agent
 * when none is cached yet, so that a pipeline can be created right after its
 * environments turn healthy. Does nothing for an unknown environment (the
 * validation reports it) or without `agents`.
 */
async function prefetchSourceSnapshot(
  db: Db,
  organisationId: string,
  sourceEnvironmentId: string | null,
  agents: EnvironmentAgents | undefined,
  now: Date,
): Promise<void> {
  if (!agents || !sourceEnvironmentId) return;
  const source = await findEnvironment(db, organisationId, sourceEnvironmentId);
  if (source) await ensureEntitySnapshot(db, agents, source, { now: () => now });
}

/**
 * Creates a pipeline after {@link validatePipelineSettings}; `already_exists`
 * for a name taken in the organisation. With `agents`, a missing source
 * snapshot is first fetched from the source's connected agent.
 */
export async function createPipeline(
  db: Db,
  organisationId: string,
  input: CreatePipelineInput,
  now: Date,
  agents?: EnvironmentAgents,
): Promise<PipelineRow> {
  const settings: PipelineSettings = {
    name: input.name,
    sourceEnvironmentId: input.sourceEnvironmentId,
    targetEnvironmentId: input.targetEnvironmentId,
    action: input.action ?? "copy",
    writeStrategy: input.writeStrategy,
    entities: [...input.entities],
    batchSize: input.batchSize ?? DEFAULT_BATCH_SIZE,
    batchBytes: input.batchBytes ?? DEFAULT_BATCH_BYTES,
    maxRetriesPerBatch: input.maxRetriesPerBatch ?? DEFAULT_MAX_RETRIES_PER_BATCH,
    stopOnError: input.stopOnError ?? DEFAULT_STOP_ON_ERROR,
    entityConcurrency: input.entityConcurrency ?? DEFAULT_ENTITY_CONCURRENCY,
    targetTriggers: input.targetTriggers ?? DEFAULT_TARGET_TRIGGERS,
    loadOrder: input.loadOrder ?? DEFAULT_LOAD_ORDER,
    transformations: (input.transformations ?? []).map((t) => ({ ...t, options: t.options ?? {} })),
    qualityRules: (input.qualityRules ?? []).map((r) => ({ ...r, options: r.options ?? {} })),
    sourceKind: input.sourceKind ?? "environment",
    mode: input.mode ?? "once",
    cursorField: input.cursorField ?? null,
    batchIntervalMs: input.batchIntervalMs ?? DEFAULT_BATCH_INTERVAL_MS,
    safetyLagMs: input.safetyLagMs ?? DEFAULT_SAFETY_LAG_MS,
    maxFailedPolls: input.maxFailedPolls ?? DEFAULT_MAX_FAILED_POLLS,
    reconcileEveryPolls: input.reconcileEveryPolls ?? DEFAULT_RECONCILE_EVERY_POLLS,
    fileSettings: input.fileSettings ?? null,
  };
  // A files pipeline's target snapshot is what its entity is checked against.
  await prefetchSourceSnapshot(
    db,
    organisationId,
    settings.sourceKind === "files" ? settings.targetEnvironmentId : settings.sourceEnvironmentId,
    agents,
    now,
  );
  await validatePipelineSettings(db, organisationId, settings);
  try {
    const [row] = await db
      .insert(pipelines)
      .values({ id: newId(), organisationId, ...settings, createdAt: now, updatedAt: now })
      .returning();
    return row!;
  } catch (error) {
    if (isUniqueViolation(error)) throw duplicateName(settings.name);
    throw error;
  }
}

/** The organisation's pipeline with this id, or undefined (also for ids that are not UUIDs). */
export async function findPipeline(
  db: Pick<Db, "select">,
  organisationId: string,
  id: string,
): Promise<PipelineRow | undefined> {
  if (!isUuid(id)) return undefined;
  const [row] = await db
    .select()
    .from(pipelines)
    .where(and(eq(pipelines.id, id), eq(pipelines.organisationId, organisationId)))
    .limit(1);
  return row;
}

/** The organisation's pipeline with this id; `not_found` otherwise. */
export async function getPipeline(
  db: Pick<Db, "select">,
  organisationId: string,
  id: string,
): Promise<PipelineRow> {
  const row = await findPipeline(db, organisationId, id);
  if (!row) throw pipelineNotFound(id);
  return row;
}

/**
 * Locks the pipeline row (so no execution can be inserted for it meanwhile: the
 * insert's foreign-key check waits) and refuses while one is queued or in progress.
 */
async function lockIdle(tx: Pick<Db, "select">, organisationId: string, id: string, doing: string) {
  if (!isUuid(id)) throw pipelineNotFound(id);
  const [row] = await tx
    .select()
    .from(pipelines)
    .where(and(eq(pipelines.id, id), eq(pipelines.organisationId, organisationId)))
    .for("update");
  if (!row) throw pipelineNotFound(id);
  const [active] = await tx
    .select({ id: executions.id, status: executions.status })
    .from(executions)
    .where(and(eq(executions.pipelineId, id), inArray(executions.status, ["queued", "in_progress"])))
    .limit(1);
  if (active) {
    throw new DrayError(
      "failed_precondition",
      `pipeline ${row.name} has an execution ${active.status === "queued" ? "queued" : "in progress"} (${active.id}): ` +
        `wait for it to finish or cancel it (POST /api/v1/executions/${active.id}/cancel) before you ${doing} the pipeline`,
      { details: { executionId: active.id, status: active.status } },
    );
  }
  return row;
}

/**
 * Updates the given fields. The merged settings are validated like a new
 * pipeline's; `failed_precondition` while an execution is queued or in progress,
 * `already_exists` when renaming onto a taken name. With `agents`, a missing
 * source snapshot is first fetched from the source's connected agent.
 */
export async function updatePipeline(
  db: Db,
  organisationId: string,
  id: string,
  patch: UpdatePipelineInput,
  now: Date,
  agents?: EnvironmentAgents,
): Promise<PipelineRow> {
  if (agents) {
    const current = await findPipeline(db, organisationId, id);
    const sourceId =
      (patch.sourceKind ?? current?.sourceKind) === "files"
        ? (patch.targetEnvironmentId ?? current?.targetEnvironmentId)
        : (patch.sourceEnvironmentId ?? current?.sourceEnvironmentId);
    if (sourceId) await prefetchSourceSnapshot(db, organisationId, sourceId, agents, now);
  }
  try {
    return await db.transaction(async (tx) => {
      const current = await lockIdle(tx, organisationId, id, "update");
      const merged = mergeSettings(settingsOf(current), patch);
      await validatePipelineSettings(tx, organisationId, merged);
      const [row] = await tx
        .update(pipelines)
        .set({ ...merged, updatedAt: now })
        .where(and(eq(pipelines.id, id), eq(pipelines.organisationId, organisationId)))
        .returning();
      return row!;
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw duplicateName(patch.name ?? "");
    throw error;
  }
}

/**
 * Deletes a pipeline and, by cascade, its run history; `failed_precondition`
 * while an execution is queued or in progress.
 */
export async function deletePipeline(db: Db, organisationId: string, id: string): Promise<void> {
  await db.transaction(async (tx) => {
    await lockIdle(tx, organisationId, id, "delete");
    await tx.delete(pipelines).where(and(eq(pipelines.id, id), eq(pipelines.organisationId, organisationId)));
  });
}
