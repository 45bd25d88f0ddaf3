/** The API's JSON view of a pipeline, with whether it runs and its latest execution. */
import { and, desc, inArray } from "drizzle-orm";
import type { Db } from "../store/open-store.js";
import { executions, type pipelines } from "../store/schema.js";

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

/** A pipeline as the API shows it; timestamps are ISO strings. */
export interface PipelineView extends PipelineActivity {
  id: string;
  organisationId: string;
  name: string;
  sourceEnvironmentId: string;
  targetEnvironmentId: string;
  action: PipelineRow["action"];
  writeStrategy: PipelineRow["writeStrategy"];
  entities: string[];
  batchSize: number;
  batchBytes: number;
  maxRetriesPerBatch: number;
  stopOnError: boolean;
  entityConcurrency: number;
  /** What the target's user triggers and rules do during a load: `off` (the default) or `fire`. */
  targetTriggers: PipelineRow["targetTriggers"];
  /** How a run orders its entities: `dependencies` (the default) or `parallel`. */
  loadOrder: PipelineRow["loadOrder"];
  createdAt: string;
  updatedAt: string;
}

const IDLE: PipelineActivity = { running: false, lastExecution: null };

/** The API view of a stored pipeline. */
export function toPipelineView(row: PipelineRow, activity: PipelineActivity = IDLE): PipelineView {
  return {
    id: row.id,
    organisationId: row.organisationId,
    name: row.name,
    sourceEnvironmentId: row.sourceEnvironmentId,
    targetEnvironmentId: row.targetEnvironmentId,
    action: row.action,
    writeStrategy: row.writeStrategy,
    entities: [...row.entities],
    batchSize: row.batchSize,
    batchBytes: row.batchBytes,
    maxRetriesPerBatch: row.maxRetriesPerBatch,
    stopOnError: row.stopOnError,
    entityConcurrency: row.entityConcurrency,
    targetTriggers: row.targetTriggers,
    loadOrder: row.loadOrder,
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

/** The views of `rows`, with their activity. */
export async function toPipelineViews(
  db: Pick<Db, "select" | "selectDistinctOn">,
  rows: readonly PipelineRow[],
): Promise<PipelineView[]> {
  const activity = await pipelineActivity(
    db,
    rows.map((r) => r.id),
  );
  return rows.map((row) => toPipelineView(row, activity.get(row.id)));
}
