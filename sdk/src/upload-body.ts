/**
 * The `multipart/form-data` body of `POST /api/v1/pipeline/upload`, built as a
 * stream: the form fields first (so that the control plane knows the pipeline
 * before the file's bytes arrive), then the file read chunk by chunk, never
 * held whole in memory.
 */
import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { basename } from "node:path";
import type { Readable } from "node:stream";

/** The form fields of an upload besides the file. */
export interface UploadFields {
  /** The name of the pipeline to load into. */
  pipeline: string;
  /** Names the upload batch (`GET /pipeline/status?publishertoken=` rolls it up). */
  publisherToken?: string;
}

/** A file to upload: its bytes as chunks, its name and, when known, its size. */
export interface UploadSource {
  chunks: AsyncIterable<Uint8Array | string>;
  filename: string;
  /** Its size in bytes; undefined for a stream of unknown length. */
  totalBytes: number | undefined;
}

/** A fresh multipart boundary (letters and digits only, as RFC 2046 allows). */
export function newBoundary(): string {
  return `----dray-${randomBytes(16).toString("hex")}`;
}

/** Quotes a form field or file name for a Content-Disposition header: `"`, CR and LF percent-encoded. */
export function quoteDispositionValue(value: string): string {
  let quoted = "";
  for (const ch of value) {
    if (ch === '"') quoted += "%22";
    else if (ch === "\r") quoted += "%0D";
    else if (ch === "\n") quoted += "%0A";
    else quoted += ch;
  }
  return `"${quoted}"`;
}

/** True when every character of `value` is printable ASCII. */
function isPlainAscii(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 32 || c > 126) return false;
  }
  return true;
}

/**
 * The Content-Disposition parameters of the file part: `filename="…"`, plus an RFC 5987
 * `filename*` with the UTF-8 name when it is not plain ASCII (the plain one then keeps its
 * ASCII characters only).
 *
 * @example
 * fileDisposition("rapport-été.csv") // 'filename="rapport-t.csv"; filename*=UTF-8\'\'rapport-%C3%A9t%C3%A9.csv'
 */
export function fileDisposition(filename: string): string {
  if (isPlainAscii(filename)) return `filename=${quoteDispositionValue(filename)}`;
  let ascii = "";
  for (const ch of filename) {
    const c = ch.codePointAt(0)!;
    if (c >= 32 && c <= 126) ascii += ch;
  }
  const extended = encodeURIComponent(filename).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `filename=${quoteDispositionValue(ascii || "upload")}; filename*=UTF-8''${extended}`;
}

/** The head of the body: the text fields, then the file part's header. */
export function multipartHead(boundary: string, fields: UploadFields, filename: string): string {
  const field = (name: string, value: string) =>
    `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
  return (
    field("pipeline", fields.pipeline) +
    (fields.publisherToken === undefined ? "" : field("publishertoken", fields.publisherToken)) +
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; ${fileDisposition(filename)}\r\n` +
    "Content-Type: application/octet-stream\r\n\r\n"
  );
}

/** The tail of the body, after the file's bytes. */
export function multipartTail(boundary: string): string {
  return `\r\n--${boundary}--\r\n`;
}

/**
 * The whole body as chunks: head, the file's chunks as they are read, tail. `onChunk` is
 * called with the number of file bytes read so far after each chunk.
 */
export async function* multipartBody(
  boundary: string,
  fields: UploadFields,
  source: UploadSource,
  onChunk?: (sentBytes: number) => void,
): AsyncGenerator<Uint8Array> {
  const encoder = new TextEncoder();
  yield encoder.encode(multipartHead(boundary, fields, source.filename));
  let sent = 0;
  for await (const chunk of source.chunks) {
    const bytes = typeof chunk === "string" ? encoder.encode(chunk) : chunk;
    sent += bytes.byteLength;
    yield bytes;
    onChunk?.(sent);
  }
  yield encoder.encode(multipartTail(boundary));
}

/** An async iterable as a web ReadableStream, pulled one chunk at a time (back-pressure kept). */
export function readableOf(chunks: AsyncIterable<Uint8Array>): ReadableStream<Uint8Array> {
  const iterator = chunks[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await iterator.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    async cancel(reason) {
      await iterator.return?.(reason);
    },
  });
}

/**
 * The file to upload: a path (opened and sized here; an unreadable path throws the
 * `ENOENT`/`EISDIR`… error of `fs.stat`) or a readable stream (named by `filename`).
 */
export async function uploadSource(
  file: string | Readable | AsyncIterable<Uint8Array>,
  filename?: string,
): Promise<UploadSource> {
  if (typeof file === "string") {
    const info = await stat(file);
    if (info.isDirectory()) {
      throw Object.assign(new Error(`EISDIR: ${file} is a directory`), { code: "EISDIR", path: file });
    }
    return {
      chunks: createReadStream(file, { highWaterMark: 256 * 1024 }),
      filename: filename ?? basename(file),
      totalBytes: info.size,
    };
  }
  return { chunks: file, filename: filename ?? "upload", totalBytes: undefined };
}
