/**
 * The catalogue of data-quality rules (seed 02's DataQuality stage): per-field
 * checks that the source agent runs on every row it reads, before any
 * transformation. A row that fails a rule is not copied; it is reported by
 * its (transformed) key and the rule, and counted as skipped. Shared by the
 * control plane (validation, views) and the source agent (which runs them).
 *
 * Every rule but `not_null` lets NULL pass, as a SQL CHECK constraint does.
 */
import type { TypeFamily } from "./transformers.js";

/** The names of the rules. */
export type QualityRuleName = "not_null" | "matches" | "range" | "max_length" | "one_of";

/** One option of a rule. */
export interface QualityRuleOption {
  name: string;
  type: "string" | "integer" | "number-or-string" | "string[]";
  required: boolean;
  description: string;
}

/** A rule as the catalogue describes it. */
export interface QualityRuleInfo {
  name: QualityRuleName;
  /** Column type families the rule fits; `any` fits every column. */
  families: readonly TypeFamily[];
  options: readonly QualityRuleOption[];
  description: string;
  /** An example: options, a value that passes and one that fails. */
  example: { options: Record<string, unknown>; passes: string; fails: string };
}

/** The longest `matches` pattern, in characters (as for regexp_replace). */
export const MAX_QUALITY_PATTERN_LENGTH = 1000;

/** The most values a `one_of` rule may list. */
export const MAX_ONE_OF_VALUES = 1000;

/** Every data-quality rule Dray knows, by name. */
export const QUALITY_RULES: readonly QualityRuleInfo[] = [
  {
    name: "not_null",
    families: ["any"],
    options: [],
    description: "The value must not be NULL.",
    example: { options: {}, passes: "ada@example.com", fails: "NULL" },
  },
  {
    name: "matches",
    families: ["text", "integer", "numeric", "uuid", "date", "timestamp"],
    options: [
      {
        name: "pattern",
        type: "string",
        required: true,
        description:
          "an RE2 pattern the value's text form must match somewhere (anchor it with ^…$ to match the whole value)",
      },
      { name: "flags", type: "string", required: false, description: "i (case-insensitive), m, s" },
    ],
    description: "The value must match an RE2 pattern (linear time: no backreferences, no lookaround).",
    example: {
      options: { pattern: "^[^@\\s]+@[^@\\s]+$" },
      passes: "ada@example.com",
      fails: "ada at example",
    },
  },
  {
    name: "range",
    families: ["integer", "numeric", "date", "timestamp"],
    options: [
      {
        name: "min",
        type: "number-or-string",
        required: false,
        description: "the smallest value allowed (a number, or an ISO date such as 2020-01-01 for dates)",
      },
      {
        name: "max",
        type: "number-or-string",
        required: false,
        description: "the largest value allowed (a number, or an ISO date for dates)",
      },
    ],
    description: "The value must lie between min and max, both included (at least one of them is needed).",
    example: { options: { min: 0, max: 150 }, passes: "42", fails: "-1" },
  },
  {
    name: "max_length",
    families: ["text"],
    options: [
      { name: "length", type: "integer", required: true, description: "the most characters allowed" },
    ],
    description: "The value must have at most `length` characters.",
    example: { options: { length: 5 }, passes: "Leeds", fails: "London" },
  },
  {
    name: "one_of",
    families: ["text", "integer", "numeric", "uuid", "date"],
    options: [
      {
        name: "values",
        type: "string[]",
        required: true,
        description: "the values allowed, in their text form",
      },
    ],
    description: "The value must be one of a list.",
    example: { options: { values: ["active", "closed"] }, passes: "active", fails: "pending" },
  },
];

const BY_NAME = new Map(QUALITY_RULES.map((r) => [r.name, r]));

/** The catalogue entry of a rule, or undefined. */
export function qualityRuleInfo(name: string): QualityRuleInfo | undefined {
  return BY_NAME.get(name as QualityRuleName);
}

/** An ISO date or timestamp bound: `YYYY-MM-DD`, optionally followed by a time. */
export function isIsoDateBound(value: string): boolean {
  if (value.length < 10 || value.length > 35) return false;
  for (let i = 0; i < 10; i++) {
    const c = value.charCodeAt(i);
    const digit = c >= 48 && c <= 57;
    if ((i === 4 || i === 7) !== (c === 45) || (!digit && i !== 4 && i !== 7)) return false;
  }
  return value.length === 10 || value[10] === " " || value[10] === "T";
}
