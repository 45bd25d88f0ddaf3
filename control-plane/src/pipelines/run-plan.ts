/**
 * The pure part of a pipeline's plan (GET /pipelines/{id}/plan and the
 * executor's preflight): dependency levels, deferred references, warnings,
 * per-entity information and the problems that block a run. No I/O, no usage.
 */
import { DrayError, isDrayError } from "@dray/common";
import type { EntitySnapshot, SchemaSnapshot } from "../environments/schema-snapshot.js";
import {
  type DeferredReference,
  type DependencyPlan,
  estimatedTotal,
  planDependencies,
} from "./dependency-plan.js";

/** Codes of the problems that block a run. */
export const BLOCKING_CODES = {
  entityMissingInSource: "entity_missing_in_source",
  entityMissingInTarget: "entity_missing_in_target",
  fieldsMissingInTarget: "fields_missing_in_target",
  targetFieldRequired: "target_field_required",
  missingPrimaryKey: "missing_primary_key",
  unresolvableCycle: "unresolvable_cycle",
  monthlyRecordLimit: "monthly_record_limit",
} as const;

/** A warning or a blocking problem of a plan. */
export interface PlanIssue {
  code: string;
  message: string;
  /** The entity it is about, when it is about one. */
  entity?: string;
  details?: unknown;
}

/**
 * Where an entity's estimated rows come from: the planner's `statistics`, an
 * `exact` count or a `sampled` estimate (the agent counts tables never
 * analysed), or `unknown` when there is no estimate (counted as 0).
 */
export type EstimateSource = "statistics" | "exact" | "sampled" | "unknown";

const ESTIMATE_SOURCES: ReadonlySet<string> = new Set(["statistics", "exact", "sampled"]);

/**
 * The estimate source of a snapshot entity: as the agent labelled it, else
 * `statistics` (agents that do not label only send statistics); `unknown` for -1.
 *
 * @example
 * estimateSourceOf({ estimatedRows: 67000, estimateSource: "exact" }) // "exact"
 * estimateSourceOf({ estimatedRows: -1 }) // "unknown"
 */
export function estimateSourceOf(entity: Pick<EntitySnapshot, "estimatedRows">): EstimateSource {
  if (entity.estimatedRows < 0) return "unknown";
  const label = (entity as { estimateSource?: unknown }).estimateSource;
  return typeof label === "string" && ESTIMATE_SOURCES.has(label) ? (label as EstimateSource) : "statistics";
}

/** What the plan says about one selected entity. */
export interface RunPlanEntity {
  entity: string;
  /** Dependency level (0 first); null when the entity cannot be planned. */
  level: number | null;
  /** The source's estimate; 0 when unknown. */
  estimatedRows: number;
  /** Where `estimatedRows` comes from. */
  estimateSource: EstimateSource;
  primaryKey: string[];
  /** True when the target snapshot lacks the entity (false when the target was not checked). */
  missingInTarget: boolean;
  /** Source fields the target entity lacks. */
  fieldsMissingInTarget: string[];
}

/** The plan of a run, without the monthly record limit. */
export interface RunPlan {
  levels: string[][];
  deferred: DeferredReference[];
  cycles: DependencyPlan["cycles"];
  warnings: PlanIssue[];
  entities: RunPlanEntity[];
  /** Sum of the selected entities' estimated rows. */
  estimatedRecords: number;
  /** Problems that must be fixed before a run can start; empty when it can. */
  blocking: PlanIssue[];
}

/** Environment names used in messages. */
export interface RunPlanOptions {
  sourceName?: string | undefined;
  targetName?: string | undefined;
}

/**
 * Plans copying `entities` from `source` to `target`. `target` null means the
 * target has no snapshot yet: compatibility is then a warning, not checked.
 * An unresolvable cycle, a missing primary key or an entity/field missing on
 * either side is reported in `blocking`, never thrown.
 *
 * @example
 * const plan = buildRunPlan(source, target, ["public.accounts", "public.contacts"], { targetName: "qa" });
 * if (plan.blocking.length > 0) throw new DrayError("failed_precondition", plan.blocking[0].message);
 */
export function buildRunPlan(
  source: SchemaSnapshot,
  target: SchemaSnapshot | null,
  entities: readonly string[],
  options: RunPlanOptions = {},
): RunPlan {
  const sourceEnv = options.sourceName
    ? `source environment ${options.sourceName}`
    : "the source environment";
  const targetEnv = options.targetName
    ? `target environment ${options.targetName}`
    : "the target environment";
  const sourceByName = new Map(source.entities.map((e) => [e.entity, e]));
  const targetByName = target ? new Map(target.entities.map((e) => [e.entity, e])) : undefined;
  const names = [...new Set(entities)];
  const selected = names.flatMap((n) => sourceByName.get(n) ?? []);
  const blocking: PlanIssue[] = [];
  const warnings: PlanIssue[] = [];

  for (const name of names) {
    if (sourceByName.has(name)) continue;
    blocking.push({
      code: BLOCKING_CODES.entityMissingInSource,
      entity: name,
      message: `entity ${name} does not exist in ${sourceEnv}: refresh its entity snapshot or remove it from the pipeline`,
    });
  }

  let dependencies: DependencyPlan | undefined;
  if (selected.length > 0) {
    try {
      dependencies = planDependencies({ entities: selected, allEntities: source.entities });
    } catch (error) {
      if (!isDrayError(error) || error.code !== "failed_precondition") throw error;
      blocking.push({
        code: BLOCKING_CODES.unresolvableCycle,
        message: error.message,
        details: error.details,
      });
    }
  }
  for (const w of dependencies?.warnings ?? []) {
    const issue: PlanIssue = { code: w.code, entity: w.entity, message: w.message };
    if (w.details !== undefined) issue.details = w.details;
    (w.code === "missing_primary_key" ? blocking : warnings).push(issue);
  }

  const levelOf = new Map<string, number>();
  dependencies?.levels.forEach((level, i) => {
    for (const name of level) levelOf.set(name, i);
  });

  if (!target) {
    warnings.push({
      code: "target_not_checked",
      message:
        `${targetEnv} has no entity snapshot yet and no agent of it is connected, so compatibility ` +
        `could not be checked: start its dray-agent and ask for the plan again`,
    });
  }
  const unknown = selected.filter((e) => e.estimatedRows < 0).map((e) => e.entity);
  if (unknown.length > 0) {
    warnings.push({
      code: "estimate_unknown",
      message:
        `the source could not estimate the rows of ${unknown.join(", ")} (counted as 0 here): the monthly ` +
        `record limit is checked again with exact counts when the run starts`,
      details: { entities: unknown },
    });
  }

  const planned = names.map((name): RunPlanEntity => {
    const from = sourceByName.get(name);
    const to = targetByName?.get(name);
    const info: RunPlanEntity = {
      entity: name,
      level: levelOf.get(name) ?? null,
      estimatedRows: from ? Math.max(0, from.estimatedRows) : 0,
      estimateSource: from ? estimateSourceOf(from) : "unknown",
      primaryKey: from ? [...from.primaryKey] : [],
      missingInTarget: targetByName !== undefined && to === undefined,
      fieldsMissingInTarget: [],
    };
    if (info.missingInTarget) {
      blocking.push({
        code: BLOCKING_CODES.entityMissingInTarget,
        entity: name,
        message: `entity ${name} does not exist in ${targetEnv}: create it there or remove it from the pipeline`,
      });
    }
    if (from && to) {
      info.fieldsMissingInTarget = missingFields(from, to);
      blocking.push(...fieldProblems(from, to, info.fieldsMissingInTarget, targetEnv));
    }
    return info;
  });

  return {
    levels: dependencies?.levels ?? [],
    deferred: dependencies?.deferred ?? [],
    cycles: dependencies?.cycles ?? [],
    warnings,
    entities: planned,
    estimatedRecords: estimatedTotal(selected),
    blocking,
  };
}

/**
 * Throws `failed_precondition` naming every blocking problem of a plan (for
 * the executor's preflight); does nothing when the plan has none.
 */
export function assertRunnable(plan: Pick<RunPlan, "blocking">): void {
  if (plan.blocking.length === 0) return;
  throw new DrayError("failed_precondition", plan.blocking.map((b) => b.message).join("; "), {
    details: { blocking: plan.blocking },
  });
}

/** Source fields (generated ones excepted: they are not written) the target lacks. */
function missingFields(from: EntitySnapshot, to: EntitySnapshot): string[] {
  const present = new Set(to.fields.map((f) => f.name));
  return from.fields.filter((f) => !f.generated && !present.has(f.name)).map((f) => f.name);
}

function fieldProblems(
  from: EntitySnapshot,
  to: EntitySnapshot,
  missing: string[],
  targetEnv: string,
): PlanIssue[] {
  const out: PlanIssue[] = [];
  if (missing.length > 0) {
    out.push({
      code: BLOCKING_CODES.fieldsMissingInTarget,
      entity: from.entity,
      message:
        `${missing.length === 1 ? "field" : "fields"} ${missing.join(", ")} of ${from.entity} ` +
        `${missing.length === 1 ? "does" : "do"} not exist in ${targetEnv}: add ${missing.length === 1 ? "it" : "them"} there`,
      details: { fields: missing },
    });
  }
  const sourceFields = new Set(from.fields.filter((f) => !f.generated).map((f) => f.name));
  const required = to.fields
    .filter((f) => !f.nullable && !f.hasDefault && !f.generated && !sourceFields.has(f.name))
    .map((f) => f.name);
  if (required.length > 0) {
    out.push({
      code: BLOCKING_CODES.targetFieldRequired,
      entity: from.entity,
      message:
        `${from.entity} in ${targetEnv} has NOT NULL ${required.length === 1 ? "field" : "fields"} ` +
        `${required.join(", ")} without a default that the source does not have, so no record could be inserted: ` +
        `give ${required.length === 1 ? "it" : "them"} a default or make ${required.length === 1 ? "it" : "them"} nullable`,
      details: { fields: required },
    });
  }
  return out;
}
