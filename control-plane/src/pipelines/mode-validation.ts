/**
 * Checks of the settings that continuous mode and `files` pipelines add: pure
 * functions over the settings and the entity snapshot, each failure naming the
 * field and what to do.
 */
import { DrayError } from "@dray/common";
import { rowKeyOf, type SchemaSnapshot } from "../environments/schema-snapshot.js";
import type { PipelineSettings } from "./pipeline-validation.js";
import { type FieldQualityRule, resolveQualityRules } from "./quality-rules.js";

interface Issue {
  path: string;
  message: string;
}

function invalid(message: string, issues: Issue[]): DrayError {
  return new DrayError("invalid_argument", message, { details: { issues } });
}

/**
 * A continuous pipeline upserts what changed: it needs writeStrategy `merge`,
 * a row key on every entity, no reference cycle broken by a second pass, and a
 * cursor field present on every entity. Once pipelines must not set a cursor.
 *
 * @throws DrayError `invalid_argument`
 */
export function checkContinuousSettings(settings: PipelineSettings, source: SchemaSnapshot): void {
  if ((settings.mode ?? "once") === "once") {
    if (settings.cursorField)
      throw invalid(
        'cursorField only applies to continuous pipelines: set mode "continuous" or leave it out',
        [{ path: "cursorField", message: 'needs mode "continuous"' }],
      );
    return;
  }
  if (settings.writeStrategy !== "merge")
    throw invalid(
      `a continuous pipeline writes changed rows again, so it needs writeStrategy "merge" (not "${settings.writeStrategy}")`,
      [{ path: "writeStrategy", message: 'must be "merge" for mode "continuous"' }],
    );
  const byName = new Map(source.entities.map((e) => [e.entity, e]));
  const issues: Issue[] = [];
  settings.entities.forEach((name, i) => {
    const entity = byName.get(name);
    if (!entity) return;
    if (rowKeyOf(entity).length === 0)
      issues.push({
        path: `entities.${i}`,
        message: `${name} has no primary key or NOT NULL unique key: a continuous pipeline merges by the row key`,
      });
    if (settings.cursorField && !entity.fields.some((f) => f.name === settings.cursorField))
      issues.push({
        path: "cursorField",
        message: `${name} has no field ${settings.cursorField}`,
      });
  });
  if (issues.length > 0) throw invalid(issues.map((i) => i.message).join("; "), issues);
}

/**
 * A `files` pipeline loads one target entity: no source environment, action
 * `copy`, writeStrategy `insert` or `merge`, mode `once` (each upload is a
 * job), and no transformations (those run on a source agent, and files have
 * none). Data-quality rules are allowed: see {@link checkFilesQualityRules}.
 *
 * @throws DrayError `invalid_argument`
 */
export function checkFilesShape(settings: PipelineSettings): void {
  const issues: Issue[] = [];
  if (settings.sourceEnvironmentId)
    issues.push({ path: "sourceEnvironmentId", message: 'must be left out when source is "files"' });
  if (settings.entities.length !== 1)
    issues.push({ path: "entities", message: 'a "files" pipeline loads exactly one target entity' });
  if (settings.action !== "copy")
    issues.push({ path: "action", message: 'must be "copy" for a "files" pipeline' });
  if (settings.writeStrategy === "clean")
    issues.push({
      path: "writeStrategy",
      message: '"clean" would empty the table at every upload: use "insert" or "merge"',
    });
  if ((settings.mode ?? "once") !== "once")
    issues.push({
      path: "mode",
      message: 'a "files" pipeline loads each upload as it arrives: leave mode "once"',
    });
  if ((settings.transformations ?? []).length > 0)
    issues.push({ path: "transformations", message: 'not supported on a "files" pipeline yet' });
  if (!settings.fileSettings)
    issues.push({
      path: "fileSettings",
      message: 'a "files" pipeline needs its file format (fileSettings.format "csv" or "ndjson")',
    });
  if (issues.length > 0)
    throw invalid(
      `invalid "files" pipeline: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`,
      issues,
    );
}

/**
 * Checks a `files` pipeline's target entity and field mapping against the
 * target's snapshot: the entity exists, and every mapped field is one of its
 * fields.
 *
 * @throws DrayError `invalid_argument`
 */
export function checkFilesTarget(
  settings: PipelineSettings,
  target: SchemaSnapshot,
  targetName: string,
  mapping: Record<string, string> | undefined,
): void {
  const entityName = settings.entities[0]!;
  const entity = target.entities.find((e) => e.entity === entityName);
  if (!entity)
    throw invalid(
      `entity ${entityName} does not exist in target environment ${targetName} (snapshot of ${target.capturedAt}; refresh it if the schema changed since)`,
      [{ path: "entities.0", message: `${entityName} is not in the target's entity snapshot` }],
    );
  const known = new Set(entity.fields.map((f) => f.name));
  const unknown = Object.entries(mapping ?? {}).filter(([, field]) => !known.has(field));
  if (unknown.length > 0)
    throw invalid(
      `fileSettings.fieldMapping names fields ${entityName} does not have: ${unknown.map(([, f]) => f).join(", ")}`,
      unknown.map(([column, field]) => ({
        path: `fileSettings.fieldMapping.${column}`,
        message: `${entityName} has no field ${field}`,
      })),
    );
}

/**
 * Checks a `files` pipeline's data-quality rules against the target's
 * snapshot (the control plane checks the parsed rows before they are written,
 * so a rule names a target field, after fieldMapping): each rule is on the one
 * target entity, on a field it has, fits the field's type and has valid
 * options (as {@link resolveQualityRules} checks them for a source). With a
 * fieldMapping, the field must be one the mapping fills. Returns the rules by
 * entity. Run after {@link checkFilesTarget}.
 *
 * @throws DrayError `invalid_argument` naming the rule (`qualityRules[i] (schema.table.field)`)
 */
export function checkFilesQualityRules(
  settings: PipelineSettings,
  target: SchemaSnapshot,
  mapping: Record<string, string> | undefined,
): Map<string, FieldQualityRule[]> {
  const rules = settings.qualityRules ?? [];
  const resolved = resolveQualityRules(settings.entities, rules, target);
  if (mapping === undefined) return resolved;
  const filled = new Set(Object.values(mapping));
  const unfilled = rules.flatMap((rule, i) => (filled.has(rule.field) ? [] : [{ rule, i }]));
  if (unfilled.length > 0)
    throw invalid(
      unfilled
        .map(
          ({ rule, i }) =>
            `qualityRules[${i}] (${rule.entity}.${rule.field}): no file column is mapped to field ${rule.field} in fileSettings.fieldMapping, so the rule would only ever see NULL`,
        )
        .join("; "),
      unfilled.map(({ rule, i }) => ({
        path: `qualityRules.${i}.field`,
        message: `${rule.field} is not a target of fileSettings.fieldMapping`,
      })),
    );
  return resolved;
}
