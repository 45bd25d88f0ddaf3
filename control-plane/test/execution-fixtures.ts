/**
 * Store rows the executor's and the journal's tests start from: an
 * organisation, its source and target environments, and running executions
 * of a copy pipeline.
 */
import {
  type Db,
  environments,
  executionEntities,
  executions,
  newId,
  organisations,
  pipelines,
} from "../src/store/index.js";

/** What {@link seedOrganisation} made. */
export interface SeededOrganisation {
  organisationId: string;
  sourceEnvironmentId: string;
  targetEnvironmentId: string;
}

/** An organisation with `monthlyRecordLimit` and two healthy Postgres environments. */
export async function seedOrganisation(db: Db, monthlyRecordLimit = 1_000_000): Promise<SeededOrganisation> {
  const organisationId = newId();
  await db
    .insert(organisations)
    .values({ id: organisationId, name: `org-${organisationId}`, monthlyRecordLimit });
  const [sourceEnvironmentId, targetEnvironmentId] = [newId(), newId()];
  await db.insert(environments).values(
    [sourceEnvironmentId, targetEnvironmentId].map((id, i) => ({
      id,
      organisationId,
      name: i === 0 ? "source" : "target",
      platform: "postgres" as const,
      health: "healthy" as const,
    })),
  );
  return { organisationId, sourceEnvironmentId, targetEnvironmentId };
}

/**
 * A new merge pipeline of the organisation over `entities` and one running
 * (`in_progress`) execution of it; `entities` also get their execution rows
 * (in progress, no checkpoint) when `withEntityRows` is set.
 */
export async function seedRunningExecution(
  db: Db,
  org: SeededOrganisation,
  options: { entities?: string[]; withEntityRows?: boolean; checkpoint?: string[] } = {},
): Promise<{ pipelineId: string; executionId: string }> {
  const entities = options.entities ?? ["public.customers"];
  const pipelineId = newId();
  await db.insert(pipelines).values({
    id: pipelineId,
    organisationId: org.organisationId,
    name: `copy-${pipelineId}`,
    sourceEnvironmentId: org.sourceEnvironmentId,
    targetEnvironmentId: org.targetEnvironmentId,
    action: "copy",
    writeStrategy: "merge",
    entities,
    batchSize: 1000,
    batchBytes: 4_000_000,
    maxRetriesPerBatch: 4,
    stopOnError: true,
    entityConcurrency: 2,
  });
  const executionId = newId();
  await db.insert(executions).values({
    id: executionId,
    organisationId: org.organisationId,
    pipelineId,
    pipelineToken: `pt-${executionId}`,
    status: "in_progress",
    triggeredBy: { tokenId: newId(), tokenName: "test", role: "admin" },
    snapshot: {},
  });
  if (options.withEntityRows)
    await db.insert(executionEntities).values(
      entities.map((entity, level) => ({
        executionId,
        entity,
        level,
        status: "in_progress" as const,
        ...(options.checkpoint ? { checkpoint: options.checkpoint } : {}),
      })),
    );
  return { pipelineId, executionId };
}
