import { DrayError } from "@dray/common";
import type { Condition, ConditionOperator } from "../../connector.js";
import { quoteIdentifier, validateIdentifier } from "./identifiers.js";

/**
 * Writes the SQL that stands for the parameter at 1-based `index` with `value`:
 * a `$n` placeholder by default. It must never put the value itself into SQL.
 */
export type Placeholder = (index: number, value: unknown) => string;

/** `$1`, `$2`, …: placeholders of the extended query protocol. */
export const dollarPlaceholder: Placeholder = (index) => `$${index}`;

/**
 * Collects bound parameter values and hands out their placeholders (`$n`
 * unless another {@link Placeholder} is given, e.g. a session setting for COPY,
 * which takes no parameters).
 */
export class BoundParams {
  readonly values: unknown[] = [];

  constructor(private readonly placeholder: Placeholder = dollarPlaceholder) {}

  /** Adds a value; returns its placeholder. */
  add(value: unknown): string {
    this.values.push(value);
    return this.placeholder(this.values.length, value);
  }
}

/** What the builder needs to know of a field: its name and the type its text values are cast to. */
export interface ConditionField {
  name: string;
  /** Type name from the catalog (`format_type`), never from the request. */
  castType: string;
}

const COMPARISONS: Partial<Record<ConditionOperator, string>> = {
  eq: "=",
  lt: "<",
  lte: "<=",
  gt: ">",
  gte: ">=",
};

function requireValues(condition: Condition, count: number | "any"): string[] {
  const values = condition.values ?? [];
  if (!Array.isArray(values) || values.some((v) => typeof v !== "string"))
    throw new DrayError("invalid_argument", `condition on ${condition.field}: values must be strings`);
  if (count !== "any" && values.length !== count)
    throw new DrayError(
      "invalid_argument",
      `condition ${condition.operator} on ${condition.field} takes ${count} value(s), got ${values.length}`,
    );
  for (const value of values)
    if (value.includes("\0"))
      throw new DrayError("invalid_argument", `condition on ${condition.field}: values must not contain NUL`);
  return values;
}

/**
 * SQL for one condition. Values are bound parameters cast to the field's
 * catalog type (`"f" >= $1::integer`), so ranges compare as the type does, not
 * as text. `neq` keeps rows where the field is NULL (IS DISTINCT FROM); `in`
 * binds its list as one JSON array, so any length is fine (empty = no rows).
 */
export function conditionSql(condition: Condition, field: ConditionField, params: BoundParams): string {
  const column = quoteIdentifier(field.name);
  const type = field.castType;
  const comparison = COMPARISONS[condition.operator];
  if (comparison) {
    const [value] = requireValues(condition, 1);
    return `${column} ${comparison} ${params.add(value)}::${type}`;
  }
  switch (condition.operator) {
    case "neq": {
      const [value] = requireValues(condition, 1);
      return `${column} is distinct from ${params.add(value)}::${type}`;
    }
    case "is_null":
      requireValues(condition, 0);
      return `${column} is null`;
    case "is_not_null":
      requireValues(condition, 0);
      return `${column} is not null`;
    case "in": {
      const values = requireValues(condition, "any");
      if (values.length === 0) return "false";
      const list = params.add(JSON.stringify(values));
      return `${column} = any(array(select pg_catalog.json_array_elements_text(${list}::text::json)::${type}))`;
    }
    default:
      throw new DrayError(
        "invalid_argument",
        `unknown condition operator ${JSON.stringify(condition.operator)}`,
      );
  }
}

/**
 * SQL terms (to be AND-ed) for all conditions. `resolve` maps a field name to
 * its catalog entry and throws `not_found` for unknown fields.
 */
export function conditionsSql(
  conditions: readonly Condition[] | undefined,
  resolve: (name: string) => ConditionField,
  params: BoundParams,
): string[] {
  if (conditions === undefined) return [];
  if (!Array.isArray(conditions))
    throw new DrayError("invalid_argument", "where must be a list of conditions");
  return conditions.map((condition) => {
    validateIdentifier("field", condition?.field);
    return conditionSql(condition, resolve(condition.field), params);
  });
}
