/**
 * Lines of a byte stream, for the file readers: line-feed counting, and the
 * lines of a stream grouped by the chunk that ends them, with a bound on the
 * length of a line so that memory stays bounded.
 */
import { DrayError } from "@dray/common";

/** The line-feed byte. */
export const LF = 0x0a;
/** The carriage-return byte. */
export const CR = 0x0d;

/** The bytes as a Buffer, without copying them. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** How many `\n` the text holds. */
export function countNewlines(value: string): number {
  let count = 0;
  let at = value.indexOf("\n");
  while (at !== -1) {
    count++;
    at = value.indexOf("\n", at + 1);
  }
  return count;
}

/** How many line-feed bytes the bytes hold. */
export function countNewlineBytes(bytes: Buffer): number {
  let count = 0;
  let at = bytes.indexOf(LF);
  while (at !== -1) {
    count++;
    at = bytes.indexOf(LF, at + 1);
  }
  return count;
}

/**
 * The lines of a byte stream (without their `\n`), grouped by the chunk that
 * ends them; a final line without `\n` counts. A line longer than `maxLineBytes`
 * throws `invalid_argument` (reason `line_too_long`).
 *
 * @example
 * for await (const lines of lineGroups(chunks, 1 << 20)) for (const line of lines) read(line);
 */
export async function* lineGroups(
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
