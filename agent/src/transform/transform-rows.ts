/**
 * Applies field transformations to a page of COPY text on the source agent,
 * before it leaves: each line is split at its tabs, the transformed fields are
 * decoded, transformed and escaped again, the other fields are kept byte for
 * byte.
 */
import { DrayError } from "@dray/common";
import { decodeCopyField } from "../connectors/postgres/copy-text.js";

/** What a transformer does to one non-NULL value (its text form); null writes NULL. */
export type ValueTransform = (value: string) => string | null;

/** One transformed field of a page: its position among the page's fields. */
export interface FieldTransformPlan {
  index: number;
  field: string;
  transformer: string;
  apply: ValueTransform;
  /**
   * Instead of `apply`: a value built from the row (`template`), which reads
   * other fields through `row` — their transformed values where they are
   * transformed. It runs after the value transformers of the row, and for a
   * NULL value too.
   */
  applyRow?: (row: (field: string) => string | null) => string | null;
}

const BACKSLASH = 0x5c;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const NULL_FIELD = Buffer.from("\\N");

/** A value's COPY text form: backslash, tab, newline and carriage return escaped. */
export function escapeCopyValue(value: string): Buffer {
  const raw = Buffer.from(value, "utf8");
  let extra = 0;
  for (const byte of raw) if (byte === BACKSLASH || byte === TAB || byte === LF || byte === CR) extra++;
  if (extra === 0) return raw;
  const out = Buffer.allocUnsafe(raw.length + extra);
  let at = 0;
  for (const byte of raw) {
    if (byte === BACKSLASH || byte === TAB || byte === LF || byte === CR) {
      out[at++] = BACKSLASH;
      out[at++] = byte === BACKSLASH ? BACKSLASH : byte === TAB ? 0x74 : byte === LF ? 0x6e : 0x72;
    } else {
      out[at++] = byte;
    }
  }
  return out;
}

/** One data-quality rule of a page: its field's position and its check of the raw value. */
export interface FieldRulePlan {
  index: number;
  field: string;
  rule: string;
  /** The rule's options, for the report (never a value). */
  options: Record<string, unknown>;
  /** True when the value (null: NULL) passes. */
  check: (value: string | null) => boolean;
}

/** A row left out of a page because it failed a data-quality rule. */
export interface RejectedRow {
  /** The row's key: the values of `keyIndexes`, transformed where they are. */
  key: (string | null)[];
  field: string;
  rule: string;
  /** Says which rule failed, with its options; never the value. */
  message: string;
}

/** What {@link processCopyPage} does to a page. */
export interface PagePlan {
  transforms: readonly FieldTransformPlan[];
  rules?: readonly FieldRulePlan[];
  /** The page's field names, in order (templates and reports name fields). */
  fieldNames?: readonly string[];
  /** Positions of the key fields, for the reports of rejected rows. */
  keyIndexes?: readonly number[];
}

/**
 * What one value transformer did on a page: how many non-NULL values it
 * took and how many it left as they were (a regexp_replace that matched
 * nothing leaves them all). Counts only, never values.
 */
export interface TransformStats {
  field: string;
  transformer: string;
  values: number;
  unchanged: number;
}

/** A processed page: its COPY text, how many rows it holds, the rows left out, and what each transformer did. */
export interface ProcessedPage {
  data: Buffer;
  rowCount: number;
  rejected: RejectedRow[];
  stats: TransformStats[];
}

/**
 * A page of COPY text checked and transformed in one pass: each row is first
 * checked against `rules` on its raw values (the seed's DataQuality stage);
 * a row that fails one is left out and reported by its key — transformed
 * where the key is — and the first rule it failed. The other rows get
 * `transforms` (the Transformation stage). Untransformed fields are copied
 * byte for byte.
 *
 * @throws DrayError `invalid_argument` when a transformer fails on a value
 */
export function processCopyPage(data: Uint8Array, page: PagePlan): ProcessedPage {
  const plans = page.transforms;
  const rules = page.rules ?? [];
  const fieldNames = page.fieldNames ?? [];
  const keyIndexes = page.keyIndexes ?? [];
  const rejected: RejectedRow[] = [];
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (plans.length === 0 && rules.length === 0)
    return { data: bytes, rowCount: countLines(bytes), rejected, stats: [] };
  const valuePlans = plans.filter((p) => !p.applyRow);
  const rowPlans = plans.filter((p) => p.applyRow);
  const byIndex: (FieldTransformPlan | undefined)[] = [];
  for (const p of valuePlans) byIndex[p.index] = p;
  const rowByIndex: (FieldTransformPlan | undefined)[] = [];
  for (const p of rowPlans) rowByIndex[p.index] = p;
  const out = new OutputBuffer(bytes.length + (bytes.length >>> 2) + 64);
  // Only the fields up to the last one transformed, checked or reported are split out of a line.
  let lastNeeded = 0;
  for (const p of plans) lastNeeded = Math.max(lastNeeded, p.index);
  for (const r of rules) lastNeeded = Math.max(lastNeeded, r.index);
  for (const k of keyIndexes) lastNeeded = Math.max(lastNeeded, k);
  // A template may read any field of the row.
  if (rowPlans.length > 0) lastNeeded = Math.max(lastNeeded, fieldNames.length - 1);
  const slots = lastNeeded + 1;
  // Field boundaries of the current line: starts[i]..ends[i] (raw, still escaped), for i < fields.
  const starts = new Int32Array(slots);
  const ends = new Int32Array(slots);
  const escaped = new Uint8Array(slots);
  let fields = 0;
  // Results of the current line by field: valid where resultLine[i] === line.
  const results: (string | null)[] = new Array(slots).fill(null);
  const resultLine = new Int32Array(slots).fill(-1);
  let line = 0;
  let start = 0;
  const fail = (plan: FieldTransformPlan, error: unknown): never => {
    // The inner message may quote the value: only its code travels.
    const code = error instanceof DrayError ? error.code : "invalid_argument";
    throw new DrayError(
      "invalid_argument",
      `transforming field ${JSON.stringify(plan.field)} with ${plan.transformer} failed on line ${line + 1} ` +
        `of the page (${code}): check that the transformer fits every value of the field`,
      { retryable: false },
    );
  };
  /** The decoded value of field `i` of the current line; null for NULL. */
  const decodedAt = (i: number): string | null => {
    const from = starts[i]!;
    const to = ends[i]!;
    if (escaped[i] === 0) return bytes.toString("utf8", from, to);
    if (to - from === 2 && bytes[from] === BACKSLASH && bytes[from + 1] === 0x4e) return null;
    const decoded = decodeCopyField(bytes.subarray(from, to));
    return decoded === null
      ? null
      : Buffer.from(decoded.buffer, decoded.byteOffset, decoded.byteLength).toString("utf8");
  };
  /** The key value at field `i` of the current line as it leaves the agent: transformed where it is. */
  const keyValueAt = (i: number): string | null => {
    if (i >= fields) return null;
    const raw = decodedAt(i);
    const plan = byIndex[i];
    if (plan && raw !== null) {
      try {
        return plan.apply(raw);
      } catch (error) {
        fail(plan, error);
      }
    }
    // A key built by a template, or one no transformer could take, is not shown.
    if (rowByIndex[i]) return "(transformed)";
    return raw;
  };
  const stats: TransformStats[] = valuePlans.map((p) => ({
    field: p.field,
    transformer: p.transformer,
    values: 0,
    unchanged: 0,
  }));
  const statOf: (TransformStats | undefined)[] = [];
  valuePlans.forEach((p, i) => {
    statOf[p.index] = stats[i];
  });
  const row = (name: string): string | null => {
    const index = fieldNames.indexOf(name);
    if (index < 0 || index >= fields) return null;
    return resultLine[index] === line ? results[index]! : decodedAt(index);
  };
  let rowCount = 0;
  while (start < bytes.length) {
    let end = bytes.indexOf(LF, start);
    if (end === -1) end = bytes.length;
    fields = 0;
    let fieldStart = start;
    let fieldEscaped = 0;
    let i = start;
    for (; i < end; i++) {
      const byte = bytes[i];
      if (byte === BACKSLASH) {
        fieldEscaped = 1;
        i++;
      } else if (byte === TAB) {
        starts[fields] = fieldStart;
        ends[fields] = i;
        escaped[fields] = fieldEscaped;
        fields++;
        fieldStart = i + 1;
        fieldEscaped = 0;
        if (fields === slots) break;
      }
    }
    if (fields < slots) {
      starts[fields] = fieldStart;
      ends[fields] = end;
      escaped[fields] = fieldEscaped;
      fields++;
    }
    let failed: FieldRulePlan | undefined;
    for (const rule of rules) {
      if (rule.index < fields && !rule.check(decodedAt(rule.index))) {
        failed = rule;
        break;
      }
    }
    if (failed) {
      rejected.push({
        key: keyIndexes.map((k) => keyValueAt(k)),
        field: failed.field,
        rule: failed.rule,
        message: `failed data-quality rule ${failed.rule}${
          Object.keys(failed.options).length > 0 ? ` ${JSON.stringify(failed.options)}` : ""
        } on field ${failed.field}`,
      });
      start = end + 1;
      line++;
      continue;
    }
    for (const plan of valuePlans) {
      if (plan.index >= fields) continue;
      const value = decodedAt(plan.index);
      let result: string | null = null;
      if (value !== null) {
        try {
          result = plan.apply(value);
        } catch (error) {
          fail(plan, error);
        }
        const stat = statOf[plan.index]!;
        stat.values++;
        if (result === value) stat.unchanged++;
      }
      results[plan.index] = result;
      resultLine[plan.index] = line;
    }
    for (const plan of rowPlans) {
      if (plan.index >= fields) continue;
      let result: string | null = null;
      try {
        result = plan.applyRow!(row);
      } catch (error) {
        fail(plan, error);
      }
      results[plan.index] = result;
      resultLine[plan.index] = line;
    }
    // Untransformed runs of fields are copied as they are, in one piece each.
    let copyFrom = start;
    for (let f = 0; f < fields; f++) {
      if (byIndex[f] === undefined && rowByIndex[f] === undefined) continue;
      out.copy(bytes, copyFrom, starts[f]!);
      const result = resultLine[f] === line ? results[f] : null;
      if (result === null || result === undefined) out.copy(NULL_FIELD, 0, 2);
      else out.writeEscaped(result);
      copyFrom = ends[f]!;
    }
    out.copy(bytes, copyFrom, end);
    out.byte(LF);
    start = end + 1;
    line++;
    rowCount++;
  }
  return { data: out.toBuffer(), rowCount, rejected, stats };
}

/** The number of `\n`-terminated lines in `bytes`. */
function countLines(bytes: Buffer): number {
  let n = 0;
  for (let at = bytes.indexOf(LF); at !== -1; at = bytes.indexOf(LF, at + 1)) n++;
  return n;
}

/** A growing output buffer for {@link processCopyPage}. */
class OutputBuffer {
  private buffer: Buffer;
  private length = 0;

  constructor(capacity: number) {
    this.buffer = Buffer.allocUnsafe(Math.max(64, capacity));
  }

  private ensure(extra: number): void {
    if (this.length + extra <= this.buffer.length) return;
    let capacity = this.buffer.length * 2;
    while (capacity < this.length + extra) capacity *= 2;
    const next = Buffer.allocUnsafe(capacity);
    this.buffer.copy(next, 0, 0, this.length);
    this.buffer = next;
  }

  copy(source: Buffer, from: number, to: number): void {
    const n = to - from;
    if (n <= 0) return;
    this.ensure(n);
    if (n < 48) {
      // A short run costs less byte by byte than through a native call.
      const buffer = this.buffer;
      let at = this.length;
      for (let i = from; i < to; i++) buffer[at++] = source[i]!;
    } else {
      source.copy(this.buffer, this.length, from, to);
    }
    this.length += n;
  }

  byte(value: number): void {
    this.ensure(1);
    this.buffer[this.length++] = value;
  }

  /** Writes `value` as a COPY text field: backslash, tab, newline and carriage return escaped. */
  writeEscaped(value: string): void {
    let plain = true;
    for (let i = 0; i < value.length; i++) {
      const c = value.charCodeAt(i);
      if (c === BACKSLASH || c === TAB || c === LF || c === CR) {
        plain = false;
        break;
      }
    }
    if (plain) {
      this.ensure(value.length * 3);
      this.length += this.buffer.write(value, this.length, "utf8");
      return;
    }
    const escaped = escapeCopyValue(value);
    this.copy(escaped, 0, escaped.length);
  }

  toBuffer(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}
