/**
 * What the format readers (CSV, NDJSON) share: the options they read a file
 * with, the records they yield (a COPY line or a reject, with the physical
 * lines of the record) and the caller's row check, applied to each row that
 * parses with its values put in the order of the target fields.
 */
import type { FileSettings } from "./file-settings.js";

/**
 * A check of one parsed row: its values in the order of the target fields
 * (`RecordReadOptions.targetFields`) as the text PostgreSQL reads (unescaped,
 * null for NULL; a target field the file does not carry is null). Returns why
 * the row must be skipped (a message that must not quote the data) or null to
 * load it.
 */
export type FileRowCheck = (values: readonly (string | null)[]) => string | null;

/** How a format reader reads the records of a file. */
export interface RecordReadOptions {
  settings: FileSettings;
  /** The target table's field names: every column loaded must be one of them. */
  targetFields: string[];
  /** Records consumed by earlier batches (on resume): read but not emitted. */
  skipRecords?: number;
  /** Longest record or line read, in bytes (CSV: characters of a field); longer fails the file. Default 64 MiB. */
  maxRecordBytes?: number;
  /** Applied to every row that parses (not to rows skipped on resume); a row it fails is a `quality` reject. */
  rowCheck?: FileRowCheck;
}

/** Default longest record or line, in bytes. */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;

/** One record read from the file, converted to a COPY line or rejected (`quality` when it failed the row check). */
export type ParsedRecord =
  | { startLine: number; endLine: number; copyLine: string; reject?: undefined }
  | { startLine: number; endLine: number; copyLine?: undefined; reject: string; quality?: true };

/** A row check over values in the order of a reader's output fields. */
export type FieldsCheck = (values: readonly (string | null | undefined)[]) => string | null;

/** What a format reader yields: the target fields first, then records. */
export type ReaderItem = { fields: string[] } | ParsedRecord;

/**
 * `options.rowCheck` for rows whose values come in the order of `fields`
 * (target fields): the values are put in target-field order first, a target
 * field not among `fields` being null. Undefined without a row check.
 */
export function fieldsCheck(fields: readonly string[], options: RecordReadOptions): FieldsCheck | undefined {
  const check = options.rowCheck;
  if (check === undefined) return undefined;
  const position = new Map(options.targetFields.map((field, index) => [field, index]));
  const targetIndex = fields.map((field) => position.get(field));
  const width = options.targetFields.length;
  return (values) => {
    const row: (string | null)[] = new Array(width).fill(null);
    for (let i = 0; i < targetIndex.length; i++) {
      const at = targetIndex[i];
      if (at !== undefined) row[at] = values[i] ?? null;
    }
    return check(row);
  };
}

/** The record of a row that parsed: rejected (kind `quality`) when it fails `check`. */
export function checkedRecord(
  startLine: number,
  endLine: number,
  copyLine: string,
  values: readonly (string | null | undefined)[],
  check: FieldsCheck | undefined,
): ParsedRecord {
  const failed = check?.(values) ?? null;
  if (failed !== null) return { startLine, endLine, reject: failed, quality: true };
  return { startLine, endLine, copyLine };
}
