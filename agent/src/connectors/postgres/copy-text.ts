/**
 * PostgreSQL COPY text format, done by hand: encoding rows the way `COPY ... TO
 * STDOUT` does (backslash escapes, `\N` for NULL), splitting and decoding lines
 * the way `COPY ... FROM STDIN` does, and checking a line before the server
 * sees it. Pure functions over bytes; no I/O.
 */
import { isUtf8 } from "node:buffer";

const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const BACKSLASH = 0x5c;
const DOT = 0x2e;
const N_UPPER = 0x4e;

/** Escape letters COPY TO uses for control bytes; other bytes below 0x20 are written raw. */
const ESCAPE_LETTER: Record<number, number> = {
  8: 0x62, // \b
  9: 0x74, // \t
  10: 0x6e, // \n
  11: 0x76, // \v
  12: 0x66, // \f
  13: 0x72, // \r
};

/** Value of each escape letter COPY FROM understands (besides octal and `\x` hex). */
const UNESCAPE_LETTER: Record<number, number> = {
  98: 0x08, // b
  102: 0x0c, // f
  110: 0x0a, // n
  114: 0x0d, // r
  116: 0x09, // t
  118: 0x0b, // v
};

function needsEscape(byte: number): boolean {
  return byte === BACKSLASH || (byte < 0x20 && ESCAPE_LETTER[byte] !== undefined);
}

/**
 * Accumulates COPY text lines into one growing buffer, escaping each field
 * exactly as the server's COPY TO would.
 */
export class CopyTextBuilder {
  private buffer: Buffer;
  private length = 0;

  constructor(initialCapacity = 64 * 1024) {
    this.buffer = Buffer.allocUnsafe(Math.max(16, initialCapacity));
  }

  /** Bytes written so far. */
  get byteLength(): number {
    return this.length;
  }

  /** Appends one row (`null` = SQL NULL); returns the number of bytes the line took, newline included. */
  addRow(values: readonly (Uint8Array | null)[]): number {
    const before = this.length;
    for (let i = 0; i < values.length; i++) {
      if (i > 0) this.pushByte(TAB);
      const value = values[i];
      if (value === null || value === undefined) {
        this.ensure(2);
        this.buffer[this.length++] = BACKSLASH;
        this.buffer[this.length++] = N_UPPER;
      } else {
        this.pushEscaped(value);
      }
    }
    this.pushByte(LF);
    return this.length - before;
  }

  /** Drops everything after `byteLength` (a line boundary the caller remembered). */
  truncate(byteLength: number): void {
    this.length = Math.min(this.length, Math.max(0, byteLength));
  }

  /** A copy of the bytes written, sized exactly. */
  toBuffer(): Buffer {
    return Buffer.from(this.buffer.subarray(0, this.length));
  }

  private pushByte(byte: number): void {
    this.ensure(1);
    this.buffer[this.length++] = byte;
  }

  private pushEscaped(value: Uint8Array): void {
    let escapes = 0;
    for (let i = 0; i < value.length; i++) if (needsEscape(value[i]!)) escapes++;
    this.ensure(value.length + escapes);
    if (escapes === 0) {
      this.buffer.set(value, this.length);
      this.length += value.length;
      return;
    }
    const out = this.buffer;
    let at = this.length;
    for (let i = 0; i < value.length; i++) {
      const byte = value[i]!;
      if (byte === BACKSLASH) {
        out[at++] = BACKSLASH;
        out[at++] = BACKSLASH;
      } else if (byte < 0x20 && ESCAPE_LETTER[byte] !== undefined) {
        out[at++] = BACKSLASH;
        out[at++] = ESCAPE_LETTER[byte]!;
      } else {
        out[at++] = byte;
      }
    }
    this.length = at;
  }

  private ensure(extra: number): void {
    this.buffer = withRoom(this.buffer, this.length, extra);
  }
}

/**
 * `buffer` when it has room for `extra` more bytes after the first `used`;
 * otherwise a buffer of at least double the size holding those `used` bytes.
 */
export function withRoom(buffer: Buffer, used: number, extra: number): Buffer {
  if (used + extra <= buffer.length) return buffer;
  let capacity = Math.max(1, buffer.length * 2);
  while (capacity < used + extra) capacity *= 2;
  const next = Buffer.allocUnsafe(capacity);
  buffer.copy(next, 0, 0, used);
  return next;
}

/**
 * One COPY text line (with its newline) from string values; `null` = NULL.
 *
 * @example
 * formatCopyLine(["1", "a\tb", null]) // "1\ta\\tb\t\\N\n"
 */
export function formatCopyLine(values: readonly (string | null)[]): string {
  const builder = new CopyTextBuilder(256);
  builder.addRow(values.map((v) => (v === null ? null : Buffer.from(v, "utf8"))));
  return builder.toBuffer().toString("utf8");
}

/**
 * Splits COPY text into lines (views, without the `\n`). A final line without
 * a newline counts as a line; an empty input has no lines. An escaped newline
 * (a backslash right before `\n`) does not occur in COPY TO output; such a line
 * is kept as is here and refused by {@link checkCopyLine}.
 */
export function splitCopyLines(data: Uint8Array): Uint8Array[] {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const lines: Uint8Array[] = [];
  let start = 0;
  while (start < bytes.length) {
    const end = bytes.indexOf(LF, start);
    if (end === -1) {
      lines.push(bytes.subarray(start));
      break;
    }
    lines.push(bytes.subarray(start, end));
    start = end + 1;
  }
  return lines;
}

/** Bytes {@link checkCopyText} stops at: 1 = field separator, 2 = line end, 3 = refused raw, 4 = escape. */
const SCAN_CLASS = (() => {
  const table = new Uint8Array(256);
  table[TAB] = 1;
  table[LF] = 2;
  table[CR] = 3;
  table[0] = 3;
  table[BACKSLASH] = 4;
  return table;
})();

/**
 * Escaped bytes after which a line needs the full {@link checkCopyLine}: the
 * `\.` marker, an escaped NUL, and octal or `\x` escapes (which may decode to
 * NUL or to bytes that are not UTF-8).
 */
const SUSPECT_ESCAPE = (() => {
  const table = new Uint8Array(256);
  for (const byte of [DOT, 0, 0x78, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37]) table[byte] = 1;
  return table;
})();

const NO_WORDS = new Uint32Array(0);

/** A line of a buffer that COPY FROM would refuse. */
export interface CopyLineProblem {
  /** 0-based line index. */
  index: number;
  /** Offset of the line's first byte in the buffer. */
  start: number;
  /** Offset just past the line's last byte, its newline excluded. */
  end: number;
  /** What {@link checkCopyLine} says about the line. */
  problem: string;
}

/** What {@link checkCopyText} found in a buffer. */
export interface CopyTextCheck {
  /** Lines, counted as {@link splitCopyLines} counts them. */
  lineCount: number;
  /** The refused lines in order; empty when every line is well formed. */
  malformed: CopyLineProblem[];
}

/**
 * Checks every line of a COPY text buffer for `fieldCount` fields with the
 * same verdicts and messages as {@link checkCopyLine}, in one scan and without
 * slicing the buffer into lines: a byte loop counts lines and fields and notes
 * lines with a raw CR or NUL, a lone trailing backslash or an escape that needs
 * decoding; UTF-8 is checked once over the whole buffer (a newline cannot sit
 * inside a multi-byte sequence, so the buffer is valid exactly when every line
 * is). Only noted lines — and every line, when the buffer is not UTF-8 — are
 * then looked at one by one.
 *
 * @example
 * checkCopyText(Buffer.from("1\ta\n2\n"), 2)
 * // { lineCount: 2, malformed: [{ index: 1, start: 4, end: 5, problem: "line has 1 fields, expected 2" }] }
 */
export function checkCopyText(data: Uint8Array, fieldCount: number): CopyTextCheck {
  const length = data.length;
  const offset = data.byteOffset;
  // Noted lines as flat (index, start, end) triples.
  const noted: number[] = [];
  let lineCount = 0;
  let start = 0;
  let fields = 1;
  let suspect = false;
  // Aligned 32-bit words with no byte below 0x20 and no backslash hold nothing to look at:
  // they are skipped four bytes at a time (the bit tests are exact whatever the byte order).
  const head = (4 - (offset & 3)) & 3;
  const words =
    length >= head + 4 ? new Uint32Array(data.buffer, offset + head, (length - head) >>> 2) : NO_WORDS;
  let i = 0;
  while (i < length) {
    let until = i + 1;
    if (((offset + i) & 3) === 0 && i + 4 <= length) {
      const word = words[(i - head) >>> 2]!;
      const backslashes = word ^ 0x5c5c5c5c;
      if (
        ((((word - 0x20202020) & ~word) | ((backslashes - 0x01010101) & ~backslashes)) & 0x80808080) ===
        0
      ) {
        i += 4;
        continue;
      }
      until = i + 4;
    }
    for (; i < until; i++) {
      const kind = SCAN_CLASS[data[i]!]!;
      if (kind === 0) continue;
      if (kind === 1) {
        fields++;
      } else if (kind === 2) {
        if (suspect || fields !== fieldCount) noted.push(lineCount, start, i);
        lineCount++;
        start = i + 1;
        fields = 1;
        suspect = false;
      } else if (kind === 3) {
        suspect = true;
      } else if (i + 1 >= length || data[i + 1] === LF) {
        // A backslash ending the line; its newline is the next byte looked at.
        suspect = true;
      } else if (SUSPECT_ESCAPE[data[++i]!] === 1) {
        suspect = true;
      }
    }
  }
  if (start < length) {
    if (suspect || fields !== fieldCount) noted.push(lineCount, start, length);
    lineCount++;
  }
  const utf8 = isUtf8(data);
  if (noted.length === 0 && utf8) return { lineCount, malformed: [] };
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const malformed: CopyLineProblem[] = [];
  const check = (index: number, lineStart: number, lineEnd: number) => {
    const problem = checkCopyLine(bytes.subarray(lineStart, lineEnd), fieldCount);
    if (problem !== null) malformed.push({ index, start: lineStart, end: lineEnd, problem });
  };
  if (utf8) {
    for (let at = 0; at < noted.length; at += 3) check(noted[at]!, noted[at + 1]!, noted[at + 2]!);
    return { lineCount, malformed };
  }
  // Not UTF-8 somewhere: every line is a suspect.
  let lineStart = 0;
  for (let index = 0; index < lineCount; index++) {
    const newline = bytes.indexOf(LF, lineStart);
    const lineEnd = newline === -1 ? length : newline;
    check(index, lineStart, lineEnd);
    lineStart = lineEnd + 1;
  }
  return { lineCount, malformed };
}

function hexValue(byte: number | undefined): number {
  if (byte === undefined) return -1;
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x41 + 10;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x61 + 10;
  return -1;
}

function isOctal(byte: number | undefined): byte is number {
  return byte !== undefined && byte >= 0x30 && byte <= 0x37;
}

/**
 * Decodes one raw field of a COPY text line to its bytes, as COPY FROM does:
 * `\N` alone is NULL; `\\ \b \f \n \r \t \v`, octal `\N[NN]`, hex `\xH[H]`;
 * any other escaped character stands for itself.
 */
export function decodeCopyField(raw: Uint8Array): Uint8Array | null {
  if (raw.length === 2 && raw[0] === BACKSLASH && raw[1] === N_UPPER) return null;
  if (!raw.includes(BACKSLASH)) return raw;
  const out = Buffer.allocUnsafe(raw.length);
  let at = 0;
  for (let i = 0; i < raw.length; i++) {
    const byte = raw[i]!;
    if (byte !== BACKSLASH || i + 1 >= raw.length) {
      out[at++] = byte;
      continue;
    }
    const next = raw[++i]!;
    if (isOctal(next)) {
      let value = next - 0x30;
      if (isOctal(raw[i + 1])) {
        value = value * 8 + (raw[++i]! - 0x30);
        if (isOctal(raw[i + 1])) value = value * 8 + (raw[++i]! - 0x30);
      }
      out[at++] = value & 0xff;
    } else if (next === 0x78 && hexValue(raw[i + 1]) >= 0) {
      let value = hexValue(raw[++i]);
      if (hexValue(raw[i + 1]) >= 0) value = value * 16 + hexValue(raw[++i]);
      out[at++] = value;
    } else {
      out[at++] = UNESCAPE_LETTER[next] ?? next;
    }
  }
  return out.subarray(0, at);
}

/** Splits a line into its raw (still escaped) fields at unescaped tabs. */
export function splitCopyFields(line: Uint8Array): Uint8Array[] {
  const fields: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i < line.length; i++) {
    const byte = line[i];
    if (byte === BACKSLASH) i++;
    else if (byte === TAB) {
      fields.push(line.subarray(start, i));
      start = i + 1;
    }
  }
  fields.push(line.subarray(start));
  return fields;
}

/**
 * Decodes a line to strings (`null` for NULL); invalid UTF-8 is replaced, so
 * this never throws. Use for reporting; {@link checkCopyLine} first when the
 * line must be valid.
 */
export function parseCopyLine(line: Uint8Array): (string | null)[] {
  return splitCopyFields(line).map((raw) => {
    const value = decodeCopyField(raw);
    return value === null
      ? null
      : Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("utf8");
  });
}

/**
 * Why COPY FROM would refuse this line, or `null` when it is well formed for
 * `fieldCount` fields: wrong field count, an unescaped CR, a NUL (raw or escaped), the
 * `\.` end-of-data marker, a trailing lone backslash, or bytes that are not
 * UTF-8 (before or after unescaping).
 */
export function checkCopyLine(line: Uint8Array, fieldCount: number): string | null {
  let fields = 1;
  let unescapesHighBytes = false;
  for (let i = 0; i < line.length; i++) {
    const byte = line[i]!;
    if (byte === TAB) fields++;
    else if (byte === CR) return "raw carriage return in data (must be escaped as \\r)";
    else if (byte === 0) return "NUL byte in data";
    else if (byte === BACKSLASH) {
      if (i + 1 >= line.length) return "line ends with a lone backslash";
      const next = line[++i]!;
      if (next === DOT) return "\\. (end-of-data marker) inside data";
      if (isOctal(next) || next === 0x78) unescapesHighBytes = true;
      else if (next === 0) return "NUL byte in data";
    }
  }
  if (fields !== fieldCount) return `line has ${fields} fields, expected ${fieldCount}`;
  if (!isUtf8(line)) return "line is not valid UTF-8";
  if (unescapesHighBytes) {
    for (const raw of splitCopyFields(line)) {
      const value = decodeCopyField(raw);
      if (value === null) continue;
      if (value.includes(0)) return "escape sequence decodes to a NUL byte";
      if (!isUtf8(value)) return "escape sequences decode to invalid UTF-8";
    }
  }
  return null;
}
