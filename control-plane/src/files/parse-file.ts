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
 *
 * This module cuts the batches (by rows and bytes, from `skipRecords` on
 * resume); the records come from the format readers (`csv-records.ts`,
 * `ndjson-records.ts`), gunzipped first when compressed (`gunzip-reader.ts`).
 */
import { DrayError } from "@dray/common";
import { csvRecords } from "./csv-records.js";
import { GunzipReader, isGarbageFailure } from "./gunzip-reader.js";
import { listed, plural, shown } from "./message-names.js";
import { ndjsonRecords } from "./ndjson-records.js";
import type { ParsedRecord, RecordReadOptions } from "./parsed-record.js";

export { type FileRowCheck, MAX_RECORD_BYTES } from "./parsed-record.js";

/** A row that was not loaded: its (first) physical line and why, without its data. */
export interface FileReject {
  line: number;
  message: string;
  /** `parse`: the row could not be read; `quality`: it was read but failed the row check. */
  kind: "parse" | "quality";
}

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

/** How {@link fileBatches} reads a file (see {@link RecordReadOptions}) and cuts it. */
export interface FileBatchOptions extends RecordReadOptions {
  /** True when the file is gzip (see `isGzip`): it is gunzipped as it streams. */
  compressed: boolean;
  /** Most records (rejected ones included) in a batch. */
  maxRows: number;
  /** Most bytes of COPY text in a batch, unless a single row is larger. */
  maxBytes: number;
}

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
