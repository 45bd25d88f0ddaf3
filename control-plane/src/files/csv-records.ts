/**
 * The records of a CSV file, for the batch cutter: the header checked against
 * the target fields (or `fieldMapping`) before any row, then each record with
 * the physical lines it spans, as a COPY line or a reject. An unquoted empty
 * field is NULL, a quoted empty field the empty string; a record with another
 * number of columns than the header is rejected. A file the parser gives up on
 * (unterminated quote, bytes that are not UTF-8, a field too long) fails with
 * `invalid_argument` naming the line.
 */
import { pipeline, Readable } from "node:stream";
import { DrayError, isDrayError } from "@dray/common";
import { CsvError, type Options, parse as parseCsv } from "csv-parse";
import { countNewlines } from "./byte-lines.js";
import { copyLineOf, nulReject } from "./copy-text-encode.js";
import { listed, plural } from "./message-names.js";
import {
  checkedRecord,
  type FieldsCheck,
  fieldsCheck,
  MAX_RECORD_BYTES,
  type ParsedRecord,
  type ReaderItem,
  type RecordReadOptions,
} from "./parsed-record.js";
import { utf8Checked } from "./utf8-checked.js";

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

/**
 * The records of a CSV file (`bytes`, UTF-8): first `{ fields }` (the output
 * fields, from the header), then one record per row after the first
 * `skipRecords`. The header line and blank lines are not records.
 *
 * @throws DrayError `invalid_argument` when the file is empty, the header does
 *   not fit the target fields or the mapping, or the file cannot be read past a line
 * @example
 * for await (const item of csvRecords(bytes, { settings, targetFields })) use(item);
 */
export async function* csvRecords(
  bytes: AsyncIterable<Uint8Array>,
  options: RecordReadOptions,
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
function csvLayout(header: (string | null)[], options: RecordReadOptions, line: number): CsvLayout {
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

function ignore(): void {}
