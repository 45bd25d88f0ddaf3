/**
 * The plan of a file load: the target entity described by the target agent,
 * made into the one-entity plan the batch writer runs (files have no source:
 * no dependencies, transforms or deferred fields), with the types of its
 * fields for the data-quality rules.
 */
import { DrayError } from "@dray/common";
import type { EntityRunPlan, ExecutionPlan, RunContext } from "./run-context.js";

/** The one-entity plan of a file load and the types of the entity's (non-generated) fields. */
export interface FileLoadPlan {
  plan: ExecutionPlan;
  types: Map<string, string>;
}

/**
 * Describes the target and builds the one-entity plan of the load (the
 * pipeline's only entity), with the types of its fields.
 *
 * @throws DrayError `failed_precondition` when the target has no such entity
 * @example
 * const { plan, types } = await planFileLoad(ctx, "prod", "postgres");
 */
export async function planFileLoad(
  ctx: Omit<RunContext, "plan">,
  targetName: string,
  platform: ExecutionPlan["targetPlatform"],
): Promise<FileLoadPlan> {
  const snapshot = await ctx.agents.describe(ctx.settings.targetEnvironmentId, {
    signal: ctx.signal,
    timeoutMs: ctx.options.taskTimeoutMs,
  });
  const name = ctx.settings.entities[0]!;
  const target = snapshot.entities.find((e) => e.entity === name);
  if (!target)
    throw new DrayError(
      "failed_precondition",
      `target entity ${name} does not exist in ${targetName}: create it, or point the pipeline at another entity`,
    );
  const keyFields = target.rowKey ?? target.primaryKey;
  const entity: EntityRunPlan = {
    entity: name,
    schema: target.schema,
    name: target.name,
    level: 0,
    keyFields,
    fields: target.fields.filter((f) => !f.generated).map((f) => f.name),
    deferredFields: [],
    uncheckedReferences: [],
    dependsOn: [],
    transforms: [],
  };
  const plan: ExecutionPlan = {
    levels: [[name]],
    entities: [entity],
    targetPlatform: platform,
    sourcePlatform: platform,
    targetName,
    sourceName: "uploaded files",
  };
  const types = new Map(target.fields.filter((f) => !f.generated).map((f) => [f.name, f.type]));
  return { plan, types };
}
