import { DrayError, parseEntityName } from "@dray/common";
import { and, eq, sql } from "drizzle-orm";
import { findEnvironment } from "../environments/environments-service.js";
import {
  type EntitySnapshot,
  entityKindOf,
  rowKeyOf,
  type SchemaSnapshot,
} from "../environments/schema-snapshot.js";
import { isAgentAway } from "../gateway/agent-sessions.js";
import { DEFAULT_LOAD_ORDER, DEFAULT_TARGET_TRIGGERS } from "../pipelines/pipeline-defaults.js";
import { readRecordUsage } from "../pipelines/pipeline-plan.js";
import { requireSourceEnvironment } from "../pipelines/pipeline-validation.js";
import { raiseLimitHint, recordLimitStatus, utcMonth } from "../pipelines/record-limit.js";
import { buildRunPlan } from "../pipelines/run-plan.js";
import { toFieldTransforms } from "../pipelines/transformations.js";
import { environments } from "../store/schema.js";
import type { EntityCount } from "./agent-port.js";
import { type EnvironmentObservation, retryWhileAway, waitUntilReady } from "./agent-readiness.js";
import { cursorKeyOf } from "./cursor-key.js";
import type { EntityRunPlan, ExecutionPlan, PipelineSettings, RunContext } from "./run-context.js";
import { type TrustContext, trustableReferences } from "./trusted-references.js";

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

type PreflightContext = Pick<
  RunContext,
  "db" | "agents" | "organisationId" | "signal" | "journal" | "logger" | "options"
>;

/** One environment of the run, as preflight refers to it. */
interface RunEnvironment {
  role: "source" | "target";
  id: string;
  name: string;
}

/** Reads the environment's health and its agent's connection now (the heartbeat age by the store's clock). */
async function observe(ctx: PreflightContext, env: RunEnvironment): Promise<EnvironmentObservation> {
  const [row] = await ctx.db
    .select({
      name: environments.name,
      health: environments.health,
      healthReason: environments.healthReason,
      databaseReachable: environments.databaseReachable,
      heartbeatAgeMs: sql<
        number | null
      >`(extract(epoch from (now() - ${environments.lastHeartbeatAt})) * 1000)::float8`,
    })
    .from(environments)
    .where(and(eq(environments.id, env.id), eq(environments.organisationId, ctx.organisationId)));
  if (!row)
    throw new PreflightFailed(
      "environment_missing",
      `the ${env.role} environment (${env.id}) no longer exists`,
    );
  const connected = ctx.agents.isConnected(env.id);
  const since = ctx.agents.connectedSince(env.id);
  return {
    role: env.role,
    id: env.id,
    name: row.name,
    health: row.health,
    healthReason: row.healthReason,
    databaseReachable: row.databaseReachable,
    heartbeatAgeMs: row.heartbeatAgeMs === null ? null : Math.max(0, Number(row.heartbeatAgeMs)),
    connected,
    ...(connected && since !== undefined ? { connectedForMs: Date.now() - since } : {}),
    ...(connected ? {} : { agentId: ctx.agents.absence(env.id)?.agentId }),
  };
}

/**
 * Waits until the environment's agent is connected and its environment
 * healthy (see {@link agentReadiness}): an agent that is briefly away (killed
 * and restarted, draining) is waited for, as the copier does, until its
 * environment would turn unhealthy. Throws {@link PreflightFailed} otherwise.
 * `waited` is true when a task of the run already found the agent away.
 */
async function awaitAgent(ctx: PreflightContext, env: RunEnvironment, waited: boolean): Promise<void> {
  const failure = await waitUntilReady(() => observe(ctx, env), ctx.options.agentAwayLimitMs, {
    signal: ctx.signal,
    waited,
    onWait: async (o, forMs) => {
      const leftS = Math.max(1, Math.round(forMs / 1000));
      const label = `${env.role} environment "${o.name}"`;
      ctx.logger.warn("preflight waits for an agent", { environmentId: env.id, leftS });
      await ctx.journal.stage({
        processName: "StreamNotifier",
        state: "processing",
        code: "waiting",
        description: `Waiting up to ${leftS} s for the agent of ${label} to come back`,
      });
      await ctx.journal.error({
        severity: "warning",
        message: `preflight: the agent of ${label} is away; waiting up to ${leftS} s more for it to come back`,
      });
    },
  });
  if (failure) {
    throw new PreflightFailed(failure.reasonCode, failure.message, {
      environmentId: env.id,
      role: env.role,
    });
  }
}

/**
 * Runs one task on the environment's agent; when the agent turns out to be
 * away, waits for it ({@link awaitAgent}) and sends the task again.
 */
async function onAgent<T>(ctx: PreflightContext, env: RunEnvironment, task: () => Promise<T>): Promise<T> {
  return retryWhileAway(task, {
    isAway: isAgentAway,
    waitForAgent: () => awaitAgent(ctx, env, true),
    signal: ctx.signal,
    maxWaits: ctx.options.maxAgentWaits,
  });
}

/** What the caller may start alongside preflight. */
export interface PreflightHooks {
  /** Called once both environments' agents are connected and healthy, before the schemas are described. */
  agentsReady?: () => void;
}

/**
 * Checks everything before a record moves (docs/architecture.md §4, "Preflight"): both
 * environments healthy with connected agents (an agent that is briefly away
 * is waited for, as long as the copier would wait for it mid-run), entities present on both sides
 * (described live), a computable plan, the estimated records within the
 * organisation's remaining monthly records, and confirmation for a clean of a
 * protected target. Returns the plan and the row count per entity (exact, or the
 * planner's estimate for a large table whose most possible rows fit the limit): each
 * entity's row key, deferred fields, postponed (unchecked) references and
 * field transformations (checked again against the live source schema), and
 * every postponed reference to validate after load.
 */
export async function preflight(
  ctx: PreflightContext,
  settings: PipelineSettings,
  confirmed: boolean,
  hooks: PreflightHooks = {},
): Promise<{ plan: ExecutionPlan; totals: Map<string, number> }> {
  const [source, target] = await Promise.all([
    loadEnvironment(ctx, requireSourceEnvironment(settings, "cannot be run"), "source"),
    loadEnvironment(ctx, settings.targetEnvironmentId, "target"),
  ]);
  const sourceEnv: RunEnvironment = { role: "source", id: source.id, name: source.name };
  const targetEnv: RunEnvironment = { role: "target", id: target.id, name: target.name };
  await Promise.all([awaitAgent(ctx, sourceEnv, false), awaitAgent(ctx, targetEnv, false)]);
  hooks.agentsReady?.();
  if (settings.writeStrategy === "clean" && target.protected && !confirmed) {
    throw new PreflightFailed(
      "confirmation_required",
      `target environment "${target.name}" is protected and the clean strategy deletes its rows first: start the execution with { "confirm": true }`,
    );
  }

  const countSource = (entity: { schema: string; name: string }) =>
    onAgent(ctx, sourceEnv, () =>
      ctx.agents.count(
        source.id,
        { schema: entity.schema, name: entity.name },
        { signal: ctx.signal, timeoutMs: ctx.options.countTimeoutMs },
      ),
    );
  const countSourceMany = (
    entities: readonly { schema: string; name: string }[],
    estimateOverBytes: number,
  ) =>
    onAgent(ctx, sourceEnv, () =>
      ctx.agents.countMany(source.id, entities, {
        signal: ctx.signal,
        timeoutMs: ctx.options.countTimeoutMs,
        estimateOverBytes,
      }),
    );
  // The entities the pipeline names are counted while both schemas are described (see countEarly).
  const early = countEarly(settings.entities, countSource, (entities) =>
    countSourceMany(entities, ctx.options.countEstimateOverBytes),
  );
  // The run counts the source exactly below and needs no estimate of either side.
  const describe = (env: RunEnvironment) =>
    onAgent(ctx, env, () =>
      ctx.agents.describe(env.id, {
        signal: ctx.signal,
        timeoutMs: ctx.options.taskTimeoutMs,
        statisticsOnly: true,
      }),
    );
  let sourceSnapshot: SchemaSnapshot;
  let targetSnapshot: SchemaSnapshot;
  try {
    [sourceSnapshot, targetSnapshot] = await Promise.all([describe(sourceEnv), describe(targetEnv)]);
  } catch (error) {
    if (error instanceof PreflightFailed || ctx.signal.aborted) throw error;
    const e = DrayError.from(error);
    throw new PreflightFailed("agent_not_connected", `could not describe the environments: ${e.message}`);
  }
  // Settings frozen before targetTriggers existed have none: the default.
  const targetTriggers = settings.targetTriggers ?? DEFAULT_TARGET_TRIGGERS;
  // Likewise for loadOrder.
  const loadOrder = settings.loadOrder ?? DEFAULT_LOAD_ORDER;
  const runPlan = buildRunPlan(sourceSnapshot, targetSnapshot, settings.entities, {
    writeStrategy: settings.writeStrategy,
    targetTriggers,
    loadOrder,
    action: settings.action,
    // Settings frozen before transformations existed have none.
    transformations: settings.transformations ?? [],
    // Likewise for data-quality rules.
    qualityRules: settings.qualityRules ?? [],
    sourceName: source.name,
    targetName: target.name,
  });
  const transformsOf = new Map(runPlan.entities.map((e) => [e.entity, toFieldTransforms(e.transformations)]));
  const rulesOf = new Map(
    runPlan.entities.flatMap((e) => (e.qualityRules ? [[e.entity, e.qualityRules]] : [])),
  );
  if (runPlan.blocking.length > 0) {
    throw new PreflightFailed(
      "plan_failed",
      `the pipeline cannot run: ${runPlan.blocking.map((b) => b.message).join("; ")}`,
      { blocking: runPlan.blocking },
    );
  }

  const continuous = settings.mode === "continuous";
  const byName = new Map(sourceSnapshot.entities.map((e) => [e.entity, e]));
  const targetByName = new Map(targetSnapshot.entities.map((e) => [e.entity, e]));
  const deferred = new Map<string, string[]>();
  for (const d of runPlan.deferred) deferred.set(d.entity, [...(deferred.get(d.entity) ?? []), ...d.fields]);
  const unchecked = new Map<string, string[]>();
  for (const d of runPlan.postponed)
    unchecked.set(d.entity, [...(unchecked.get(d.entity) ?? []), d.reference]);
  const selected = new Set(runPlan.levels.flat());
  const notOrdering = new Set(
    [...runPlan.deferred, ...runPlan.postponed].map((d) => `${d.entity}\u0000${d.reference}`),
  );
  // With the target's triggers on, the database checks every reference itself; a continuous run reads in no snapshot.
  const trustContext: TrustContext | null =
    targetTriggers === "off" && !continuous
      ? {
          selected,
          transformedFields: (name) => new Set((transformsOf.get(name) ?? []).map((t) => t.field)),
          postponed: new Set(runPlan.postponed.map((p) => p.reference)),
        }
      : null;
  const entities: EntityRunPlan[] = runPlan.levels.flatMap((level, index) =>
    level.map((name) => {
      const e = byName.get(name)!;
      const dependsOn = new Set(
        e.references
          .filter((r) => r.referencedEntity !== name && selected.has(r.referencedEntity))
          .filter((r) => !notOrdering.has(`${name}\u0000${r.name}`))
          .map((r) => r.referencedEntity),
      );
      const targetFields = new Set(targetByName.get(name)?.fields.map((f) => f.name));
      return {
        entity: name,
        schema: e.schema,
        name: e.name,
        level: index,
        keyFields: rowKeyOf(e),
        fields: e.fields.filter((f) => !f.generated && targetFields.has(f.name)).map((f) => f.name),
        deferredFields: [...new Set(deferred.get(name) ?? [])],
        uncheckedReferences: [...new Set(unchecked.get(name) ?? [])],
        trustedReferences: trustContext ? trustableReferences(e, targetByName.get(name), trustContext) : [],
        kind: entityKindOf(e),
        dependsOn: [...dependsOn].sort(),
        transforms: transformsOf.get(name) ?? [],
        ...(rulesOf.has(name) ? { qualityRules: rulesOf.get(name)! } : {}),
        ...(continuous ? { cursorKey: cursorKeyOf(settings.cursorField, rowKeyOf(e)) } : {}),
      };
    }),
  );
  if (continuous) checkContinuousPlan(entities, byName);

  let counts = await Promise.all(
    entities.map((e) => {
      const counted = early.get(addressKey(e));
      // An early count that failed (say, the name was not an entity's) is simply counted again.
      const exactly = () =>
        countSource(e).then((count): EntityCount => ({ count, estimated: false, upperBound: 0 }));
      return (counted ? counted.catch(exactly) : exactly()).then((n) => [e, n] as const);
    }),
  );
  const month = utcMonth(new Date());
  const usage = await readRecordUsage(ctx.db, ctx.organisationId, month);
  // A large table's estimate stands only when the most rows it can hold fit the limit; else it is counted.
  const bounded = counts.reduce((sum, [, n]) => sum + (n.estimated ? n.upperBound : n.count), 0);
  const estimated = counts.filter(([, n]) => n.estimated).map(([e]) => e);
  if (estimated.length > 0 && !continuous && recordLimitStatus(usage, month, bounded).wouldExceed) {
    const exact =
      (await countSourceMany(estimated, 0)) ??
      (await Promise.all(
        estimated.map(async (e) => ({ count: await countSource(e), estimated: false, upperBound: 0 })),
      ));
    const byEntity = new Map(estimated.map((e, i) => [e.entity, exact[i]!]));
    counts = counts.map(([e, n]) => [e, byEntity.get(e.entity) ?? n] as const);
  }
  const totals = new Map(counts.map(([e, n]) => [e.entity, n.count]));
  for (const [e, n] of counts) if (n.estimated) e.totalEstimated = true;
  const needed = counts.reduce((sum, [, n]) => sum + n.count, 0);

  const limit = recordLimitStatus(usage, month, needed);
  // A continuous run copies what changes for as long as it runs: its batches are held to the limit one by one.
  if (limit.wouldExceed && !continuous) {
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
      postponed: runPlan.postponed.map(({ entity, reference, referencedEntity }) => ({
        entity,
        reference,
        referencedEntity,
      })),
      targetTriggers,
      loadOrder,
      sourcePlatform: source.platform,
      targetPlatform: target.platform,
      sourceName: source.name,
      targetName: target.name,
    },
    totals,
  };
}

const addressKey = (e: { schema: string; name: string }) => `${e.schema}\u0000${e.name}`;

/**
 * Starts counting each entity the pipeline names (as parseEntityName reads
 * it), before the plan has resolved them, all in one task of the source agent
 * (`countMany`; one `count` each when the agent predates it); keyed by schema
 * and name. A count is used only for the plan entity of exactly that schema
 * and name, and one that fails is ignored (the entity is counted again in the
 * plan's terms, alone), so a name that is not an entity's costs one wasted
 * round trip.
 */
function countEarly(
  names: readonly string[],
  count: (entity: { schema: string; name: string }) => Promise<number>,
  countMany: (entities: readonly { schema: string; name: string }[]) => Promise<EntityCount[] | undefined>,
): Map<string, Promise<EntityCount>> {
  const addresses = new Map<string, { schema: string; name: string }>();
  for (const qualified of names) {
    try {
      const { schema, table } = parseEntityName(qualified);
      addresses.set(addressKey({ schema, name: table }), { schema, name: table });
    } catch {
      // Not a valid name: the plan refuses it with the reason.
    }
  }
  const all = [...addresses.values()];
  const together = all.length > 0 ? countMany(all) : Promise.resolve(undefined);
  const early = new Map<string, Promise<EntityCount>>();
  all.forEach((address, i) => {
    const counted = together.then(
      (counts) =>
        counts?.[i] ??
        count(address).then((n): EntityCount => ({ count: n, estimated: false, upperBound: 0 })),
    );
    counted.catch(() => {});
    early.set(addressKey(address), counted);
  });
  return early;
}

/**
 * What a continuous run cannot do: break a reference cycle with a second pass
 * (it never ends), or read an entity without a row key, or by a cursor field
 * the entity lacks.
 *
 * @throws PreflightFailed `plan_failed`
 */
function checkContinuousPlan(entities: readonly EntityRunPlan[], byName: Map<string, EntitySnapshot>): void {
  const problems: string[] = [];
  for (const e of entities) {
    if (e.deferredFields.length > 0)
      problems.push(
        `${e.entity} is in a reference cycle through nullable fields (${e.deferredFields.join(", ")}), which a ` +
          "continuous pipeline cannot back-fill: leave one entity of the cycle out or use a once pipeline",
      );
    if (e.keyFields.length === 0) problems.push(`${e.entity} has no row key to merge on`);
    const cursor = e.cursorKey?.[0];
    if (cursor && !byName.get(e.entity)?.fields.some((f) => f.name === cursor))
      problems.push(`${e.entity} has no field ${cursor} (the cursor field)`);
  }
  if (problems.length > 0)
    throw new PreflightFailed("plan_failed", `the continuous pipeline cannot run: ${problems.join("; ")}`);
}
