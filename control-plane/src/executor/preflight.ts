import { DrayError } from "@dray/common";
import { findEnvironment } from "../environments/environments-service.js";
import type { SchemaSnapshot } from "../environments/schema-snapshot.js";
import { createEnvironmentAgents } from "../gateway/environment-agents-impl.js";
import { readRecordUsage } from "../pipelines/pipeline-plan.js";
import { raiseLimitHint, recordLimitStatus, utcMonth } from "../pipelines/record-limit.js";
import { buildRunPlan } from "../pipelines/run-plan.js";
import type { environments } from "../store/schema.js";
import type { EntityRunPlan, ExecutionPlan, PipelineSettings, RunContext } from "./run-context.js";

/** A preflight refusal: the execution fails before any record moves. */
export class PreflightFailed extends DrayError {
  constructor(
    readonly reasonCode: string,
    message: string,
    details?: unknown,
  ) {
    super("failed_precondition", message, { details, retryable: false });
  }
}

type Env = typeof environments.$inferSelect;

async function loadEnvironment(
  ctx: Pick<RunContext, "db" | "organisationId">,
  id: string,
  role: string,
): Promise<Env> {
  const env = await findEnvironment(ctx.db, ctx.organisationId, id);
  if (!env)
    throw new PreflightFailed("environment_missing", `the ${role} environment (${id}) no longer exists`);
  return env;
}

function checkHealthy(env: Env, role: string, connected: boolean) {
  if (env.health !== "healthy") {
    const why =
      env.health === "unknown"
        ? "its agent has never reported"
        : `it is unhealthy: ${env.healthReason ?? "no reason recorded"}`;
    throw new PreflightFailed(
      "environment_unhealthy",
      `${role} environment "${env.name}" is not healthy (${why}). Check that its agent is running, then run again.`,
      { environmentId: env.id, health: env.health },
    );
  }
  if (!connected) {
    throw new PreflightFailed(
      "agent_not_connected",
      `${role} environment "${env.name}" has no agent connected to this control plane. Check that dray-agent is running and can reach the gateway.`,
      { environmentId: env.id },
    );
  }
}

/**
 * Checks everything before a record moves (DESIGN.md §5 step 1): both
 * environments healthy with connected agents, entities present on both sides
 * (described live), a computable plan, the estimated records within the
 * organisation's remaining monthly records, and confirmation for a clean of a
 * protected target. Returns the plan and the exact row count per entity.
 */
export async function preflight(
  ctx: Pick<RunContext, "db" | "sessions" | "organisationId" | "signal">,
  settings: PipelineSettings,
  confirmed: boolean,
): Promise<{ plan: ExecutionPlan; totals: Map<string, number> }> {
  const source = await loadEnvironment(ctx, settings.sourceEnvironmentId, "source");
  const target = await loadEnvironment(ctx, settings.targetEnvironmentId, "target");
  checkHealthy(source, "source", ctx.sessions.isConnected(source.id));
  checkHealthy(target, "target", ctx.sessions.isConnected(target.id));
  if (settings.writeStrategy === "clean" && target.protected && !confirmed) {
    throw new PreflightFailed(
      "confirmation_required",
      `target environment "${target.name}" is protected and the clean strategy deletes its rows first: start the execution with { "confirm": true }`,
    );
  }

  const agents = createEnvironmentAgents(ctx.sessions);
  let sourceSnapshot: SchemaSnapshot;
  let targetSnapshot: SchemaSnapshot;
  try {
    [sourceSnapshot, targetSnapshot] = await Promise.all([
      agents.describeSchema(source.id, ctx.signal),
      agents.describeSchema(target.id, ctx.signal),
    ]);
  } catch (error) {
    const e = DrayError.from(error);
    throw new PreflightFailed("agent_not_connected", `could not describe the environments: ${e.message}`);
  }
  const runPlan = buildRunPlan(sourceSnapshot, targetSnapshot, settings.entities, {
    sourceName: source.name,
    targetName: target.name,
  });
  if (runPlan.blocking.length > 0) {
    throw new PreflightFailed(
      "plan_failed",
      `the pipeline cannot run: ${runPlan.blocking.map((b) => b.message).join("; ")}`,
      { blocking: runPlan.blocking },
    );
  }

  const byName = new Map(sourceSnapshot.entities.map((e) => [e.entity, e]));
  const targetByName = new Map(targetSnapshot.entities.map((e) => [e.entity, e]));
  const deferred = new Map<string, string[]>();
  for (const d of runPlan.deferred) deferred.set(d.entity, [...(deferred.get(d.entity) ?? []), ...d.fields]);
  const entities: EntityRunPlan[] = runPlan.levels.flatMap((level, index) =>
    level.map((name) => {
      const e = byName.get(name)!;
      const targetFields = new Set(targetByName.get(name)?.fields.map((f) => f.name));
      return {
        entity: name,
        schema: e.schema,
        name: e.name,
        level: index,
        keyFields: e.primaryKey,
        fields: e.fields.filter((f) => !f.generated && targetFields.has(f.name)).map((f) => f.name),
        deferredFields: [...new Set(deferred.get(name) ?? [])],
      };
    }),
  );

  const counts = await Promise.all(
    entities.map((e) =>
      ctx.sessions
        .dispatch(
          source.id,
          "count",
          { entity: { schema: e.schema, name: e.name }, where: [] },
          { signal: ctx.signal, timeoutMs: 120_000 },
        )
        .then((r) => [e.entity, Number(r.count)] as const),
    ),
  );
  const totals = new Map(counts);
  const needed = counts.reduce((sum, [, n]) => sum + n, 0);

  const month = utcMonth(new Date());
  const limit = recordLimitStatus(await readRecordUsage(ctx.db, ctx.organisationId, month), month, needed);
  if (limit.wouldExceed) {
    throw new PreflightFailed(
      "monthly_record_limit",
      `monthly record limit: ${limit.used} of ${limit.limit} records used in ${month}` +
        `${limit.reserved ? ` and ${limit.reserved} reserved by runs in flight` : ""}; this run needs ${needed}. ` +
        `Select fewer entities, or ${raiseLimitHint(ctx.organisationId)}.`,
      { used: limit.used, limit: limit.limit, reserved: limit.reserved, needed, month },
    );
  }

  return {
    plan: {
      levels: runPlan.levels,
      entities,
      sourcePlatform: source.platform,
      targetPlatform: target.platform,
      sourceName: source.name,
      targetName: target.name,
    },
    totals,
  };
}
