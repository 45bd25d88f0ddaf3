/**
 * POST /pipelines/{id}/preview (issue 11): up to {@link PREVIEW_ROWS}
 * transformed rows of each selected entity that has transformations, read
 * and transformed by the SOURCE agent. Only transformed fields are shown: a
 * raw value never appears in the answer. Warnings name transformed values
 * longer than the target column's `character varying(n)`, and transformers
 * that left every previewed value unchanged (a regexp_replace that matched
 * nothing): the agent counts unchanged values, so no raw value is needed.
 */
import { DrayError } from "@dray/common";
import type { ReadBatchResult } from "@dray/proto";
import { ensureEntitySnapshot } from "../environments/entity-snapshots.js";
import { getEnvironment } from "../environments/environments-service.js";
import { rowKeyOf, type SchemaSnapshot } from "../environments/schema-snapshot.js";
import type { TaskPayload } from "../gateway/agent-sessions.js";
import type { EnvironmentAgents } from "../gateway/environment-agents.js";
import type { Db } from "../store/open-store.js";
import { noSnapshot, requireSourceEnvironment } from "./pipeline-validation.js";
import { getPipeline } from "./pipelines-service.js";
import { type EffectiveTransformation, effectiveTransformations } from "./transformations.js";

/** Rows previewed per entity. */
export const PREVIEW_ROWS = 20;

/** Byte budget of one preview read. */
const PREVIEW_BYTES = 1024 * 1024;

/**
 * Reading one page from an environment's agent (the gateway's `readBatch`
 * task). Rejects `unavailable` when no agent of the environment is connected.
 */
export interface PreviewReader {
  readBatch(
    environmentId: string,
    task: TaskPayload<"readBatch">,
    signal?: AbortSignal,
  ): Promise<ReadBatchResult>;
}

/** One entity's previewed rows: values of `fields`, in order; null is SQL NULL. */
export interface EntityPreview {
  entity: string;
  fields: string[];
  rows: (string | null)[][];
}

/** What the source agent said each transformer of a previewed entity did (counts only). */
interface EntityTransformStats {
  entity: string;
  transforms: readonly EffectiveTransformation[];
  stats: readonly { field: string; values: number; unchanged: number }[];
}

/** A remark about previewed values (they would not fit the target, …). */
export interface PreviewWarning {
  code: string;
  message: string;
  entity?: string;
  details?: unknown;
}

/** The preview endpoint's answer. */
export interface PipelinePreview {
  entities: EntityPreview[];
  warnings: PreviewWarning[];
}

/**
 * Decodes COPY text rows (tab-separated fields, one row a line, `\N` NULL,
 * backslash escapes as COPY TO writes them) into text values.
 *
 * @example
 * decodeCopyRows(Buffer.from("a\\tb\t\\N\n")) // [["a\tb", null]]
 */
export function decodeCopyRows(data: Uint8Array): (string | null)[][] {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const rows: (string | null)[][] = [];
  let row: (string | null)[] = [];
  let field: number[] = [];
  let isNull = false;
  let started = false;
  const endField = () => {
    row.push(isNull ? null : Buffer.from(field).toString("utf8"));
    field = [];
    isNull = false;
  };
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    started = true;
    if (b === 0x09) {
      endField();
    } else if (b === 0x0a) {
      endField();
      rows.push(row);
      row = [];
      started = false;
    } else if (b === 0x5c && i + 1 < bytes.length) {
      i = decodeEscape(bytes, i + 1, field, () => {
        isNull = true;
      });
    } else {
      field.push(b);
    }
  }
  if (started) {
    endField();
    rows.push(row);
  }
  return rows;
}

const LETTERS: Record<number, number> = { 98: 8, 102: 12, 110: 10, 114: 13, 116: 9, 118: 11 };
const isOctal = (b: number | undefined) => b !== undefined && b >= 0x30 && b <= 0x37;
const hexValue = (b: number | undefined): number => {
  if (b === undefined) return -1;
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  return -1;
};

/** Decodes the escape starting at `at` (after the backslash) into `out`; returns the last index used. */
function decodeEscape(bytes: Buffer, at: number, out: number[], markNull: () => void): number {
  const c = bytes[at]!;
  if (c === 0x4e) {
    markNull();
    return at;
  }
  if (LETTERS[c] !== undefined) {
    out.push(LETTERS[c]!);
    return at;
  }
  if (isOctal(c)) {
    let value = 0;
    let end = at;
    while (end < at + 3 && isOctal(bytes[end])) value = value * 8 + (bytes[end++]! - 0x30);
    out.push(value & 0xff);
    return end - 1;
  }
  if (c === 0x78 && hexValue(bytes[at + 1]) >= 0) {
    let value = hexValue(bytes[at + 1]);
    let end = at + 2;
    if (hexValue(bytes[end]) >= 0) value = value * 16 + hexValue(bytes[end++]);
    out.push(value);
    return end - 1;
  }
  out.push(c);
  return at;
}

/** The `{name}` placeholders of a template (fields the agent needs to fill it). */
function templateFields(options: Record<string, unknown>): string[] {
  const template = typeof options.template === "string" ? options.template : "";
  const out: string[] = [];
  let open = -1;
  for (let i = 0; i < template.length; i++) {
    if (template[i] === "{") open = i;
    else if (template[i] === "}" && open >= 0) {
      out.push(template.slice(open + 1, i));
      open = -1;
    }
  }
  return out;
}

/**
 * The `n` of a `character varying(n)` (or `varchar(n)`) column type, else
 * undefined.
 */
export function varcharLength(type: string): number | undefined {
  for (const prefix of ["character varying(", "varchar("]) {
    if (type.startsWith(prefix) && type.endsWith(")")) {
      const n = Number(type.slice(prefix.length, -1));
      return Number.isInteger(n) && n > 0 ? n : undefined;
    }
  }
  return undefined;
}

/** Warnings for previewed values longer than their target column allows. */
function lengthWarnings(preview: EntityPreview, target: SchemaSnapshot | undefined): PreviewWarning[] {
  const entity = target?.entities.find((e) => e.entity === preview.entity);
  if (!entity) return [];
  return preview.fields.flatMap((field, index) => {
    const type = entity.fields.find((f) => f.name === field)?.type ?? "";
    const limit = varcharLength(type);
    if (limit === undefined) return [];
    const longest = Math.max(0, ...preview.rows.map((r) => [...(r[index] ?? "")].length));
    if (longest <= limit) return [];
    return [
      {
        code: "value_too_long",
        entity: preview.entity,
        message:
          `previewed values up to ${longest} characters exceed target column ${preview.entity}.${field} ` +
          `(varchar(${limit})): pick a transformer with shorter output or widen the target column`,
        details: { field, longest, limit },
      },
    ];
  });
}

/** Reads and transforms one entity's preview page on the source agent. */
async function previewEntity(
  reader: PreviewReader,
  sourceEnvironmentId: string,
  snapshot: SchemaSnapshot,
  entityName: string,
  transforms: readonly EffectiveTransformation[],
  signal: AbortSignal | undefined,
): Promise<{ preview: EntityPreview; stats: EntityTransformStats }> {
  const entity = snapshot.entities.find((e) => e.entity === entityName);
  if (!entity) {
    throw new DrayError(
      "failed_precondition",
      `entity ${entityName} is not in the source's entity snapshot (of ${snapshot.capturedAt}): refresh it or ` +
        "remove the entity from the pipeline",
    );
  }
  const shown = transforms.map((t) => t.field);
  // A template is filled from other fields of its row: they are read too, and left out of the answer.
  const needed = transforms.flatMap((t) => (t.transformer === "template" ? templateFields(t.options) : []));
  const fields = [...shown, ...needed.filter((f, i) => !shown.includes(f) && needed.indexOf(f) === i)];
  const result = await reader.readBatch(
    sourceEnvironmentId,
    {
      entity: { schema: entity.schema, name: entity.name },
      fields,
      keyFields: rowKeyOf(entity),
      maxRows: PREVIEW_ROWS,
      maxBytes: BigInt(PREVIEW_BYTES),
      nullFields: [],
      transforms: transforms.map((t) => ({
        field: t.field,
        transformer: t.transformer,
        optionsJson: JSON.stringify(t.options ?? {}),
      })),
    },
    signal,
  );
  const read = result.rows?.fields ?? fields;
  const positions = shown.map((f) => read.indexOf(f));
  const rows = decodeCopyRows(result.rows?.data ?? new Uint8Array())
    .slice(0, PREVIEW_ROWS)
    .map((row) => positions.map((at) => (at >= 0 ? (row[at] ?? null) : null)));
  return {
    preview: { entity: entityName, fields: shown, rows },
    stats: { entity: entityName, transforms, stats: result.transformStats ?? [] },
  };
}

/**
 * Warnings for transformers that left every previewed non-NULL value as it
 * was: a regexp_replace whose pattern matched none of them, or another
 * transformer that changed nothing (its options, or the data, are not what
 * the rule expects).
 */
export function unchangedWarnings(entity: EntityTransformStats): PreviewWarning[] {
  return entity.stats.flatMap((s): PreviewWarning[] => {
    if (s.values === 0 || s.unchanged < s.values) return [];
    const t = entity.transforms.find((x) => x.field === s.field);
    if (!t) return [];
    const where = `${entity.entity}.${s.field}`;
    const message =
      t.transformer === "regexp_replace"
        ? `regexp_replace on ${where} matched none of the ${s.values} previewed values, so it changes nothing: ` +
          `check the pattern ${JSON.stringify(t.options.pattern)} against the field's values`
        : `${t.transformer} on ${where} left all ${s.values} previewed values unchanged: check its options`;
    return [
      {
        code: "transform_unchanged",
        message,
        entity: entity.entity,
        details: { field: s.field, transformer: t.transformer, values: s.values },
      },
    ];
  });
}

/**
 * The preview of the organisation's pipeline `id`. `not_found` for an unknown
 * pipeline, `failed_precondition` when its action is not `transform` or the
 * source has no entity snapshot, `unavailable` when no agent of the source is
 * connected (or the gateway cannot read through it).
 */
export async function getPipelinePreview(
  db: Db,
  organisationId: string,
  id: string,
  now: Date,
  agents: EnvironmentAgents & Partial<PreviewReader>,
  signal?: AbortSignal,
): Promise<PipelinePreview> {
  const pipeline = await getPipeline(db, organisationId, id);
  if (pipeline.action !== "transform") {
    throw new DrayError(
      "failed_precondition",
      `pipeline ${pipeline.name} has action "${pipeline.action}": only a transform pipeline has transformed ` +
        'rows to preview; set "action": "transform" and its transformations first',
      { details: { action: pipeline.action } },
    );
  }
  const sourceId = requireSourceEnvironment(pipeline, "has no source rows to preview");
  const [source, target] = await Promise.all([
    getEnvironment(db, organisationId, sourceId),
    getEnvironment(db, organisationId, pipeline.targetEnvironmentId),
  ]);
  if (typeof agents.readBatch !== "function") {
    throw new DrayError(
      "unimplemented",
      "this control plane's agent gateway cannot read rows through an agent (EnvironmentAgents.readBatch): " +
        "upgrade the control plane to preview transformed rows",
    );
  }
  if (!agents.isConnected(source.id)) {
    throw new DrayError(
      "unavailable",
      `source environment ${source.name} (${source.id}) has no connected agent, and only its agent can read and ` +
        "transform rows: start its dray-agent (or check that it is running and can reach the control plane), then retry",
      { details: { environmentId: source.id, reason: "agent_unavailable" } },
    );
  }
  const clock = { now: () => now, signal };
  const [sourceSnapshot, targetSnapshot] = await Promise.all([
    ensureEntitySnapshot(db, agents, source, clock),
    ensureEntitySnapshot(db, agents, target, clock),
  ]);
  if (!sourceSnapshot) throw noSnapshot(source);
  const effective = effectiveTransformations(pipeline, sourceSnapshot);
  const reader = agents as PreviewReader;
  const entities: EntityPreview[] = [];
  const warnings: PreviewWarning[] = [];
  for (const name of pipeline.entities) {
    const transforms = effective.get(name);
    if (!transforms || transforms.length === 0) continue;
    const { preview, stats } = await previewEntity(
      reader,
      source.id,
      sourceSnapshot,
      name,
      transforms,
      signal,
    );
    entities.push(preview);
    warnings.push(...unchangedWarnings(stats));
  }
  return { entities, warnings: [...entities.flatMap((e) => lengthWarnings(e, targetSnapshot)), ...warnings] };
}
