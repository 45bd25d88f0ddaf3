/**
 * Reads an uploaded CSV or NDJSON file (optionally gzip) as a stream and cuts
 * its rows into batches of PostgreSQL COPY text, the format the target agent's
 * write task takes. Memory stays bounded by the batch limits and the stream
 * buffers: nothing waits for the whole file, and nothing is read while the
 * consumer holds a batch. Rows that cannot be loaded, and rows that fail the
 * caller's row check (the pipeline's data-quality rules), are reported per line
 * (rejects) and the load goes on; a file that cannot be read any further
 * (corrupt gzip, unterminated quote, bytes that are not UTF-8 in a CSV file)
 * ends the stream with an `invalid_argument` error naming the line.
 */
import { isUtf8 } from "node:buffer";
import { pipeline, Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { DrayError, isDrayError } from "@dray/common";
import { CsvError, type Options, parse as parseCsv } from "csv-parse";
import type { FileSettings } from "./file-settings.js";

/** A row that was not loaded: its (first) physical line and why, without its data. */
export interface FileReject {
  line: number;
  message: string;
  /** `parse`: the row could not be read; `quality`: it was read but failed the row check. */
  kind: "parse" | "quality";
}

/**
 * A check of one parsed row: its values in the order of the target fields
 * (`FileBatchOptions.targetFields`) as the text PostgreSQL reads (unescaped,
 * null for NULL; a target field the file does not carry is null). Returns why
 * the row must be skipped (a message that must not quote the data) or null to
 * load it.
 */
export type FileRowCheck = (values: readonly (string | null)[]) => string | null;

/** A batch of rows cut from a file, ready for the target agent's write task. */
export interface FileBatch {
  /** COPY text of the good rows: tab-separated, `\N` for NULL, one line per row ending in `\n`. */
  data: Uint8Array;
  /** Target field names, in column order. */
  fields: string[];
  /** Rows in `data`. */
  rowCount: number;
  /** Records the batch consumed, rejected ones included (the CSV header and blank lines are not records). */
  records: number;
  /** 1-based physical line (of the decompressed file) where the batch's first record starts. */
  firstLine: number;
  /** 1-based physical line where the batch's last record ends. */
  lastLine: number;
  /** Records of the batch that were not loaded. */
  rejects: FileReject[];
}

/** How {@link fileBatches} reads a file and cuts it. */
export interface FileBatchOptions {
  settings: FileSettings;
  /** True when the file is gzip (see `isGzip`): it is gunzipped as it streams. */
  compressed: boolean;
  /** The target table's field names: every column loaded must be one of them. */
  targetFields: string[];
  /** Most records (rejected ones included) in a batch. */
  maxRows: number;
  /** Most bytes of COPY text in a batch, unless a single row is larger. */
  maxBytes: number;
  /** Records consumed by earlier batches (on resume): read but not emitted. */
  skipRecords?: number;
  /** Longest record or line read, in bytes (CSV: characters of a field); longer fails the file. Default 64 MiB. */
  maxRecordBytes?: number;
  /** Applied to every row that parses (not to rows skipped on resume); a row it fails is a `quality` reject. */
  rowCheck?: FileRowCheck;
}

/** Default longest record or line, in bytes. */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;

const LF = 0x0a;
const CR = 0x0d;

/** One record read from the file, converted to a COPY line or rejected. */
type ParsedRecord =
  | { startLine: number; endLine: number; copyLine: string; reject?: undefined }
  | { startLine: number; endLine: number; copyLine?: undefined; reject: string; quality?: true };

/** A row check over values in the order of a reader's output fields. */
type FieldsCheck = (values: readonly (string | null | undefined)[]) => string | null;

/** What a format reader yields: the target fields first, then records. */
type ReaderItem = { fields: string[] } | ParsedRecord;

/**
 * The file's rows as batches of COPY text (see {@link FileBatch}). CSV: the
 * first line is the header; an unquoted empty field is NULL, a quoted empty
 * field the empty string; a row with another number of columns than the header
 * is rejected. NDJSON: one JSON object per line, blank lines skipped; a missing
 * key is NULL, nested values are written as their JSON text, booleans as t/f and
 * numbers as written; a line that is not a JSON object is rejected. Columns and
 * keys go through `fieldMapping` when given (others ignored); without it they
 * must be target fields (CSV: checked on the header before any row; NDJSON: a
 * row with another key is rejected, and every target field is written).
 * With `rowCheck`, a row that parses but fails it is rejected too (kind
 * `quality`, the check's message).
 *
 * Throws `invalid_argument` for header or mapping problems (before any batch),
 * for a corrupt or truncated gzip stream ("the file is not valid gzip: …") and
 * for a file that cannot be read past some line.
 *
 * @example
 * for await (const batch of fileBatches(upload, { settings, compressed: false, targetFields, maxRows: 10_000, maxBytes: 8 << 20 })) {
 *   await write(batch.fields, batch.data);
 * }
 */
export async function* fileBatches(
  input: AsyncIterable<Uint8Array>,
  options: FileBatchOptions,
): AsyncGenerator<FileBatch> {
  checkLimits(options);
  checkMappingTargets(options);
  const gunzip = options.compressed ? new GunzipReader(input) : null;
  try {
    yield* batchesOf(gunzip ?? input, options);
  } catch (error) {
    if (gunzip !== null && isGarbageFailure(error)) throw (await gunzip.gzipErrorAfterDrain()) ?? error;
    throw error;
  } finally {
    gunzip?.close();
  }
}

async function* batchesOf(
  bytes: AsyncIterable<Uint8Array>,
  options: FileBatchOptions,
): AsyncGenerator<FileBatch> {
  const reader =
    options.settings.format === "csv" ? csvRecords(bytes, options) : ndjsonRecords(bytes, options);
  let fields: string[] = [];
  let batch = new BatchBuilder();
  for await (const item of reader) {
    if ("fields" in item) {
      fields = item.fields;
      continue;
    }
    if (item.copyLine !== undefined) {
      const size = Buffer.byteLength(item.copyLine, "utf8");
      if (batch.rowCount > 0 && batch.bytes + size > options.maxBytes) {
        yield batch.finish(fields);
        batch = new BatchBuilder();
      }
      batch.addRow(item, size);
    } else {
      batch.addReject(item);
    }
    if (batch.records >= options.maxRows || batch.bytes >= options.maxBytes) {
      yield batch.finish(fields);
      batch = new BatchBuilder();
    }
  }
  if (batch.records > 0) yield batch.finish(fields);
}

function checkLimits(options: FileBatchOptions): void {
  const positive = (n: number) => Number.isSafeInteger(n) && n > 0;
  const skip = options.skipRecords ?? 0;
  if (!positive(options.maxRows) || !positive(options.maxBytes) || !Number.isSafeInteger(skip) || skip < 0) {
    throw new DrayError(
      "invalid_argument",
      `file batches need maxRows and maxBytes above 0 and skipRecords at least 0 (got ${options.maxRows}, ${options.maxBytes}, ${skip})`,
    );
  }
}

function checkMappingTargets(options: FileBatchOptions): void {
  const mapping = options.settings.fieldMapping;
  if (mapping === undefined) return;
  const targets = new Set(options.targetFields);
  const unknown = Object.values(mapping).filter((field) => !targets.has(field));
  if (unknown.length > 0) {
    throw new DrayError(
      "invalid_argument",
      `fieldMapping maps to ${plural(unknown.length, "field")} the target table does not have: ${listed(unknown)}; ` +
        `its fields are: ${listed(options.targetFields)}. Fix the mapping's target fields`,
      {
        details: {
          issues: unknown.map((field) => ({
            path: "fieldMapping",
            message: `unknown field ${shown(field)}`,
          })),
        },
      },
    );
  }
}

/** Accumulates one batch. */
class BatchBuilder {
  private readonly lines: string[] = [];
  bytes = 0;
  rowCount = 0;
  records = 0;
  private firstLine = 0;
  private lastLine = 0;
  private readonly rejects: FileReject[] = [];

  addRow(record: ParsedRecord & { copyLine: string }, size: number): void {
    this.note(record);
    this.lines.push(record.copyLine);
    this.bytes += size;
    this.rowCount++;
  }

  addReject(record: ParsedRecord & { reject: string }): void {
    this.note(record);
    this.rejects.push({
      line: record.startLine,
      message: record.reject,
      kind: record.quality ? "quality" : "parse",
    });
  }

  finish(fields: string[]): FileBatch {
    return {
      data: Buffer.from(this.lines.join(""), "utf8"),
      fields,
      rowCount: this.rowCount,
      records: this.records,
      firstLine: this.firstLine,
      lastLine: this.lastLine,
      rejects: this.rejects,
    };
  }

  private note(record: ParsedRecord): void {
    if (this.records === 0) this.firstLine = record.startLine;
    this.lastLine = record.endLine;
    this.records++;
  }
}

// ---------------------------------------------------------------------------
// COPY text

/** COPY escape letters for control characters (as the server's COPY TO writes them). */
const ESCAPE_LETTER: Record<number, string> = { 8: "b", 9: "t", 10: "n", 11: "v", 12: "f", 13: "r" };

/**
 * A value escaped for COPY text (`\\`, `\t`, `\n`, `\r`, `\b`, `\f`, `\v`), or
 * `null` when it holds a NUL character, which PostgreSQL text cannot store.
 *
 * @example
 * escapeCopyValue("a\tb\\c") // "a\\tb\\\\c"
 */
export function escapeCopyValue(value: string): string | null {
  const length = value.length;
  let i = 0;
  while (i < length) {
    const code = value.charCodeAt(i);
    if (code < 0x20 || code === 0x5c) break;
    i++;
  }
  if (i === length) return value;
  let out = "";
  let from = 0;
  for (; i < length; i++) {
    const code = value.charCodeAt(i);
    if (code >= 0x20 && code !== 0x5c) continue;
    if (code === 0) return null;
    const letter = code === 0x5c ? "\\" : ESCAPE_LETTER[code];
    if (letter === undefined) continue; // other control characters are written raw, as COPY TO does
    out += value.slice(from, i) + "\\" + letter;
    from = i + 1;
  }
  return out + value.slice(from);
}

/** The COPY line of a row, or the index of the first value holding a NUL. */
function copyLineOf(values: readonly (string | null | undefined)[]): string | number {
  let line = "";
  for (let i = 0; i < values.length; i++) {
    if (i > 0) line += "\t";
    const value = values[i];
    if (value === null || value === undefined) {
      line += "\\N";
      continue;
    }
    const escaped = escapeCopyValue(value);
    if (escaped === null) return i;
    line += escaped;
  }
  return line + "\n";
}

function nulReject(where: string, field: string): string {
  return `${where}: the value for field ${shown(field)} holds a NUL character, which PostgreSQL text cannot store`;
}

/**
 * `options.rowCheck` for rows whose values come in the order of `fields`
 * (target fields): the values are put in target-field order first, a target
 * field not among `fields` being null. Undefined without a row check.
 */
function fieldsCheck(fields: readonly string[], options: FileBatchOptions): FieldsCheck | undefined {
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
function checkedRecord(
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

// ---------------------------------------------------------------------------
// gzip

/**
 * The gunzipped bytes of `input`, streaming; corrupt or truncated gzip throws
 * `invalid_argument`. Stopping an iteration early does not close the stream:
 * {@link GunzipReader.gzipErrorAfterDrain} can then read on to the end, and
 * {@link GunzipReader.close} ends it.
 */
class GunzipReader implements AsyncIterable<Buffer> {
  private readonly gunzip = createGunzip();
  private readonly chunks: AsyncIterator<Buffer>;
  /** The gzip error once met (a read the parser no longer waited for may have met it). */
  private failure: DrayError | null = null;

  constructor(input: AsyncIterable<Uint8Array>) {
    pipeline(Readable.from(input, { objectMode: false }), this.gunzip, ignore);
    this.chunks = this.gunzip[Symbol.asyncIterator]();
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return {
      next: () => this.next(),
      return: async () => ({ done: true, value: undefined }),
    };
  }

  /**
   * Reads (and drops) the rest of the stream; the gzip error it ends with, or
   * `null`. Garbage from a corrupt gzip stream often fails the parser before
   * the gzip checks fail: the gzip error is the one to report then.
   */
  async gzipErrorAfterDrain(): Promise<DrayError | null> {
    try {
      while (!(await this.next()).done) {
        // dropped
      }
      return this.failure;
    } catch (error) {
      return isGzipError(error) ? error : this.failure;
    }
  }

  close(): void {
    this.gunzip.destroy();
  }

  private async next(): Promise<IteratorResult<Buffer>> {
    try {
      return await this.chunks.next();
    } catch (error) {
      if (isZlibError(error)) {
        this.failure = new DrayError("invalid_argument", `the file is not valid gzip: ${error.message}`, {
          details: { reason: "invalid_gzip" },
        });
        throw this.failure;
      }
      throw error;
    }
  }
}

function isGzipError(error: unknown): error is DrayError {
  return isDrayError(error) && (error.details as { reason?: unknown } | undefined)?.reason === "invalid_gzip";
}

/** Failures that garbage from a corrupt gzip stream can cause before the gzip checks fail. */
function isGarbageFailure(error: unknown): boolean {
  if (!isDrayError(error)) return false;
  const reason = (error.details as { reason?: unknown } | undefined)?.reason;
  return (
    typeof reason === "string" &&
    (reason === "invalid_utf8" ||
      reason === "line_too_long" ||
      reason.startsWith("CSV_") ||
      reason === "INVALID_OPENING_QUOTE")
  );
}

function isZlibError(error: unknown): error is Error {
  const code = (error as { code?: unknown } | null)?.code;
  return error instanceof Error && typeof code === "string" && code.startsWith("Z_");
}

function ignore(): void {}

// ---------------------------------------------------------------------------
// CSV

/** How header columns become output fields. */
interface CsvLayout {
  /** Output fields, in column order. */
  fields: string[];
  /** File column index of each output field. */
  columns: number[];
  /** Columns every row must have (the header's). */
  width: number;
}

/** A CSV record with the physical lines it spans. */
type CsvRow = { record: (string | null)[]; startLine: number; endLine: number };

/** Unquoted empty fields are NULL; quoted ones keep their value, empty included. */
function castCsvValue(value: string, context: { quoting: boolean }): string | null {
  return value === "" && !context.quoting ? null : value;
}

/** The parts of csv-parse 6's parser state {@link useLightCast} relies on. */
interface CsvParserInternals {
  api?: { __cast?: unknown; state?: { wasQuoting?: unknown } };
}

/**
 * Makes the parser apply {@link castCsvValue} without building the context
 * object csv-parse creates for every field before calling `cast` (which takes
 * most of the parse time): the parser's own cast step is replaced by one
 * reading the same `quoting` flag from its state. When the parser does not
 * have the expected shape (another csv-parse version), nothing changes and
 * `cast` is called as documented, with the same results.
 */
function useLightCast(parser: unknown): void {
  const api = (parser as CsvParserInternals).api;
  if (api === undefined || typeof api.__cast !== "function" || typeof api.state?.wasQuoting !== "boolean")
    return;
  const state = api.state;
  api.__cast = (field: string) => [undefined, field === "" && state.wasQuoting === false ? null : field];
}

/**
 * Physical line tracking, done as the parser emits each record (so it is current
 * when the parser fails): csv-parse counts a CR LF inside a quoted field as two
 * lines, so a record's lines are counted here from the newlines its values hold,
 * after the empty lines the parser skipped before it.
 */
class CsvLines {
  lastEnd = 0;
  lastEmpty = 0;

  place(record: (string | null)[], emptyLines: number): CsvRow {
    const startLine = this.lastEnd + 1 + (emptyLines - this.lastEmpty);
    let endLine = startLine;
    for (const value of record) if (value !== null) endLine += countNewlines(value);
    this.lastEnd = endLine;
    this.lastEmpty = emptyLines;
    return { record, startLine, endLine };
  }

  /** Where the record the parser is reading starts. */
  nextStart(emptyLines: number): number {
    return this.lastEnd + 1 + Math.max(0, emptyLines - this.lastEmpty);
  }
}

async function* csvRecords(
  bytes: AsyncIterable<Uint8Array>,
  options: FileBatchOptions,
): AsyncGenerator<ReaderItem> {
  const { settings } = options;
  const skip = options.skipRecords ?? 0;
  const lines = new CsvLines();
  const csvOptions: Options<CsvRow, (string | null)[]> = {
    delimiter: settings.delimiter,
    quote: settings.quote,
    escape: settings.quote,
    bom: true,
    relax_column_count: true,
    skip_empty_lines: true,
    max_record_size: options.maxRecordBytes ?? MAX_RECORD_BYTES,
    cast: castCsvValue,
    on_record: (record, info) => lines.place(record, info.empty_lines),
  };
  // The typings know only string records; `cast` and `on_record` make them CsvRow.
  const parser = parseCsv(csvOptions as unknown as Options);
  useLightCast(parser);
  pipeline(Readable.from(utf8Checked(bytes), { objectMode: false }), parser, ignore);
  let layout: CsvLayout | undefined;
  let check: FieldsCheck | undefined;
  let recordNo = 0;
  try {
    for await (const { record, startLine, endLine } of parser as AsyncIterable<CsvRow>) {
      if (layout === undefined) {
        layout = csvLayout(record, options, startLine);
        check = fieldsCheck(layout.fields, options);
        yield { fields: layout.fields };
        continue;
      }
      recordNo++;
      if (recordNo <= skip) continue;
      yield csvRecord(record, layout, startLine, endLine, check);
    }
  } catch (error) {
    throw csvFailure(error, lines, layout === undefined && lines.lastEnd === 0);
  } finally {
    parser.destroy();
  }
  if (layout === undefined) {
    throw new DrayError(
      "invalid_argument",
      "the CSV file is empty: it must start with a header line naming its columns",
      { details: { line: 1 } },
    );
  }
}

function csvRecord(
  record: (string | null)[],
  layout: CsvLayout,
  startLine: number,
  endLine: number,
  check: FieldsCheck | undefined,
): ParsedRecord {
  const where = startLine === endLine ? `line ${startLine}` : `lines ${startLine}-${endLine}`;
  if (record.length !== layout.width) {
    return {
      startLine,
      endLine,
      reject: `${where} has ${record.length} ${plural(record.length, "column")}, the header has ${layout.width}`,
    };
  }
  const values = layout.columns.map((column) => record[column]);
  const copyLine = copyLineOf(values);
  if (typeof copyLine === "number")
    return { startLine, endLine, reject: nulReject(where, layout.fields[copyLine]!) };
  return checkedRecord(startLine, endLine, copyLine, values, check);
}

/** Output fields from the header; throws `invalid_argument` when header and mapping or target disagree. */
function csvLayout(header: (string | null)[], options: FileBatchOptions, line: number): CsvLayout {
  const names = header.map((name) => name ?? "");
  const mapping = options.settings.fieldMapping;
  const found = `the header (line ${line}) has: ${listed(names)}`;
  const fail = (message: string, extra: Record<string, unknown>) =>
    new DrayError("invalid_argument", message, { details: { line, columns: names, ...extra } });
  const seen = new Set<string>();
  const duplicates = new Set<string>();
  for (const name of names) (seen.has(name) ? duplicates : seen).add(name);
  const fields: string[] = [];
  const columns: number[] = [];
  if (mapping === undefined) {
    const targets = new Set(options.targetFields);
    const unknown = names.filter((name) => !targets.has(name));
    if (unknown.length > 0) {
      throw fail(
        `the CSV header names ${plural(unknown.length, "column")} that ${unknown.length === 1 ? "is not a field" : "are not fields"} of the target table: ` +
          `${listed(unknown)}; ${found}. Rename the columns to target fields (${listed(options.targetFields)}) ` +
          `or set fieldMapping to map file columns to target fields (unmapped columns are then ignored)`,
        { unknownColumns: unknown },
      );
    }
    names.forEach((name, index) => {
      fields.push(name);
      columns.push(index);
    });
  } else {
    const missing = Object.keys(mapping).filter((column) => !seen.has(column));
    if (missing.length > 0) {
      throw fail(
        `the CSV header lacks ${plural(missing.length, "column")} named in fieldMapping: ${listed(missing)}; ${found}. ` +
          `Fix the mapping's column names (they must match the header exactly) or the file's header`,
        { missingColumns: missing },
      );
    }
    names.forEach((name, index) => {
      if (!Object.hasOwn(mapping, name)) return;
      fields.push(mapping[name]!);
      columns.push(index);
    });
  }
  const used = [...duplicates].filter((name) => mapping === undefined || Object.hasOwn(mapping, name));
  if (used.length > 0) {
    throw fail(
      `the CSV header names ${listed(used)} more than once; ${found}. Give every column its own name`,
      { duplicateColumns: used },
    );
  }
  return { fields, columns, width: names.length };
}

const CSV_PROBLEMS: Partial<Record<string, string>> = {
  CSV_QUOTE_NOT_CLOSED:
    "a quoted field is never closed: close it, and double any quote inside a quoted field",
  CSV_INVALID_CLOSING_QUOTE:
    "a closing quote is followed by something else than the delimiter or the end of the line: double any quote inside a quoted field",
  INVALID_OPENING_QUOTE:
    "a quote appears inside an unquoted field: quote the whole field and double the quote",
  CSV_MAX_RECORD_SIZE: "a field is too long",
};

/** The `invalid_argument` for a CSV the parser gave up on; other errors as they are. */
function csvFailure(error: unknown, lines: CsvLines, inHeader: boolean): unknown {
  if (isDrayError(error) || !(error instanceof CsvError)) return error;
  const line = lines.nextStart(typeof error.empty_lines === "number" ? error.empty_lines : lines.lastEmpty);
  const problem = CSV_PROBLEMS[error.code] ?? `it cannot be read as CSV (${error.code})`;
  // No cause: the parser's error carries the record's data.
  return new DrayError(
    "invalid_argument",
    `the CSV file cannot be read past line ${line}: in the ${inHeader ? "header" : "record"} starting at line ${line}, ${problem}`,
    { details: { line, reason: error.code } },
  );
}

/**
 * The chunks as they are, once checked to be UTF-8 (a character cut between
 * two chunks is checked with the next one); bytes that are not UTF-8 throw
 * `invalid_argument` naming the line.
 */
async function* utf8Checked(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
  let tail: Buffer | null = null;
  let line = 1;
  for await (const raw of chunks) {
    const chunk = asBuffer(raw);
    const whole: Buffer = tail === null ? chunk : Buffer.concat([tail, chunk]);
    const cut = whole.length - incompleteTailLength(whole);
    const checked = whole.subarray(0, cut);
    if (!isUtf8(checked)) throw notUtf8(line + firstInvalidLine(checked));
    line += countNewlineBytes(checked);
    tail = cut < whole.length ? Buffer.from(whole.subarray(cut)) : null;
    yield chunk;
  }
  if (tail !== null) throw notUtf8(line);
}

function notUtf8(line: number): DrayError {
  return new DrayError(
    "invalid_argument",
    `the file is not valid UTF-8 at line ${line}: save it as UTF-8 and upload it again`,
    { details: { line, reason: "invalid_utf8" } },
  );
}

/** Bytes at the end that start a UTF-8 sequence the buffer does not finish. */
function incompleteTailLength(bytes: Buffer): number {
  for (let back = 1; back <= 3 && back <= bytes.length; back++) {
    const byte = bytes[bytes.length - back]!;
    if ((byte & 0xc0) === 0x80) continue;
    if (byte < 0xc0) return 0;
    const needed = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : 2;
    return needed > back ? back : 0;
  }
  return 0;
}

/** 0-based index of the first line of `bytes` that is not UTF-8 (a newline never splits a character). */
function firstInvalidLine(bytes: Buffer): number {
  let index = 0;
  let start = 0;
  while (start <= bytes.length) {
    const newline = bytes.indexOf(LF, start);
    const end = newline === -1 ? bytes.length : newline;
    if (!isUtf8(bytes.subarray(start, end))) return index;
    if (newline === -1) break;
    index++;
    start = newline + 1;
  }
  return index;
}

// ---------------------------------------------------------------------------
// NDJSON

async function* ndjsonRecords(
  bytes: AsyncIterable<Uint8Array>,
  options: FileBatchOptions,
): AsyncGenerator<ReaderItem> {
  const mapping = options.settings.fieldMapping;
  const fields = mapping === undefined ? [...options.targetFields] : Object.values(mapping);
  const fieldIndex = new Map(fields.map((field, index) => [field, index]));
  const check = fieldsCheck(fields, options);
  const targets = new Set(options.targetFields);
  const skip = options.skipRecords ?? 0;
  const fieldOfKey = (key: string): string | undefined | null => {
    if (mapping !== undefined) return Object.hasOwn(mapping, key) ? mapping[key] : null;
    return targets.has(key) ? key : undefined;
  };
  yield { fields };
  let lineNo = 0;
  let recordNo = 0;
  for await (const lines of lineGroups(bytes, options.maxRecordBytes ?? MAX_RECORD_BYTES)) {
    for (const raw of lines) {
      lineNo++;
      let line = raw;
      if (lineNo === 1 && line[0] === 0xef && line[1] === 0xbb && line[2] === 0xbf) line = line.subarray(3);
      if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
      if (isBlank(line)) continue;
      recordNo++;
      if (recordNo <= skip) continue;
      yield ndjsonRecord(line, lineNo, fields, fieldIndex, fieldOfKey, check);
    }
  }
}

function ndjsonRecord(
  bytes: Buffer,
  line: number,
  fields: string[],
  fieldIndex: Map<string, number>,
  fieldOfKey: (key: string) => string | undefined | null,
  check: FieldsCheck | undefined,
): ParsedRecord {
  const where = `line ${line}`;
  const rejected = (message: string): ParsedRecord => ({ startLine: line, endLine: line, reject: message });
  if (!isUtf8(bytes)) return rejected(`${where} is not valid UTF-8`);
  const text = bytes.toString("utf8");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // The parser's message quotes the data: not passed on.
    return rejected(`${where} is not valid JSON`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    const kind = parsed === null ? "null" : Array.isArray(parsed) ? "an array" : `a ${typeof parsed}`;
    return rejected(`${where} is ${kind}, not a JSON object`);
  }
  const values: (string | null)[] = new Array(fields.length).fill(null);
  for (const [key, rawValue] of topLevelMembers(text)) {
    const field = fieldOfKey(key);
    if (field === null) continue;
    if (field === undefined) {
      return rejected(
        `${where} has key ${shown(key)}, which is not a field of the target table: ` +
          `remove it or set fieldMapping (unmapped keys are then ignored)`,
      );
    }
    values[fieldIndex.get(field)!] = jsonValueText(rawValue);
  }
  const copyLine = copyLineOf(values);
  if (typeof copyLine === "number") return rejected(nulReject(where, fields[copyLine]!));
  return checkedRecord(line, line, copyLine, values, check);
}

/** The text written for a top-level JSON value given as its source text. */
function jsonValueText(raw: string): string | null {
  switch (raw.charCodeAt(0)) {
    case 0x22: // string
      return raw.includes("\\") ? (JSON.parse(raw) as string) : raw.slice(1, -1);
    case 0x74: // true
      return "t";
    case 0x66: // false
      return "f";
    case 0x6e: // null
      return null;
    default: // number as written, object or array as its JSON text
      return raw;
  }
}

/**
 * Keys and value source texts of the members of a JSON object, in order,
 * from text already known to be a valid JSON object (a linear scan).
 */
export function topLevelMembers(text: string): [string, string][] {
  const members: [string, string][] = [];
  let i = skipSpace(text, 0) + 1;
  for (;;) {
    i = skipSpace(text, i);
    if (text.charCodeAt(i) !== 0x22) break; // "}"
    const keyEnd = stringEnd(text, i);
    const rawKey = text.slice(i, keyEnd);
    const key = rawKey.includes("\\") ? (JSON.parse(rawKey) as string) : rawKey.slice(1, -1);
    const valueStart = skipSpace(text, skipSpace(text, keyEnd) + 1);
    const valueEnd = valueEndOf(text, valueStart);
    members.push([key, text.slice(valueStart, valueEnd)]);
    i = skipSpace(text, valueEnd);
    if (text.charCodeAt(i) !== 0x2c) break; // no ","
    i++;
  }
  return members;
}

function skipSpace(text: string, from: number): number {
  let i = from;
  for (;;) {
    const code = text.charCodeAt(i);
    if (code !== 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d) return i;
    i++;
  }
}

/** Index just past the string starting at `from` (its opening quote). */
function stringEnd(text: string, from: number): number {
  let i = from + 1;
  for (;;) {
    const code = text.charCodeAt(i);
    if (code === 0x5c) i += 2;
    else if (code === 0x22) return i + 1;
    else i++;
  }
}

/** Index just past the value starting at `from`. */
function valueEndOf(text: string, from: number): number {
  const first = text.charCodeAt(from);
  if (first === 0x22) return stringEnd(text, from);
  if (first === 0x7b || first === 0x5b) {
    let depth = 0;
    let i = from;
    for (;;) {
      const code = text.charCodeAt(i);
      if (code === 0x22) {
        i = stringEnd(text, i);
        continue;
      }
      if (code === 0x7b || code === 0x5b) depth++;
      else if (code === 0x7d || code === 0x5d) {
        depth--;
        if (depth === 0) return i + 1;
      }
      i++;
    }
  }
  let i = from;
  for (;;) {
    const code = text.charCodeAt(i);
    if (Number.isNaN(code) || code === 0x2c || code === 0x7d || code === 0x5d) return i;
    if (code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d) return i;
    i++;
  }
}

function isBlank(line: Buffer): boolean {
  for (const byte of line) if (byte !== 0x20 && byte !== 0x09 && byte !== CR) return false;
  return true;
}

/**
 * The lines of a byte stream (without their `\n`), grouped by the chunk that
 * ends them; a final line without `\n` counts. A line longer than `maxLineBytes`
 * throws `invalid_argument`.
 */
async function* lineGroups(
  chunks: AsyncIterable<Uint8Array>,
  maxLineBytes: number,
): AsyncGenerator<Buffer[]> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let linesBefore = 0;
  const tooLong = (line: number) =>
    new DrayError(
      "invalid_argument",
      `line ${line} is longer than ${maxLineBytes} bytes: split it, or check the file is newline-delimited JSON`,
      { details: { line, reason: "line_too_long" } },
    );
  for await (const raw of chunks) {
    const chunk = asBuffer(raw);
    const lines: Buffer[] = [];
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(LF, start);
      if (newline === -1) break;
      let line = chunk.subarray(start, newline);
      if (pending.length > 0) {
        pending.push(line);
        line = Buffer.concat(pending);
        pending = [];
        pendingBytes = 0;
      }
      if (line.length > maxLineBytes) throw tooLong(linesBefore + lines.length + 1);
      lines.push(line);
      start = newline + 1;
    }
    linesBefore += lines.length;
    if (start < chunk.length) {
      // Kept across reads: copied, in case the source reuses its buffers.
      pending.push(Buffer.from(chunk.subarray(start)));
      pendingBytes += chunk.length - start;
      if (pendingBytes > maxLineBytes) throw tooLong(linesBefore + 1);
    }
    if (lines.length > 0) yield lines;
  }
  if (pending.length > 0) yield [Buffer.concat(pending)];
}

// ---------------------------------------------------------------------------
// Helpers

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function countNewlines(value: string): number {
  let count = 0;
  let at = value.indexOf("\n");
  while (at !== -1) {
    count++;
    at = value.indexOf("\n", at + 1);
  }
  return count;
}

function countNewlineBytes(bytes: Buffer): number {
  let count = 0;
  let at = bytes.indexOf(LF);
  while (at !== -1) {
    count++;
    at = bytes.indexOf(LF, at + 1);
  }
  return count;
}

function plural(count: number, word: string): string {
  return count === 1 ? word : `${word}s`;
}

/** A short, printable rendering of a name for messages. */
function shown(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
}

/** Names for a message: at most 50, each shortened. */
function listed(names: readonly string[]): string {
  const shownNames = names.slice(0, 50).map(shown).join(", ");
  return names.length > 50 ? `${shownNames} and ${names.length - 50} more` : shownNames || "(none)";
}
