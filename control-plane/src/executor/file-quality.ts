/**
 * The data quality of a file load: the pipeline's data-quality rules compiled
 * for the types of the target fields into one row check (files have no source
 * agent to run them), and what the load journals about the rows it skips (the
 * error-log entries of a batch's rejects, and the DataQuality stage entries).
 * Pure: the load writes the entries.
 */
import { compileQualityRule, DrayError, type QualityCheck } from "@dray/common";
import { STAGES } from "../executions/execution-vocabulary.js";
import type { FileReject, FileRowCheck } from "../files/parse-file.js";
import type { EntityRunPlan, ErrorEntry, StageEntry } from "./run-context.js";

/** Error-log code of the rows a file load skips because they cannot be read. */
export const BAD_ROW = "bad_row";
/** Error-log code of the rows a file load skips because they fail a data-quality rule. */
export const DATA_QUALITY = "data_quality";

/** A data-quality rule compiled for the target field it checks. */
interface FileRule {
  /** Position of the field in the load's target fields. */
  index: number;
  /** What a row failing it is told, naming the rule, its options and the field (never a value). */
  message: string;
  check: QualityCheck;
}

/** The row check of a file load and how many rules it applies. */
export interface FileQuality {
  check: FileRowCheck;
  rules: number;
}

/**
 * The pipeline's data-quality rules on `entity`, compiled for the types of its
 * target fields (`types`, from the target's description), as one row check
 * over values in `entity.fields` order: the first rule a row fails names it.
 * Undefined when the pipeline has none.
 *
 * @throws DrayError `failed_precondition` when a rule's field is no longer a
 *   target field; `invalid_argument` when a rule no longer fits its field's type
 * @example
 * const quality = fileRowCheck(settings.qualityRules ?? [], entity, types);
 * quality?.check(["1", null]) // null, or "failed data-quality rule not_null on field name"
 */
export function fileRowCheck(
  rules: readonly { entity: string; field: string; rule: string; options: Record<string, unknown> }[],
  entity: Pick<EntityRunPlan, "entity" | "fields">,
  types: ReadonlyMap<string, string>,
): FileQuality | undefined {
  const compiled: FileRule[] = rules
    .filter((r) => r.entity === entity.entity)
    .map((r) => {
      const index = entity.fields.indexOf(r.field);
      const type = types.get(r.field);
      if (index < 0 || type === undefined)
        throw new DrayError(
          "failed_precondition",
          `data-quality rule ${r.rule} is on field ${r.field}, which ${entity.entity} no longer has (or is generated): ` +
            "fix the pipeline's qualityRules, or the target table",
        );
      const options = r.options ?? {};
      return {
        index,
        message: `failed data-quality rule ${r.rule}${
          Object.keys(options).length > 0 ? ` ${JSON.stringify(options)}` : ""
        } on field ${r.field}`,
        check: compileQualityRule(r.rule, options, type),
      };
    });
  if (compiled.length === 0) return undefined;
  return {
    rules: compiled.length,
    check: (values) => {
      for (const rule of compiled) if (!rule.check(values[rule.index] ?? null)) return rule.message;
      return null;
    },
  };
}

/** The DataQuality stage entry that opens the checks of a file's rows. */
export function qualityBeginEntry(entity: string, filename: string, rules: number): StageEntry {
  return {
    processName: STAGES.dataQuality,
    state: "begin",
    code: "begin",
    entity,
    description: `Checking ${rules} data-quality rules on the rows of ${filename}`,
  };
}

/** The DataQuality stage entry that closes them, once `failed` rows (all attempts) failed a rule. */
export function qualityEndEntry(entity: string, rules: number, failed: number): StageEntry {
  return {
    processName: STAGES.dataQuality,
    state: "end",
    code: "end",
    entity,
    description:
      failed === 0
        ? `Every row passed the ${rules} data-quality rules`
        : `${failed} row(s) failed data-quality rules and were skipped (error log, code data_quality)`,
  };
}

/**
 * What a batch's rejects are journaled as: one error per reject (code
 * `bad_row` or `data_quality`, keyed by line), then a DataQuality stage entry
 * for the rows that could not be read and one for the rows that failed a rule
 * (each only when there are some).
 *
 * @example
 * const { errors, stages } = rejectEntries("public.users", "users.csv", batch);
 */
export function rejectEntries(
  entity: string,
  filename: string,
  batch: { rejects: readonly FileReject[]; firstLine: number; lastLine: number },
): { errors: ErrorEntry[]; stages: StageEntry[] } {
  const errors = batch.rejects.map((r) => ({
    severity: "error" as const,
    entity,
    recordKey: [`line ${r.line}`],
    code: r.kind === "quality" ? DATA_QUALITY : BAD_ROW,
    message: `${filename} line ${r.line}: ${r.message}`,
  }));
  const stages: StageEntry[] = [];
  const lines = `lines ${batch.firstLine}–${batch.lastLine}`;
  const unread = batch.rejects.filter((r) => r.kind !== "quality").length;
  if (unread > 0)
    stages.push({
      processName: STAGES.dataQuality,
      state: "processing",
      code: "rows_skipped",
      entity,
      description: `${unread} row(s) of ${lines} could not be read and were skipped (error log, code bad_row)`,
    });
  const failed = batch.rejects.length - unread;
  if (failed > 0)
    stages.push({
      processName: STAGES.dataQuality,
      state: "processing",
      code: "rows_skipped",
      entity,
      description: `${failed} row(s) of ${lines} failed data-quality rules and were skipped (error log, code data_quality)`,
    });
  return { errors, stages };
}
