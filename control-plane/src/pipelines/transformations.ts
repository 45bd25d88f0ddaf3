/**
 * Field transformations of a `transform` pipeline (issue 11): checks of the
 * rules a user sets against the source's entity snapshot, and the effective
 * transformations per entity, with a transformer set on a referenced key
 * carried over to every referencing field among the selected entities so joins
 * still match. Pure: no I/O.
 */
import {
  DrayError,
  fitsType,
  TRANSFORMERS,
  type TransformerInfo,
  type TransformerKind,
  transformerInfo,
} from "@dray/common";
import { type EntitySnapshot, rowKeyOf, type SchemaSnapshot } from "../environments/schema-snapshot.js";

/** One transformation rule of a pipeline, as the user sets it and the store keeps it. */
export interface PipelineTransformation {
  /** `schema.table`, canonical (as in `entities`). */
  entity: string;
  field: string;
  transformer: string;
  options: Record<string, unknown>;
}

/** A transformation as a run applies it (EntityRunPlan.transforms, the agent's FieldTransform). */
export interface FieldTransformPlan {
  field: string;
  transformer: string;
  options: Record<string, unknown>;
}

/** A transformation as the plan and the pipeline view show it. */
export interface EffectiveTransformation extends FieldTransformPlan {
  kind: TransformerKind;
  /**
   * `schema.table.field` of the referenced key this one was carried over from
   * (this field references it); absent for a rule the user set.
   */
  propagatedFrom?: string;
}

/** Key-safe transformers suggested for keys. */
export const KEY_SAFE_TRANSFORMERS = ["ff1", "permute", "hash", "email"] as const;

/** Longest `regexp_replace` pattern, in characters. */
export const MAX_REGEXP_PATTERN_LENGTH = 1000;

/** Deepest nesting of wrapper transformers (`json_path`, `array_each`). */
const MAX_NESTING = 4;

/** A validation problem at a field path, as in `details.issues` of a 400. */
interface Issue {
  path: string;
  message: string;
}

const knownNames = (): string => TRANSFORMERS.map((t) => t.name).join(", ");

function ruleLabel(i: number, rule: Pick<PipelineTransformation, "entity" | "field">): string {
  return `transformations[${i}] (${rule.entity}.${rule.field})`;
}

function refuse(i: number, rule: PipelineTransformation, path: string, reason: string): DrayError {
  const issue: Issue = { path: `transformations.${i}${path ? `.${path}` : ""}`, message: reason };
  return new DrayError("invalid_argument", `${ruleLabel(i, rule)}: ${reason}`, {
    details: { issues: [issue], rule: i, entity: rule.entity, field: rule.field },
  });
}

/**
 * The first problem of a regexp_replace pattern, or undefined: over
 * {@link MAX_REGEXP_PATTERN_LENGTH} characters, a backreference (`\1`…`\9`,
 * `\k<name>`) or lookaround (`(?=`, `(?!`, `(?<=`, `(?<!`). RE2 runs every
 * other pattern in linear time. A plain character walk: escapes and
 * character classes are skipped, no regular expression runs on the input.
 *
 * @example
 * regexpPatternProblem("(a+)+$") // undefined
 * regexpPatternProblem("(a)\\1") // "backreference \\1 at character 4 …"
 */
export function regexpPatternProblem(pattern: string): string | undefined {
  if (pattern.length > MAX_REGEXP_PATTERN_LENGTH) {
    return `the pattern has ${pattern.length} characters; at most ${MAX_REGEXP_PATTERN_LENGTH} are allowed`;
  }
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "\\") {
      const next = pattern[i + 1];
      if (!inClass && next !== undefined && next >= "1" && next <= "9") {
        return (
          `backreference \\${next} at character ${i + 1}: RE2 has no backreferences; ` +
          "match the group again or transform the field differently"
        );
      }
      if (!inClass && next === "k" && pattern[i + 2] === "<") {
        return `named backreference \\k<…> at character ${i + 1}: RE2 has no backreferences`;
      }
      i++;
      continue;
    }
    if (inClass) {
      if (c === "]") inClass = false;
      continue;
    }
    if (c === "[") {
      inClass = true;
      // A `]` right after `[` or `[^` is a literal member of the class.
      if (pattern[i + 1] === "^") i++;
      if (pattern[i + 1] === "]") i++;
      continue;
    }
    if (c === "(" && pattern[i + 1] === "?") {
      const a = pattern[i + 2];
      const b = pattern[i + 3];
      if (a === "=" || a === "!" || (a === "<" && (b === "=" || b === "!"))) {
        const what = `(?${a}${a === "<" ? b : ""}`;
        return `lookaround ${what} at character ${i + 1}: RE2 has no lookahead or lookbehind; remove it`;
      }
    }
  }
  return undefined;
}

const TYPE_WORDS: Record<string, string> = {
  string: "a string",
  integer: "an integer",
  number: "a number",
  boolean: "true or false",
  "string[]": "an array of strings",
  transformer: "an object { name, options }",
};

function hasType(value: unknown, type: string): boolean {
  switch (type) {
    case "string":
      return typeof value === "string";
    case "integer":
      return typeof value === "number" && Number.isInteger(value);
    case "number":
      return typeof value === "number" && Number.isFinite(value);
    case "boolean":
      return typeof value === "boolean";
    case "string[]":
      return Array.isArray(value) && value.every((v) => typeof v === "string");
    case "transformer":
      return typeof value === "object" && value !== null && !Array.isArray(value);
    default:
      return false;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Allowed values of enumerated string options. */
const ENUMS: Record<string, Record<string, readonly string[]>> = {
  hash: { encoding: ["hex", "base32"] },
  ff1: { alphabet: ["digits", "alphanumeric"] },
};
const LOCALES = ["en", "fr", "de"] as const;

/** The `{name}` placeholders of a template, by a character walk. */
function placeholders(template: string): string[] | string {
  const out: string[] = [];
  let open = -1;
  for (let i = 0; i < template.length; i++) {
    const c = template[i];
    if (c === "{") {
      if (open >= 0) return `"{" at character ${i + 1} inside another placeholder`;
      open = i;
    } else if (c === "}" && open >= 0) {
      const name = template.slice(open + 1, i);
      if (name.length === 0) return `empty placeholder {} at character ${open + 1}`;
      out.push(name);
      open = -1;
    }
  }
  if (open >= 0) return `placeholder at character ${open + 1} is not closed with "}"`;
  return out;
}

/** What a transformer is checked against: the column's type and the entity's fields. */
interface OptionContext {
  /** The column type the transformer applies to; undefined inside json (any JSON value). */
  type: string | undefined;
  fields: readonly string[];
}

/**
 * The first problem of `options` for `info`, or undefined: unknown option
 * names, missing required ones, wrong JSON types, and the value checks of
 * some transformers. `at` prefixes option names in messages (nested ones).
 */
function optionsProblem(
  info: TransformerInfo,
  options: Record<string, unknown>,
  ctx: OptionContext,
  at: string,
  depth: number,
): string | undefined {
  const names = new Set(info.options.map((o) => o.name));
  const allowed =
    info.options.length === 0
      ? "it takes no options"
      : `known: ${info.options.map((o) => o.name).join(", ")}`;
  for (const key of Object.keys(options)) {
    if (!names.has(key)) return `option ${at}${key} is not an option of ${info.name} (${allowed})`;
  }
  for (const o of info.options) {
    const value = options[o.name];
    if (value === undefined || value === null) {
      if (o.required) return `option ${at}${o.name} of ${info.name} is required: ${o.description}`;
      continue;
    }
    if (!hasType(value, o.type)) {
      return `option ${at}${o.name} of ${info.name} must be ${TYPE_WORDS[o.type]} (${o.description})`;
    }
    const allowedValues = o.name === "locale" ? LOCALES : ENUMS[info.name]?.[o.name];
    if (allowedValues && !allowedValues.includes(value as string)) {
      return `option ${at}${o.name} of ${info.name} must be one of ${allowedValues.join(", ")}, not "${String(value)}"`;
    }
    if (o.type === "transformer") {
      const nested = nestedProblem(info, value as Record<string, unknown>, ctx, `${at}${o.name}.`, depth);
      if (nested) return nested;
    }
  }
  return valueProblem(info, options, ctx, at);
}

/** Checks of option values beyond their JSON type. */
function valueProblem(
  info: TransformerInfo,
  options: Record<string, unknown>,
  ctx: OptionContext,
  at: string,
): string | undefined {
  const nonNegative = (name: string): string | undefined => {
    const v = options[name];
    return typeof v === "number" && v < 0
      ? `option ${at}${name} of ${info.name} must be at least 0`
      : undefined;
  };
  switch (info.name) {
    case "regexp_replace": {
      const problem = regexpPatternProblem(options.pattern as string);
      if (problem) return `option ${at}pattern of regexp_replace is refused: ${problem}`;
      const flags = (options.flags as string | undefined) ?? "";
      for (const f of flags) {
        if (f !== "i" && f !== "m" && f !== "s") {
          return `option ${at}flags of regexp_replace may only hold i, m and s, not "${f}"`;
        }
      }
      return undefined;
    }
    case "hash": {
      const length = options.length;
      return typeof length === "number" && length < 16
        ? `option ${at}length of hash must be at least 16 (fewer characters would not stay unique)`
        : undefined;
    }
    case "mask": {
      const char = options.char;
      if (typeof char === "string" && [...char].length !== 1) {
        return `option ${at}char of mask must be exactly one character`;
      }
      return nonNegative("keepFirst") ?? nonNegative("keepLast");
    }
    case "noise_date":
      return nonNegative("days");
    case "noise_number":
      return nonNegative("percent");
    case "choice":
      return (options.values as string[]).length === 0
        ? `option ${at}values of choice must hold at least one value`
        : undefined;
    case "template": {
      const found = placeholders(options.template as string);
      if (typeof found === "string") return `option ${at}template of template is malformed: ${found}`;
      const missing = found.filter((name) => !ctx.fields.includes(name));
      return missing.length > 0
        ? `option ${at}template of template names ${missing.map((m) => `{${m}}`).join(", ")}, not a field of the entity`
        : undefined;
    }
    default:
      return undefined;
  }
}

/** The problem of a wrapper's nested `{ name, options }`, or undefined. */
function nestedProblem(
  wrapper: TransformerInfo,
  nested: Record<string, unknown>,
  ctx: OptionContext,
  at: string,
  depth: number,
): string | undefined {
  if (depth >= MAX_NESTING) return `option ${at.slice(0, -1)} nests transformers deeper than ${MAX_NESTING}`;
  for (const key of Object.keys(nested)) {
    if (key !== "name" && key !== "options") {
      return `option ${at}${key} is not known: a nested transformer is { name, options }`;
    }
  }
  if (typeof nested.name !== "string") return `option ${at}name must be a transformer name (${knownNames()})`;
  const info = transformerInfo(nested.name);
  if (!info) return `option ${at}name: transformer "${nested.name}" is not known (known: ${knownNames()})`;
  if (info.name === "template")
    return `option ${at}name: template cannot be nested; set it on the field itself`;
  const options = nested.options ?? {};
  if (!isPlainObject(options)) return `option ${at}options must be an object`;
  // Elements of an array column have the element type; values inside json any JSON type.
  const type = wrapper.name === "array_each" && ctx.type?.endsWith("[]") ? ctx.type.slice(0, -2) : undefined;
  if (type !== undefined && !fitsType(info, type)) {
    return `option ${at}name: ${info.name} does not fit elements of type ${type} (it fits ${info.families.join(", ")})`;
  }
  return optionsProblem(info, options, { type, fields: ctx.fields }, `${at}options.`, depth + 1);
}

/** Identifies one field of one entity in maps. */
const fieldKey = (entity: string, field: string): string => `${entity}\u0000${field}`;

/** For each `entity.field` among the selected entities, the selected fields that reference it. */
function referencersOf(
  selected: readonly EntitySnapshot[],
): Map<string, { entity: string; field: string }[]> {
  const names = new Set(selected.map((e) => e.entity));
  const out = new Map<string, { entity: string; field: string }[]>();
  for (const e of selected) {
    for (const r of e.references) {
      if (!names.has(r.referencedEntity)) continue;
      r.fields.forEach((field, i) => {
        const referenced = r.referencedFields[i];
        if (referenced === undefined) return;
        const key = fieldKey(r.referencedEntity, referenced);
        out.set(key, [...(out.get(key) ?? []), { entity: e.entity, field }]);
      });
    }
  }
  return out;
}

/** Options compared independently of key order. */
function sameOptions(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const canonical = (v: unknown): unknown =>
    isPlainObject(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, canonical(v[k])]),
        )
      : Array.isArray(v)
        ? v.map(canonical)
        : v;
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

/**
 * Checks a pipeline's transformations against the source snapshot and returns
 * the effective transformations per selected entity (only entities with one),
 * each in field order of the rules. Throws `invalid_argument` naming the rule
 * (`transformations[i] (schema.table.field)`) and the reason: transformations
 * on an action other than `transform` or none on `transform`, an entity not
 * selected, an unknown or generated field, an unknown transformer, one that
 * does not fit the column type, invalid options, the same field twice, a
 * lossy transformer on a primary key, row key or referenced key, and a
 * referencing field set differently from the key it references.
 */
export function resolveTransformations(
  action: string,
  entities: readonly string[],
  rules: readonly PipelineTransformation[],
  snapshot: SchemaSnapshot,
): Map<string, EffectiveTransformation[]> {
  if (action !== "transform") {
    if (rules.length > 0) {
      throw new DrayError(
        "invalid_argument",
        `transformations need action transform: this pipeline's action is "${action}"; set "action": "transform" ` +
          `or send "transformations": []`,
        {
          details: {
            issues: [{ path: "transformations", message: "transformations need action transform" }],
          },
        },
      );
    }
    return new Map();
  }
  if (rules.length === 0) {
    throw new DrayError(
      "invalid_argument",
      'action transform needs at least one transformation: add { entity, field, transformer, options } to "transformations", ' +
        'or use "action": "copy"',
      {
        details: {
          issues: [{ path: "transformations", message: "must not be empty with action transform" }],
        },
      },
    );
  }
  const selectedNames = new Set(entities);
  const byName = new Map(snapshot.entities.map((e) => [e.entity, e]));
  const selected = entities.flatMap((name) => byName.get(name) ?? []);
  const referencers = referencersOf(selected);
  const set = new Map<string, number>();

  rules.forEach((rule, i) => {
    if (!selectedNames.has(rule.entity)) {
      throw refuse(
        i,
        rule,
        "entity",
        `entity ${rule.entity} is not selected in this pipeline: add it to "entities" (selected: ${entities.join(", ")})`,
      );
    }
    const entity = byName.get(rule.entity);
    if (!entity) {
      throw refuse(
        i,
        rule,
        "entity",
        `entity ${rule.entity} is not in the source's entity snapshot (of ${snapshot.capturedAt}): refresh it or remove the rule`,
      );
    }
    const column = entity.fields.find((f) => f.name === rule.field);
    if (!column) {
      throw refuse(
        i,
        rule,
        "field",
        `field ${rule.field} does not exist in ${rule.entity} (snapshot of ${snapshot.capturedAt}; fields: ` +
          `${entity.fields.map((f) => f.name).join(", ")}); refresh the snapshot if the schema changed since`,
      );
    }
    if (column.generated) {
      throw refuse(
        i,
        rule,
        "field",
        `field ${rule.field} is generated: it is not copied, so it cannot be transformed`,
      );
    }
    const earlier = set.get(fieldKey(rule.entity, rule.field));
    if (earlier !== undefined) {
      throw refuse(
        i,
        rule,
        "field",
        `the field is already transformed by transformations[${earlier}]: keep one rule`,
      );
    }
    set.set(fieldKey(rule.entity, rule.field), i);
    const info = transformerInfo(rule.transformer);
    if (!info) {
      throw refuse(
        i,
        rule,
        "transformer",
        `transformer "${rule.transformer}" is not known; known: ${knownNames()}`,
      );
    }
    if (!fitsType(info, column.type)) {
      throw refuse(
        i,
        rule,
        "transformer",
        `transformer ${info.name} does not fit column type ${column.type} (it fits ${info.families.join(", ")} ` +
          `columns); pick a transformer for ${column.type}`,
      );
    }
    if (info.name === "null" && !column.nullable) {
      throw refuse(
        i,
        rule,
        "transformer",
        `transformer null needs a nullable column and ${rule.field} is NOT NULL`,
      );
    }
    const problem = optionsProblem(
      info,
      rule.options,
      { type: column.type, fields: entity.fields.map((f) => f.name) },
      "",
      0,
    );
    if (problem) throw refuse(i, rule, "options", problem);
    if (info.kind === "lossy") {
      const key = keyRole(entity, rule.field, referencers.get(fieldKey(rule.entity, rule.field)));
      if (key) {
        throw refuse(
          i,
          rule,
          "transformer",
          `${rule.entity}.${rule.field} is ${key}, and ${info.name} is lossy (distinct values may become one): ` +
            `use a key-safe transformer: ${KEY_SAFE_TRANSFORMERS.join(", ")}`,
        );
      }
    }
  });
  return propagate(rules, byName, referencers, selectedNames);
}

/** What makes `field` a key (for the lossy refusal), or undefined. */
function keyRole(
  entity: EntitySnapshot,
  field: string,
  referencedBy: readonly { entity: string; field: string }[] | undefined,
): string | undefined {
  if (entity.primaryKey.includes(field)) return "part of the primary key";
  if (rowKeyOf(entity).includes(field)) return "part of the row key (a unique key of NOT NULL fields)";
  const unique = (entity.uniqueKeys ?? []).find((key) => key.includes(field));
  if (unique) return `part of the unique key (${unique.join(", ")})`;
  if (referencedBy && referencedBy.length > 0) {
    const first = referencedBy[0]!;
    return `referenced by a foreign key of ${first.entity}.${first.field}`;
  }
  return undefined;
}

/**
 * The rules plus, for each ruled key field, the same transformer on every
 * selected field referencing it (transitively). A referencing field the user
 * set differently is refused, naming both.
 */
function propagate(
  rules: readonly PipelineTransformation[],
  byName: Map<string, EntitySnapshot>,
  referencers: Map<string, { entity: string; field: string }[]>,
  selectedNames: ReadonlySet<string>,
): Map<string, EffectiveTransformation[]> {
  const effective = new Map<string, EffectiveTransformation & { entity: string; rule?: number }>();
  const queue: string[] = [];
  rules.forEach((rule, i) => {
    const key = fieldKey(rule.entity, rule.field);
    const info = transformerInfo(rule.transformer)!;
    effective.set(key, {
      entity: rule.entity,
      field: rule.field,
      transformer: info.name,
      options: rule.options,
      kind: info.kind,
      rule: i,
    });
    queue.push(key);
  });
  while (queue.length > 0) {
    const key = queue.shift()!;
    const from = effective.get(key)!;
    for (const ref of referencers.get(key) ?? []) {
      const refKey = fieldKey(ref.entity, ref.field);
      const origin = `${from.entity}.${from.field}`;
      const existing = effective.get(refKey);
      if (existing) {
        if (existing.transformer === from.transformer && sameOptions(existing.options, from.options))
          continue;
        const by = (e: { rule?: number; propagatedFrom?: string }) =>
          e.rule !== undefined
            ? `transformations[${e.rule}]`
            : `the transformer carried over from ${e.propagatedFrom}`;
        const rule = existing.rule ?? from.rule ?? 0;
        const label = ruleLabel(rule, rules[rule]!);
        throw new DrayError(
          "invalid_argument",
          `${label}: ${ref.entity}.${ref.field} references ${origin}, which is transformed with ` +
            `${from.transformer} (${by(from)}), but ${ref.entity}.${ref.field} is set to ${existing.transformer} ` +
            `(${by(existing)}): a referencing field must be transformed exactly like the key it references so ` +
            `joins still match; remove the rule on ${ref.entity}.${ref.field} (it inherits ${from.transformer})`,
          {
            details: {
              issues: [{ path: `transformations.${rule}`, message: `conflicts with ${origin}` }],
              rule,
              entity: ref.entity,
              field: ref.field,
              referenced: origin,
            },
          },
        );
      }
      const column = byName.get(ref.entity)?.fields.find((f) => f.name === ref.field);
      const info = transformerInfo(from.transformer)!;
      if (column && !fitsType(info, column.type)) {
        const rule = from.rule ?? 0;
        throw refuse(
          rule,
          rules[rule]!,
          "transformer",
          `${from.transformer} set on ${origin} would carry over to ${ref.entity}.${ref.field}, which references ` +
            `it, but does not fit its type ${column.type}`,
        );
      }
      effective.set(refKey, {
        entity: ref.entity,
        field: ref.field,
        transformer: from.transformer,
        options: from.options,
        kind: from.kind,
        propagatedFrom: origin,
      });
      queue.push(refKey);
    }
  }
  refuseOrphanReferencing(rules, byName, effective, selectedNames);
  const out = new Map<string, EffectiveTransformation[]>();
  for (const { entity, rule: _rule, ...t } of effective.values()) {
    out.set(entity, [...(out.get(entity) ?? []), t]);
  }
  return out;
}

/**
 * Refuses a rule (other than `null`) on a field that references a key of a
 * selected entity when that key is not transformed: the transformed values
 * would reference rows that do not exist.
 */
function refuseOrphanReferencing(
  rules: readonly PipelineTransformation[],
  byName: Map<string, EntitySnapshot>,
  effective: Map<string, unknown>,
  selectedNames: ReadonlySet<string>,
): void {
  rules.forEach((rule, i) => {
    if (rule.transformer === "null") return;
    for (const r of byName.get(rule.entity)?.references ?? []) {
      const at = r.fields.indexOf(rule.field);
      const referenced = r.referencedFields[at];
      if (at < 0 || referenced === undefined || !selectedNames.has(r.referencedEntity)) continue;
      if (!effective.has(fieldKey(r.referencedEntity, referenced))) {
        throw refuse(
          i,
          rule,
          "field",
          `${rule.entity}.${rule.field} references ${r.referencedEntity}.${referenced} (foreign key ${r.name}), ` +
            `which is not transformed: transformed values would reference rows that do not exist. Set the ` +
            `transformer on ${r.referencedEntity}.${referenced} instead (a key-safe one: ` +
            `${KEY_SAFE_TRANSFORMERS.join(", ")}); it is carried over to ${rule.entity}.${rule.field}`,
        );
      }
    }
  });
}

/**
 * The effective transformations of a pipeline when its rules still hold
 * against `snapshot`; an empty map for a pipeline without any. Throws like
 * {@link resolveTransformations} when the schema changed under them.
 */
export function effectiveTransformations(
  pipeline: {
    action: string;
    entities: readonly string[];
    transformations?: readonly PipelineTransformation[];
  },
  snapshot: SchemaSnapshot,
): Map<string, EffectiveTransformation[]> {
  const rules = pipeline.transformations ?? [];
  if (rules.length === 0 && pipeline.action !== "transform") return new Map();
  return resolveTransformations(pipeline.action, pipeline.entities, rules, snapshot);
}

/** The run form of effective transformations: field, transformer and options. */
export function toFieldTransforms(
  list: readonly EffectiveTransformation[] | undefined,
): FieldTransformPlan[] {
  return (list ?? []).map(({ field, transformer, options }) => ({ field, transformer, options }));
}
