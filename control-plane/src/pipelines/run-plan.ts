/**
 * The pure part of a pipeline's plan (GET /pipelines/{id}/plan and the
 * executor's preflight): dependency levels, deferred references, warnings,
 * per-entity information and the problems that block a run. No I/O, no usage.
 */
import { DrayError } from "@dray/common";
import {
  type EntityKind,
  type EntitySnapshot,
  entityKindOf,
  rowKeyOf,
  type SchemaSnapshot,
} from "../environments/schema-snapshot.js";
import {
  type DeferredReference,
  type DependencyPlan,
  estimatedTotal,
  type PlanCycle,
  planDependencies,
} from "./dependency-plan.js";
import {
  DEFAULT_LOAD_ORDER,
  DEFAULT_TARGET_TRIGGERS,
  type LoadOrder,
  type TargetTriggers,
  type WriteStrategy,
} from "./pipeline-defaults.js";
import { type FieldQualityRule, type PipelineQualityRule, resolveQualityRules } from "./quality-rules.js";
import {
  type EffectiveTransformation,
  type PipelineTransformation,
  resolveTransformations,
} from "./transformations.js";

/** Codes of the problems that block a run. */
export const BLOCKING_CODES = {
  entityMissingInSource: "entity_missing_in_source",
  entityMissingInTarget: "entity_missing_in_target",
  fieldsMissingInTarget: "fields_missing_in_target",
  targetFieldRequired: "target_field_required",
  /** An entity without a row key copied with writeStrategy merge. */
  noRowKey: "no_row_key",
  unresolvableCycle: "unresolvable_cycle",
  /** loadOrder parallel with targetTriggers fire. */
  parallelNeedsTriggersOff: "parallel_needs_triggers_off",
  /** A transformation rule that no longer holds against the source's schema. */
  transformationInvalid: "transformation_invalid",
  qualityRuleInvalid: "quality_rule_invalid",
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
  /**
   * The fields that identify a row (the primary key, else a unique key of NOT NULL
   * fields): keyset reads and merges use them. Empty when the entity has none.
   */
  rowKey: string[];
  kind: EntityKind;
  /** True when the target snapshot lacks the entity (false when the target was not checked). */
  missingInTarget: boolean;
  /** Source fields the target entity lacks. */
  fieldsMissingInTarget: string[];
  /**
   * The fields the source agent transforms while reading, with the transformer's
   * kind; `propagatedFrom` names the referenced key (`schema.table.field`) a
   * transformation was carried over from. Only for action `transform`.
   */
  transformations?: EffectiveTransformation[];
  /** Data-quality rules the source agent checks on this entity's rows; absent when none. */
  qualityRules?: FieldQualityRule[];
}

/** The plan of a run, without the monthly record limit. */
export interface RunPlan {
  /** The pipeline's setting: what the target's user triggers and rules do during the load. */
  targetTriggers: TargetTriggers;
  /** One line on what `targetTriggers` means for this load. */
  targetTriggersNote: string;
  /** The pipeline's setting: whether references order the load (`dependencies`) or not (`parallel`). */
  loadOrder: LoadOrder;
  /** One line on what `loadOrder` means for this load. */
  loadOrderNote: string;
  levels: string[][];
  deferred: DeferredReference[];
  /** References written without their check and validated once their entities are loaded. */
  postponed: DeferredReference[];
  cycles: PlanCycle[];
  warnings: PlanIssue[];
  entities: RunPlanEntity[];
  /** Sum of the selected entities' estimated rows. */
  estimatedRecords: number;
  /** Problems that must be fixed before a run can start; empty when it can. */
  blocking: PlanIssue[];
}

/** The pipeline settings the plan depends on, and environment names used in messages. */
export interface RunPlanOptions {
  /** An entity without a row key blocks `merge` only. */
  writeStrategy: WriteStrategy;
  /** Default `off`. */
  targetTriggers?: TargetTriggers | undefined;
  /** Default `dependencies`. */
  loadOrder?: LoadOrder | undefined;
  sourceName?: string | undefined;
  targetName?: string | undefined;
  /** The pipeline's action; default `copy`. */
  action?: string | undefined;
  /** The pipeline's transformation rules (action `transform`); default none. */
  transformations?: readonly PipelineTransformation[] | undefined;
  /** The pipeline's data-quality rules; default none. */
  qualityRules?: readonly PipelineQualityRule[] | undefined;
}

/**
 * Plans copying `entities` from `source` to `target`. `target` null means the
 * target has no snapshot yet: compatibility is then a warning, not checked.
 * Every unresolvable cycle, entity without a row key (with merge) and
 * entity/field missing on either side is reported in `blocking`, never thrown.
 *
 * @example
 * const plan = buildRunPlan(source, target, ["public.accounts", "public.contacts"],
 *   { writeStrategy: "merge", targetTriggers: "off", loadOrder: "dependencies", targetName: "qa" });
 * if (plan.blocking.length > 0) throw new DrayError("failed_precondition", plan.blocking[0].message);
 */
export function buildRunPlan(
  source: SchemaSnapshot,
  target: SchemaSnapshot | null,
  entities: readonly string[],
  options: RunPlanOptions,
): RunPlan {
  const targetTriggers = options.targetTriggers ?? DEFAULT_TARGET_TRIGGERS;
  const loadOrder = options.loadOrder ?? DEFAULT_LOAD_ORDER;
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

  const dependencies: DependencyPlan | undefined =
    selected.length > 0
      ? planDependencies({
          entities: selected,
          allEntities: source.entities,
          writeStrategy: options.writeStrategy,
          targetTriggers,
          loadOrder,
        })
      : undefined;
  for (const problem of dependencies?.blocking ?? []) blocking.push(issueOf(problem));
  for (const w of dependencies?.warnings ?? []) warnings.push(issueOf(w));

  let transforms = new Map<string, EffectiveTransformation[]>();
  if (selected.length === names.length) {
    try {
      transforms = resolveTransformations(
        options.action ?? "copy",
        names,
        options.transformations ?? [],
        source,
      );
    } catch (error) {
      if (!(error instanceof DrayError)) throw error;
      blocking.push({
        code: BLOCKING_CODES.transformationInvalid,
        message: `${error.message} (the source's schema changed since the pipeline was saved: update the pipeline)`,
        details: error.details,
      });
    }
  }
  let rules = new Map<string, FieldQualityRule[]>();
  if (selected.length === names.length) {
    try {
      rules = resolveQualityRules(names, options.qualityRules ?? [], source);
      // A deferred reference is not read by the first pass (existing rows keep their value until the
      // back-fill), so a rule on it could not leave its row out: say so rather than not check it.
      for (const d of dependencies?.deferred ?? []) {
        const checked = (rules.get(d.entity) ?? []).filter((r) => d.fields.includes(r.field));
        for (const r of checked)
          blocking.push({
            code: BLOCKING_CODES.qualityRuleInvalid,
            entity: d.entity,
            message:
              `data-quality rule ${r.rule} on ${d.entity}.${r.field} cannot be checked: the field is a reference ` +
              `deferred to break the cycle ${d.reference} (written after every row is loaded, so no row could be left ` +
              "out for it); remove the rule or check the field in the source",
          });
      }
    } catch (error) {
      if (!(error instanceof DrayError)) throw error;
      blocking.push({
        code: BLOCKING_CODES.qualityRuleInvalid,
        message: `${error.message} (the source's schema changed since the pipeline was saved: update the pipeline)`,
        details: error.details,
      });
    }
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
      rowKey: from ? rowKeyOf(from) : [],
      kind: from ? entityKindOf(from) : "table",
      missingInTarget: targetByName !== undefined && to === undefined,
      fieldsMissingInTarget: [],
      // A copy's plan stays as it was: the section is there for a transform only.
      ...(options.action === "transform" ? { transformations: transforms.get(name) ?? [] } : {}),
      ...(rules.has(name) ? { qualityRules: rules.get(name)! } : {}),
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

  const postponed = dependencies?.postponed ?? [];
  return {
    targetTriggers,
    targetTriggersNote: targetTriggersNote(targetTriggers, postponed.length, loadOrder),
    loadOrder,
    loadOrderNote: loadOrderNote(loadOrder, targetTriggers, postponed.length),
    levels: dependencies?.levels ?? [],
    deferred: dependencies?.deferred ?? [],
    postponed,
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

/**
 * One line on what `targetTriggers` means for a load that postpones `postponed` references
 * (with `loadOrder` parallel, every reference between selected entities).
 *
 * @example
 * targetTriggersNote("fire", 0) // "fire: the target's triggers and rules fire for every row written, …"
 */
export function targetTriggersNote(
  targetTriggers: TargetTriggers,
  postponed: number,
  loadOrder: LoadOrder = DEFAULT_LOAD_ORDER,
): string {
  if (targetTriggers === "fire") {
    return (
      "fire: the target's triggers and rules fire for every row written, and its foreign keys are checked " +
      "by the database as rows are written"
    );
  }
  const which =
    loadOrder === "parallel" ? "between selected tables" : "of NOT NULL cycles or self-references";
  const later =
    postponed === 0
      ? ""
      : `; ${postponed} ${postponed === 1 ? "reference" : "references"} ${which} ` +
        `${postponed === 1 ? "is" : "are"} written unchecked and validated once ${postponed === 1 ? "its" : "their"} ` +
        `tables are loaded`;
  return (
    "off: rows are written with the target's user triggers and rules off (like pg_restore --disable-triggers), " +
    `and the agent checks foreign keys itself${later}`
  );
}

/**
 * One line on what `loadOrder` means for a load that postpones `postponed` references.
 *
 * @example
 * loadOrderNote("parallel", "off", 2)
 * // "parallel: every table loads at once, like pg_restore; the 2 references between selected tables are …"
 */
export function loadOrderNote(
  loadOrder: LoadOrder,
  targetTriggers: TargetTriggers,
  postponed: number,
): string {
  if (loadOrder === "dependencies") {
    return (
      "dependencies: each table loads once the tables it references are loaded (nullable references of " +
      "cycles are loaded NULL, then back-filled)"
    );
  }
  if (targetTriggers === "fire") {
    return (
      'parallel: cannot run with targetTriggers "fire", because the database checks each reference as its row ' +
      'is written: set targetTriggers to "off" or loadOrder to "dependencies"'
    );
  }
  const checked =
    postponed === 0
      ? "no selected table references another"
      : `the ${postponed} ${postponed === 1 ? "reference" : "references"} between selected tables ` +
        `${postponed === 1 ? "is" : "are"} checked once all are loaded (a violation fails the run and is listed by key)`;
  return `parallel: every table loads at once, like pg_restore; ${checked}`;
}

function issueOf(problem: { code: string; message: string; entity?: string; details?: unknown }): PlanIssue {
  const issue: PlanIssue = { code: problem.code, message: problem.message };
  if (problem.entity !== undefined) issue.entity = problem.entity;
  if (problem.details !== undefined) issue.details = problem.details;
  return issue;
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
