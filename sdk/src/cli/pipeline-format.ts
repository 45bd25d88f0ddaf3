/**
 * How the CLI shows a pipeline's transformations and data-quality rules, and
 * the definition `dray pipeline export` prints (which `dray pipeline create`
 * takes back as is). Pure: no I/O.
 */
import type { EffectiveTransformation, Pipeline, TransformationRule } from "../client.js";

/** A data-quality rule as a pipeline view may hold it (`qualityRules`, when the API has them). */
export interface QualityRuleView {
  entity: string;
  field: string;
  rule: string;
  options?: Record<string, unknown>;
}

/** A transformation rule as a pipeline view holds it (entity as its canonical name). */
export type TransformationView = Omit<TransformationRule, "entity"> & { entity: string };

/** An effective transformation of the pipeline view (with its entity). */
export type EntityTransformation = EffectiveTransformation & { entity: string };

/** The pipeline view's quality rules; none when the API does not have them (yet). */
export function qualityRulesOf(p: Pipeline): QualityRuleView[] {
  return (p as { qualityRules?: QualityRuleView[] | null }).qualityRules ?? [];
}

/** Options as compact JSON (`{}` when there are none). */
function compact(options: Record<string, unknown> | undefined): string {
  return JSON.stringify(options ?? {});
}

/**
 * One transformation: `entity.field ← transformer {options}`, plus where it
 * was carried over from when it follows from a transformed referenced key.
 *
 * @example
 * transformationLine({ entity: "public.orders", field: "customer_id", transformer: "permute", options: {},
 *   propagatedFrom: "public.customers.id" })
 * // 'public.orders.customer_id ← permute {} (follows from public.customers.id)'
 */
export function transformationLine(
  t: { entity: string; field: string; transformer: string; options?: Record<string, unknown> } & {
    propagatedFrom?: string | undefined;
  },
): string {
  const from = t.propagatedFrom ? ` (follows from ${t.propagatedFrom})` : "";
  return `${t.entity}.${t.field} ← ${t.transformer} ${compact(t.options)}${from}`;
}

/**
 * One quality rule: `entity.field must rule {options}`.
 *
 * @example
 * qualityRuleLine({ entity: "public.customers", field: "email", rule: "not_null" })
 * // 'public.customers.email must not_null {}'
 */
export function qualityRuleLine(r: QualityRuleView): string {
  return `${r.entity}.${r.field} must ${r.rule} ${compact(r.options)}`;
}

/**
 * The lines `dray pipeline show` adds after the settings: the transformations
 * as set, the fields that follow from a transformed referenced key (from the
 * view's effective transformations) and the quality rules; none for a
 * pipeline without them.
 */
export function rulesSection(p: Pipeline): string[] {
  const lines: string[] = [];
  const transformations = (p.transformations ?? []) as TransformationView[];
  if (transformations.length > 0) {
    lines.push("  transformations:");
    for (const t of transformations) lines.push(`    ${transformationLine(t)}`);
    const effective = p.effectiveTransformations;
    if (effective === null) {
      lines.push(
        "  fields that follow from transformed keys: not known (no schema snapshot of the source, " +
          "or a rule no longer fits it): see `dray pipeline plan`",
      );
    } else {
      const carried = (effective ?? []).filter((t) => t.propagatedFrom);
      if (carried.length > 0) {
        lines.push("  fields that follow from transformed keys:");
        for (const t of carried) lines.push(`    ${transformationLine(t)}`);
      }
    }
  }
  const rules = qualityRulesOf(p);
  if (rules.length > 0) {
    lines.push("  quality rules:");
    for (const r of rules) lines.push(`    ${qualityRuleLine(r)}`);
  }
  return lines;
}

/** Names of the pipeline's environments, when known (else the definition keeps their ids). */
export interface EnvironmentNames {
  source?: string | undefined;
  target?: string | undefined;
}

/**
 * The definition of `p` that `dray pipeline create` accepts as is: its
 * settings, environments by name where known (else by id), transformations
 * and quality rules when it has them; no server-managed field (id,
 * organisation, timestamps, activity, effective transformations).
 */
export function pipelineDefinition(p: Pipeline, names: EnvironmentNames = {}): Record<string, unknown> {
  const transformations = (p.transformations ?? []) as TransformationView[];
  const rules = qualityRulesOf(p);
  return {
    name: p.name,
    action: p.action,
    ...(p.sourceKind === "files"
      ? { sourceKind: "files" }
      : names.source
        ? { source: names.source }
        : { sourceEnvironmentId: p.sourceEnvironmentId }),
    ...(names.target ? { target: names.target } : { targetEnvironmentId: p.targetEnvironmentId }),
    entities: [...p.entities],
    writeStrategy: p.writeStrategy,
    batchSize: p.batchSize,
    batchBytes: p.batchBytes,
    maxRetriesPerBatch: p.maxRetriesPerBatch,
    entityConcurrency: p.entityConcurrency,
    stopOnError: p.stopOnError,
    targetTriggers: p.targetTriggers,
    loadOrder: p.loadOrder,
    ...(p.mode === "continuous"
      ? {
          mode: p.mode,
          cursorField: p.cursorField,
          batchIntervalMs: p.batchIntervalMs,
          safetyLagMs: p.safetyLagMs,
          maxFailedPolls: p.maxFailedPolls,
          reconcileEveryPolls: p.reconcileEveryPolls,
        }
      : {}),
    ...(p.sourceKind === "files" && p.fileSettings ? { fileSettings: { ...p.fileSettings } } : {}),
    ...(transformations.length > 0
      ? {
          transformations: transformations.map((t) => ({
            entity: t.entity,
            field: t.field,
            transformer: t.transformer,
            options: { ...t.options },
          })),
        }
      : {}),
    ...(rules.length > 0
      ? {
          qualityRules: rules.map((r) => ({
            entity: r.entity,
            field: r.field,
            rule: r.rule,
            options: { ...(r.options ?? {}) },
          })),
        }
      : {}),
  };
}
