/**
 * A byte stream passed on unchanged once checked to be UTF-8 (the CSV reader
 * needs text): bytes that are not UTF-8 fail the file with the line they are on.
 */
import { isUtf8 } from "node:buffer";
import { DrayError } from "@dray/common";
import { asBuffer, countNewlineBytes, LF } from "./byte-lines.js";

/**
 * The chunks as they are, once checked to be UTF-8 (a character cut between
 * two chunks is checked with the next one); bytes that are not UTF-8 throw
 * `invalid_argument` naming the line (reason `invalid_utf8`).
 *
 * @example
 * for await (const chunk of utf8Checked(upload)) parser.write(chunk);
 */
export async function* utf8Checked(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
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
