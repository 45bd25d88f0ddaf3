/**
 * The records of an NDJSON file, for the batch cutter: one JSON object per
 * line, blank lines skipped. Keys go through `fieldMapping` when given (others
 * ignored); without it a line with a key that is not a target field is
 * rejected, and every target field is written (a missing key is NULL). Values
 * become COPY text: strings as they are, booleans as t/f, numbers as written,
 * nested values as their JSON text. A line that is not a JSON object (or not
 * UTF-8) is rejected by line; a line too long fails the file.
 */
import { isUtf8 } from "node:buffer";
import { CR, lineGroups } from "./byte-lines.js";
import { copyLineOf, nulReject } from "./copy-text-encode.js";
import { topLevelMembers } from "./json-object-members.js";
import { shown } from "./message-names.js";
import {
  checkedRecord,
  type FieldsCheck,
  fieldsCheck,
  MAX_RECORD_BYTES,
  type ParsedRecord,
  type ReaderItem,
  type RecordReadOptions,
} from "./parsed-record.js";

/**
 * The records of an NDJSON file (`bytes`): first `{ fields }` (the mapping's
 * target fields, or every target field), then one record per non-blank line
 * after the first `skipRecords`.
 *
 * @throws DrayError `invalid_argument` when a line is longer than `maxRecordBytes`
 * @example
 * for await (const item of ndjsonRecords(bytes, { settings, targetFields })) use(item);
 */
export async function* ndjsonRecords(
  bytes: AsyncIterable<Uint8Array>,
  options: RecordReadOptions,
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

/**
 * The text written (before COPY escaping) for a top-level JSON value given as
 * its source text: a string unescaped, booleans as t/f, null as NULL, numbers
 * as written and nested values as their JSON text.
 *
 * @example
 * jsonValueText('"a\\tb"') // "a\tb"
 * jsonValueText("true") // "t"
 */
export function jsonValueText(raw: string): string | null {
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

function isBlank(line: Buffer): boolean {
  for (const byte of line) if (byte !== 0x20 && byte !== 0x09 && byte !== CR) return false;
  return true;
}
