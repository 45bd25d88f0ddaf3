/**
 * Settings of a files pipeline (stored as JSON in `pipelines.file_settings`):
 * the file format, the CSV delimiter and quote, and an optional mapping from
 * file columns (or JSON keys) to target fields. Also the guesses made from an
 * uploaded file's name and first bytes. Pure functions; no I/O.
 */
import { DrayError } from "@dray/common";

/** Formats a files pipeline reads. */
export const FILE_FORMATS = ["csv", "ndjson"] as const;

/** A format a files pipeline reads. */
export type FileFormat = (typeof FILE_FORMATS)[number];

/** A files pipeline's settings, defaults filled (see {@link validateFileSettings}). */
export interface FileSettings {
  format: FileFormat;
  /** CSV field delimiter, one character (default `,`); unused for NDJSON. */
  delimiter: string;
  /** CSV quote character, one character (default `"`), doubled inside a quoted field; unused for NDJSON. */
  quote: string;
  /**
   * File column (CSV header name or NDJSON key) → target field. When given,
   * only these columns are loaded and the others are ignored; when absent, every
   * column must be named after a target field.
   */
  fieldMapping?: Record<string, string>;
}

/** Default CSV delimiter. */
export const DEFAULT_DELIMITER = ",";
/** Default CSV quote. */
export const DEFAULT_QUOTE = '"';

const KNOWN_KEYS = new Set(["format", "delimiter", "quote", "fieldMapping"]);

/** A validation problem at a field path, as in `details.issues` of a 400. */
interface Issue {
  path: string;
  message: string;
}

/** Longest name (column or field) accepted in a mapping, in characters. */
const MAX_NAME_LENGTH = 1000;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A short, printable rendering of a user string for messages. */
function shown(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
}

/** Problem with a one-character setting, or null when it is fine. */
function singleCharacterProblem(value: unknown): string | null {
  if (typeof value !== "string") return "must be a string of one character";
  if (Array.from(value).length !== 1) return `must be exactly one character, got ${shown(value)}`;
  if (value === "\n" || value === "\r") return "cannot be a newline";
  if (value === "\0") return "cannot be a NUL character";
  return null;
}

/**
 * Checks a files pipeline's settings and returns them with defaults filled.
 * Throws `invalid_argument` naming every bad field (in `details.issues`, each
 * `{ path, message }`): a missing or unknown format, a delimiter or quote that is
 * not one character (or is a newline or NUL, or the delimiter equals the quote),
 * a fieldMapping that is not an object of non-empty strings, is empty or maps
 * two columns to the same field, and unknown settings.
 *
 * @example
 * validateFileSettings({ format: "csv", delimiter: ";" })
 * // { format: "csv", delimiter: ";", quote: '"' }
 */
export function validateFileSettings(input: unknown): FileSettings {
  if (!isPlainObject(input)) {
    throw invalid('file settings must be a JSON object such as {"format": "csv"}', [
      { path: "", message: "must be an object" },
    ]);
  }
  const issues: Issue[] = [];
  for (const key of Object.keys(input)) {
    if (!KNOWN_KEYS.has(key)) {
      issues.push({
        path: key,
        message: "is not a file setting: remove it (known: format, delimiter, quote, fieldMapping)",
      });
    }
  }
  const format = input.format;
  if (typeof format !== "string" || !(FILE_FORMATS as readonly string[]).includes(format)) {
    issues.push({
      path: "format",
      message:
        format === undefined ? 'is required: use "csv" or "ndjson"' : 'is not known: use "csv" or "ndjson"',
    });
  }
  const delimiter = input.delimiter ?? DEFAULT_DELIMITER;
  const delimiterProblem = singleCharacterProblem(delimiter);
  if (delimiterProblem !== null) issues.push({ path: "delimiter", message: delimiterProblem });
  const quote = input.quote ?? DEFAULT_QUOTE;
  const quoteProblem = singleCharacterProblem(quote);
  if (quoteProblem !== null) issues.push({ path: "quote", message: quoteProblem });
  if (delimiterProblem === null && quoteProblem === null && delimiter === quote) {
    issues.push({
      path: "delimiter",
      message: `cannot be the quote character ${shown(String(quote))}: choose another delimiter or quote`,
    });
  }
  const fieldMapping = mappingOf(input.fieldMapping, issues);
  if (issues.length > 0) {
    throw invalid(
      `invalid file settings: ${issues.map((i) => `${i.path || "(settings)"} ${i.message}`).join("; ")}`,
      issues,
    );
  }
  const settings: FileSettings = {
    format: format as FileFormat,
    delimiter: delimiter as string,
    quote: quote as string,
  };
  if (fieldMapping !== undefined) settings.fieldMapping = fieldMapping;
  return settings;
}

/** The mapping when valid (a fresh copy), adding issues otherwise. */
function mappingOf(value: unknown, issues: Issue[]): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isPlainObject(value)) {
    issues.push({
      path: "fieldMapping",
      message: 'must be an object of file column → target field, e.g. {"Customer ID": "customer_id"}',
    });
    return undefined;
  }
  const entries = Object.entries(value);
  if (entries.length === 0) {
    issues.push({ path: "fieldMapping", message: "is empty: map at least one column, or leave it out" });
    return undefined;
  }
  const mapping: Record<string, string> = {};
  const columnOfField = new Map<string, string>();
  const before = issues.length;
  for (const [column, field] of entries) {
    const path = `fieldMapping.${column}`;
    if (column.length === 0 || column.length > MAX_NAME_LENGTH || column.includes("\0")) {
      issues.push({ path, message: `column names must have 1 to ${MAX_NAME_LENGTH} characters and no NUL` });
      continue;
    }
    if (
      typeof field !== "string" ||
      field.length === 0 ||
      field.length > MAX_NAME_LENGTH ||
      field.includes("\0")
    ) {
      issues.push({ path, message: "must be the name of a target field (a non-empty string)" });
      continue;
    }
    const other = columnOfField.get(field);
    if (other !== undefined) {
      issues.push({
        path,
        message: `maps to field ${shown(field)} as column ${shown(other)} does: map each field from one column only`,
      });
      continue;
    }
    columnOfField.set(field, column);
    mapping[column] = field;
  }
  return issues.length === before ? mapping : undefined;
}

function invalid(message: string, issues: Issue[]): DrayError {
  return new DrayError("invalid_argument", message, { details: { issues } });
}

/**
 * The format an uploaded file's name suggests: `.csv` → csv; `.ndjson`,
 * `.jsonl`, `.json` → ndjson; each optionally followed by `.gz`; `null`
 * otherwise. Case does not matter.
 *
 * @example
 * formatOfFilename("Orders.CSV.gz") // "csv"
 */
export function formatOfFilename(name: string): FileFormat | null {
  let lower = name.toLowerCase();
  if (lower.endsWith(".gz")) lower = lower.slice(0, -3);
  if (lower.endsWith(".csv")) return "csv";
  if (lower.endsWith(".ndjson") || lower.endsWith(".jsonl") || lower.endsWith(".json")) return "ndjson";
  return null;
}

/**
 * True when bytes start with the gzip magic number (1f 8b).
 *
 * @example
 * isGzip(new Uint8Array([0x1f, 0x8b, 8])) // true
 */
export function isGzip(firstBytes: Uint8Array): boolean {
  return firstBytes.length >= 2 && firstBytes[0] === 0x1f && firstBytes[1] === 0x8b;
}
