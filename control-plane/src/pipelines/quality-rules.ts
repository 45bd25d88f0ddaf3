/**
 * Data-quality rules of a pipeline (seed 02's DataQuality stage): checks of
 * the rules a user sets against the source's entity snapshot, and the rules
 * per entity as a run sends them to the source agent. Pure: no I/O.
 */
import {
  DrayError,
  isIsoDateBound,
  MAX_ONE_OF_VALUES,
  MAX_QUALITY_PATTERN_LENGTH,
  QUALITY_RULES,
  type QualityRuleInfo,
  qualityRuleInfo,
  typeFamily,
} from "@dray/common";
import { RE2JS } from "re2js";
import type { SchemaSnapshot } from "../environments/schema-snapshot.js";
import { regexpPatternProblem } from "./transformations.js";

/** One data-quality rule of a pipeline, as the user sets it and the store keeps it. */
export interface PipelineQualityRule {
  /** `schema.table`, canonical (as in `entities`). */
  entity: string;
  field: string;
  rule: string;
  options: Record<string, unknown>;
}

/** A rule as a run applies it (EntityRunPlan.qualityRules, the agent's FieldQualityRule). */
export interface FieldQualityRule {
  field: string;
  rule: string;
  options: Record<string, unknown>;
}

const knownRules = (): string => QUALITY_RULES.map((r) => r.name).join(", ");

function refuse(i: number, rule: PipelineQualityRule, path: string, reason: string): DrayError {
  const issue = { path: `qualityRules.${i}${path ? `.${path}` : ""}`, message: reason };
  return new DrayError("invalid_argument", `qualityRules[${i}] (${rule.entity}.${rule.field}): ${reason}`, {
    details: { issues: [issue], rule: i, entity: rule.entity, field: rule.field },
  });
}

/** The first problem of a `matches` pattern and flags, or undefined. */
function patternProblem(pattern: string, flags: string): string | undefined {
  if (pattern.length > MAX_QUALITY_PATTERN_LENGTH)
    return `option pattern has ${pattern.length} characters; at most ${MAX_QUALITY_PATTERN_LENGTH} are allowed`;
  const nonRegular = regexpPatternProblem(pattern);
  if (nonRegular) return `option pattern is refused: ${nonRegular}`;
  for (const f of flags)
    if (f !== "i" && f !== "m" && f !== "s") return `option flags may only hold i, m and s, not "${f}"`;
  try {
    RE2JS.compile(pattern);
  } catch (error) {
    return `option pattern is not a valid RE2 pattern: ${(error as Error).message}`;
  }
  return undefined;
}

/** The first problem of a range bound for a column of `family`, or undefined. */
function boundProblem(name: string, value: unknown, family: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (family === "date" || family === "timestamp")
    return typeof value === "string" && isIsoDateBound(value)
      ? undefined
      : `option ${name} must be an ISO date such as 2020-01-31 (optionally with a time) for a ${family} column`;
  return typeof value === "number" && Number.isFinite(value)
    ? undefined
    : `option ${name} must be a number for a ${family} column`;
}

/** The first problem of `options` for rule `info` on a column of `type`, or undefined. */
function optionsProblem(
  info: QualityRuleInfo,
  options: Record<string, unknown>,
  type: string,
): string | undefined {
  const names = new Set(info.options.map((o) => o.name));
  for (const key of Object.keys(options)) {
    if (!names.has(key))
      return `option ${key} is not an option of ${info.name} (${
        info.options.length === 0 ? "it takes no options" : `known: ${[...names].join(", ")}`
      })`;
  }
  for (const o of info.options) {
    if (o.required && (options[o.name] === undefined || options[o.name] === null))
      return `option ${o.name} of ${info.name} is required: ${o.description}`;
  }
  const family = typeFamily(type) ?? "other";
  switch (info.name) {
    case "matches": {
      if (typeof options.pattern !== "string") return "option pattern must be a string";
      if (options.flags !== undefined && typeof options.flags !== "string")
        return "option flags must be a string";
      return patternProblem(options.pattern, (options.flags as string | undefined) ?? "");
    }
    case "range": {
      if (options.min === undefined && options.max === undefined)
        return "range needs min, max or both: set the bounds the values must stay within";
      const problem = boundProblem("min", options.min, family) ?? boundProblem("max", options.max, family);
      if (problem) return problem;
      if (
        options.min !== undefined &&
        options.max !== undefined &&
        (options.min as number) > (options.max as number)
      )
        return `option min (${String(options.min)}) is above max (${String(options.max)})`;
      return undefined;
    }
    case "max_length": {
      const length = options.length;
      return typeof length === "number" && Number.isInteger(length) && length >= 1
        ? undefined
        : "option length must be a whole number of characters, at least 1";
    }
    case "one_of": {
      const values = options.values;
      if (!Array.isArray(values) || !values.every((v) => typeof v === "string"))
        return 'option values must be an array of strings (the text form of each allowed value, e.g. ["1", "2"])';
      if (values.length === 0) return "option values must hold at least one value";
      if (values.length > MAX_ONE_OF_VALUES)
        return `option values holds ${values.length} values; at most ${MAX_ONE_OF_VALUES} are allowed`;
      return undefined;
    }
    default:
      return undefined;
  }
}

/**
 * Checks a pipeline's data-quality rules against the source snapshot and
 * returns them per selected entity (only entities with one), in rule order.
 * Throws `invalid_argument` naming the rule (`qualityRules[i] (schema.table.field)`)
 * and the reason: an entity not selected or not in the snapshot, an unknown or
 * generated field, an unknown rule, one that does not fit the column type,
 * and invalid options (a `matches` pattern that is not linear-time RE2, an
 * empty range, …). Several rules may check one field.
 */
export function resolveQualityRules(
  entities: readonly string[],
  rules: readonly PipelineQualityRule[],
  snapshot: SchemaSnapshot,
): Map<string, FieldQualityRule[]> {
  const selected = new Set(entities);
  const byName = new Map(snapshot.entities.map((e) => [e.entity, e]));
  const out = new Map<string, FieldQualityRule[]>();
  rules.forEach((rule, i) => {
    if (!selected.has(rule.entity))
      throw refuse(
        i,
        rule,
        "entity",
        `entity ${rule.entity} is not selected in this pipeline: add it to "entities" (selected: ${entities.join(", ")})`,
      );
    const entity = byName.get(rule.entity);
    if (!entity)
      throw refuse(
        i,
        rule,
        "entity",
        `entity ${rule.entity} is not in the source's entity snapshot (of ${snapshot.capturedAt}): refresh it or remove the rule`,
      );
    const column = entity.fields.find((f) => f.name === rule.field);
    if (!column)
      throw refuse(
        i,
        rule,
        "field",
        `field ${rule.field} does not exist in ${rule.entity} (fields: ${entity.fields.map((f) => f.name).join(", ")})`,
      );
    if (column.generated)
      throw refuse(
        i,
        rule,
        "field",
        `field ${rule.field} is generated: it is not copied, so it is not checked`,
      );
    const info = qualityRuleInfo(rule.rule);
    if (!info) throw refuse(i, rule, "rule", `rule "${rule.rule}" is not known; known: ${knownRules()}`);
    const family = typeFamily(column.type);
    if (!info.families.includes("any") && (family === undefined || !info.families.includes(family)))
      throw refuse(
        i,
        rule,
        "rule",
        `rule ${info.name} does not fit column type ${column.type} (it fits ${info.families.join(", ")} columns)`,
      );
    const problem = optionsProblem(info, rule.options ?? {}, column.type);
    if (problem) throw refuse(i, rule, "options", `${info.name}: ${problem}`);
    out.set(rule.entity, [
      ...(out.get(rule.entity) ?? []),
      { field: rule.field, rule: info.name, options: { ...rule.options } },
    ]);
  });
  return out;
}
