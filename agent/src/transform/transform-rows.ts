/**
 * Applies field transformations to a page of COPY text on the source agent,
 * before it leaves: each line is split at its tabs, the transformed fields are
 * decoded, transformed and escaped again, the other fields are kept byte for
 * byte.
 */
import { DrayError } from "@dray/common";
import { decodeCopyField, splitCopyFields } from "../connectors/postgres/copy-text.js";

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

/**
 * `data` (COPY text lines, each `\n`-terminated) with `plans` applied. NULL
 * stays NULL. A transformer that fails on a value fails the page with an error
 * naming the field, the transformer and the line — never the value.
 *
 * @throws DrayError `invalid_argument`
 */
export function transformCopyText(
  data: Uint8Array,
  plans: readonly FieldTransformPlan[],
  fieldNames: readonly string[] = [],
): Buffer {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (plans.length === 0) return bytes;
  const valuePlans = plans.filter((p) => !p.applyRow);
  const rowPlans = plans.filter((p) => p.applyRow);
  const parts: Buffer[] = [];
  let start = 0;
  let line = 0;
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
  while (start < bytes.length) {
    let end = bytes.indexOf(LF, start);
    if (end === -1) end = bytes.length;
    const fields = splitCopyFields(bytes.subarray(start, end));
    const out: Buffer[] = fields.map((raw) => raw as Buffer);
    const results = new Map<number, string | null>();
    const decodedAt = (index: number): string | null => {
      const decoded = decodeCopyField(fields[index]!);
      return decoded === null
        ? null
        : Buffer.from(decoded.buffer, decoded.byteOffset, decoded.byteLength).toString("utf8");
    };
    for (const plan of valuePlans) {
      const value = decodedAt(plan.index);
      let result: string | null = null;
      if (value !== null) {
        try {
          result = plan.apply(value);
        } catch (error) {
          fail(plan, error);
        }
      }
      results.set(plan.index, result);
      out[plan.index] = result === null ? NULL_FIELD : escapeCopyValue(result);
    }
    for (const plan of rowPlans) {
      const row = (name: string): string | null => {
        const index = fieldNames.indexOf(name);
        if (index < 0) return null;
        return results.has(index) ? results.get(index)! : decodedAt(index);
      };
      let result: string | null = null;
      try {
        result = plan.applyRow!(row);
      } catch (error) {
        fail(plan, error);
      }
      results.set(plan.index, result);
      out[plan.index] = result === null ? NULL_FIELD : escapeCopyValue(result);
    }
    for (let i = 0; i < out.length; i++) {
      if (i > 0) parts.push(TAB_BUFFER);
      parts.push(out[i]!);
    }
    parts.push(LF_BUFFER);
    start = end + 1;
    line++;
  }
  return Buffer.concat(parts);
}

const TAB_BUFFER = Buffer.from([TAB]);
const LF_BUFFER = Buffer.from([LF]);
