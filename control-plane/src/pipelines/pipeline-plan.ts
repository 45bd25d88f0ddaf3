/**
 * GET /pipelines/{id}/plan: the run plan computed from the cached snapshots,
 * without running anything, plus where the run stands against the
 * organisation's monthly record limit.
 */
import { and, eq } from "drizzle-orm";
import { ensureEntitySnapshot } from "../environments/entity-snapshots.js";
import { getEnvironment } from "../environments/environments-service.js";
import type { EnvironmentAgents } from "../gateway/environment-agents.js";
import type { Db } from "../store/open-store.js";
import { organisations, usage } from "../store/schema.js";
import { noSnapshot, requireSourceEnvironment } from "./pipeline-validation.js";
import { getPipeline } from "./pipelines-service.js";
import {
  type RecordLimitStatus,
  type RecordUsage,
  raiseLimitHint,
  recordLimitStatus,
  utcMonth,
} from "./record-limit.js";
import { BLOCKING_CODES, buildRunPlan, type RunPlan } from "./run-plan.js";

/** The plan endpoint's answer. */
export interface PipelinePlan extends RunPlan {
  monthlyRecordLimit: RecordLimitStatus;
}

/**
 * The organisation's monthly record limit and its usage in `month` (0 used and
 * reserved when there is no usage row yet).
 *
 * @example
 * const usage = await readRecordUsage(db, organisationId, utcMonth(new Date()));
 */
export async function readRecordUsage(
  db: Pick<Db, "select">,
  organisationId: string,
  month: string,
): Promise<RecordUsage> {
  const [org] = await db
    .select({ limit: organisations.monthlyRecordLimit })
    .from(organisations)
    .where(eq(organisations.id, organisationId))
    .limit(1);
  const [row] = await db
    .select({ used: usage.records, reserved: usage.reserved })
    .from(usage)
    .where(and(eq(usage.organisationId, organisationId), eq(usage.month, month)))
    .limit(1);
  return { limit: org?.limit ?? 0, used: row?.used ?? 0, reserved: row?.reserved ?? 0 };
}

/**
 * The plan of the organisation's pipeline `id` at `now`. Problems that would
 * stop a run (including an estimate over the remaining monthly records) are in
 * `blocking`; `not_found` for an unknown pipeline, `failed_precondition` when
 * the source has no entity snapshot and no connected agent. With `agents`, a
 * missing snapshot of either side is first fetched from its connected agent.
 */
export async function getPipelinePlan(
  db: Db,
  organisationId: string,
  id: string,
  now: Date,
  agents?: EnvironmentAgents,
): Promise<PipelinePlan> {
  const pipeline = await getPipeline(db, organisationId, id);
  const sourceId = requireSourceEnvironment(pipeline, "has no run plan");
  const [source, target] = await Promise.all([
    getEnvironment(db, organisationId, sourceId),
    getEnvironment(db, organisationId, pipeline.targetEnvironmentId),
  ]);
  const clock = { now: () => now };
  const [sourceSnapshot, targetSnapshot] = await Promise.all([
    ensureEntitySnapshot(db, agents, source, clock),
    ensureEntitySnapshot(db, agents, target, clock),
  ]);
  if (!sourceSnapshot) throw noSnapshot(source);
  const plan = buildRunPlan(sourceSnapshot, targetSnapshot ?? null, pipeline.entities, {
    writeStrategy: pipeline.writeStrategy,
    targetTriggers: pipeline.targetTriggers,
    loadOrder: pipeline.loadOrder,
    action: pipeline.action,
    transformations: pipeline.transformations ?? [],
    qualityRules: pipeline.qualityRules ?? [],
    sourceName: source.name,
    targetName: target.name,
  });
  const month = utcMonth(now);
  const limit = recordLimitStatus(
    await readRecordUsage(db, organisationId, month),
    month,
    plan.estimatedRecords,
  );
  if (limit.wouldExceed) {
    plan.blocking.push({
      code: BLOCKING_CODES.monthlyRecordLimit,
      message:
        `the run is estimated at ${plan.estimatedRecords} records but only ${limit.remaining} of the ` +
        `organisation's ${limit.limit} monthly records remain for ${month}. Select fewer entities, wait for next ` +
        `month, or ${raiseLimitHint(organisationId)}`,
      details: { estimatedRecords: plan.estimatedRecords, remaining: limit.remaining, month },
    });
  }
  return { ...plan, monthlyRecordLimit: limit };
}
