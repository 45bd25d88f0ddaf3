/**
 * Reading `multipart/form-data` bodies (RFC 7578) as they stream: parts come
 * one after another, each with its bytes as an async iterable, so an uploaded
 * file is never held whole in memory. The parsing is `@fastify/busboy`'s; this
 * module turns its events into an async iterable with backpressure (a piece of
 * the body is handed to the parser only once it took the previous one, and it
 * takes none while the part being read holds unread bytes) and its failures
 * into `invalid_argument` errors.
 *
 * @example
 * for await (const part of parseMultipart(body, boundaryOf(contentType))) {
 *   if (part.name === "file") await stageUpload(db, part.body, { maxBytes });
 *   else await readTextPart(part, 1024);
 * }
 */
import type { Readable } from "node:stream";
import { MIMEType } from "node:util";
import { DrayError } from "@dray/common";
import { Busboy, type BusboyFileStream } from "@fastify/busboy";
import { type BytePieces, bufferOf, iteratorOf } from "./byte-pieces.js";

/** Limits of {@link parseMultipart}. */
export interface MultipartLimits {
  /** Largest header block of one part (longer ones are cut there: memory stays bounded). @default 16 KiB */
  maxHeaderBytes?: number;
  /** Most parts in one body. @default 20 */
  maxParts?: number;
  /** Largest preamble (bytes before the first part's headers end). @default 64 KiB */
  maxPreambleBytes?: number;
}

/** One part of a multipart body. */
export interface MultipartPart {
  /** The `name` of its Content-Disposition. */
  name: string;
  /** The `filename` (or decoded `filename*`) of its Content-Disposition, as sent (path included). */
  filename: string | undefined;
  /** Its Content-Type, lower-cased without parameters; `text/plain` when none was sent (RFC 7578 §4.4). */
  contentType: string | undefined;
  /**
   * Its bytes. Read them before asking for the next part; what is left unread
   * is skipped when the next part is asked for.
   */
  body: AsyncIterable<Uint8Array>;
}

const MAX_BOUNDARY_LENGTH = 70;
/** Most header lines of one part. */
const MAX_HEADER_PAIRS = 100;

function malformed(reason: string): DrayError {
  return new DrayError("invalid_argument", `invalid multipart/form-data body: ${reason}`);
}

/** True for the characters RFC 2046 allows in a boundary. */
function isBoundaryChar(c: number): boolean {
  return (
    (c >= 48 && c <= 57) ||
    (c >= 65 && c <= 90) ||
    (c >= 97 && c <= 122) ||
    "'()+_,-./:=? ".includes(String.fromCharCode(c))
  );
}

/**
 * The boundary of a `multipart/form-data` Content-Type (read with Node's
 * WHATWG `MIMEType`). Throws `invalid_argument` for another type or a
 * missing or invalid boundary.
 *
 * @example
 * boundaryOf('multipart/form-data; boundary="abc"') // "abc"
 */
export function boundaryOf(contentType: string | undefined): string {
  const expected = "the request must be multipart/form-data with a boundary (send the file as a form field)";
  if (!contentType) throw new DrayError("invalid_argument", expected);
  let mime: MIMEType;
  try {
    mime = new MIMEType(contentType);
  } catch {
    throw new DrayError("invalid_argument", expected);
  }
  const boundary = mime.params.get("boundary");
  if (mime.essence !== "multipart/form-data" || boundary === null) {
    throw new DrayError("invalid_argument", expected);
  }
  if (boundary.length === 0 || boundary.length > MAX_BOUNDARY_LENGTH) {
    throw new DrayError("invalid_argument", expected);
  }
  for (let i = 0; i < boundary.length; i++) {
    if (!isBoundaryChar(boundary.charCodeAt(i))) throw new DrayError("invalid_argument", expected);
  }
  return boundary;
}

/** A boundary as a quoted Content-Type parameter. */
function quoted(boundary: string): string {
  return `"${boundary.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

/** The reason to give for a failure of the parser. */
function parserFailure(error: unknown, partsSeen: number): DrayError {
  const message = error instanceof Error ? error.message : String(error);
  if (partsSeen === 0) return malformed("the body holds no part (no boundary found)");
  if (message.startsWith("Unexpected end of multipart data")) {
    return malformed("the body ended inside a part (no closing boundary)");
  }
  return malformed(message);
}

/** A part as the parser announced it, before it is handed out. */
interface AnnouncedPart {
  name: string;
  filename: string | undefined;
  contentType: string;
  stream: BusboyFileStream;
}

/**
 * The bytes of one part: one iterator over its stream, shared by the caller
 * (who may stop early) and the drain that skips what is left. A failure of
 * the whole body wins over the part's own error.
 */
function partBytes(
  stream: Readable,
  failure: () => unknown,
): { body: AsyncIterable<Uint8Array>; drain: () => Promise<void> } {
  let iterator: AsyncIterator<Uint8Array> | undefined;
  const next = async (): Promise<IteratorResult<Uint8Array>> => {
    iterator ??= stream[Symbol.asyncIterator]();
    try {
      const result = await iterator.next();
      if (result.done && failure() !== undefined) throw failure();
      return result;
    } catch (error) {
      throw failure() ?? error;
    }
  };
  return {
    // No `return`: a caller that stops early leaves the rest to `drain`.
    body: { [Symbol.asyncIterator]: () => ({ next }) },
    drain: async () => {
      while (!(await next()).done) {
        // skip
      }
    },
  };
}

/**
 * The parts of a multipart body, in order. Throws `invalid_argument` (400) for
 * a body that does not follow the format or exceeds `limits`; a failure of
 * `source` itself is thrown as it is. Parts without a Content-Disposition of
 * `form-data` are skipped by the parser.
 */
export async function* parseMultipart(
  source: BytePieces,
  boundary: string,
  limits: MultipartLimits = {},
): AsyncGenerator<MultipartPart> {
  const maxHeaderBytes = limits.maxHeaderBytes ?? 16 * 1024;
  const maxParts = limits.maxParts ?? 20;
  const maxPreambleBytes = limits.maxPreambleBytes ?? 64 * 1024;
  const parser = Busboy({
    headers: { "content-type": `multipart/form-data; boundary=${quoted(boundary)}` },
    limits: { parts: maxParts, headerSize: maxHeaderBytes, headerPairs: MAX_HEADER_PAIRS },
    // Every part streams (fields too), so a long field is refused, never cut.
    isPartAFile: () => true,
    preservePath: true,
  });

  const announced: AnnouncedPart[] = [];
  let partsSeen = 0;
  let failure: unknown;
  let finished = false;
  let stopped = false;
  let current: Readable | undefined;
  let wake: (() => void) | undefined;
  let interruptWrite: (() => void) | undefined;
  const notify = () => {
    const resume = wake;
    wake = undefined;
    resume?.();
  };
  const fail = (error: unknown) => {
    if (failure !== undefined) return;
    failure = error;
    const reason = error instanceof Error ? error : new Error(String(error));
    current?.destroy(reason);
    for (const part of announced) part.stream.destroy(reason);
    notify();
    interruptWrite?.();
  };

  parser.on("file", (name, stream, filename, _encoding, mimeType) => {
    partsSeen++;
    // A part cut off by the end of the body gets an error of its own: the body's failure says it.
    stream.on("error", () => {});
    if (failure !== undefined) {
      stream.resume();
      return;
    }
    if (name === undefined) {
      stream.resume();
      fail(malformed("a part's Content-Disposition is not `form-data` with a `name`"));
      return;
    }
    announced.push({ name, filename, contentType: mimeType, stream });
    notify();
  });
  parser.on("partsLimit", () => fail(malformed(`more than ${maxParts} parts`)));
  parser.on("error", (error) => fail(parserFailure(error, partsSeen)));
  parser.on("finish", () => {
    finished = true;
    notify();
  });

  /** Hands the body to the parser one piece at a time, each once the previous one was taken. */
  const pump = async () => {
    const pieces = iteratorOf(source);
    let written = 0;
    try {
      for (;;) {
        const next = await pieces.next();
        if (stopped || failure !== undefined) {
          if (!next.done) await pieces.return?.();
          break;
        }
        if (next.done) {
          parser.end();
          break;
        }
        if (next.value.byteLength === 0) continue;
        written += next.value.byteLength;
        if (partsSeen === 0 && written > maxPreambleBytes + maxHeaderBytes) {
          fail(malformed("no boundary where the body starts"));
          break;
        }
        await new Promise<void>((resolve, reject) => {
          interruptWrite = resolve;
          parser.write(bufferOf(next.value), (error) => (error ? reject(error) : resolve()));
        });
        interruptWrite = undefined;
      }
    } catch (error) {
      if (!stopped) fail(error);
    }
  };
  const pumping = pump();

  try {
    for (;;) {
      while (announced.length === 0 && failure === undefined && !finished) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
      if (failure !== undefined) throw failure;
      const part = announced.shift();
      if (!part) return;
      current = part.stream;
      const bytes = partBytes(part.stream, () => failure);
      yield { name: part.name, filename: part.filename, contentType: part.contentType, body: bytes.body };
      await bytes.drain();
      current = undefined;
    }
  } finally {
    stopped = true;
    interruptWrite?.();
    current?.destroy();
    for (const part of announced) part.stream.destroy();
    parser.destroy();
    // The pump ends at its next piece; it never throws.
    void pumping;
  }
}

/**
 * The text of a small part (a form field), UTF-8, trimmed. Throws
 * `invalid_argument` naming the field when it is longer than `maxBytes`.
 */
export async function readTextPart(part: MultipartPart, maxBytes: number): Promise<string> {
  const pieces: Buffer[] = [];
  let size = 0;
  for await (const piece of part.body) {
    size += piece.byteLength;
    if (size > maxBytes) {
      throw new DrayError(
        "invalid_argument",
        `invalid form body: ${part.name}: must be at most ${maxBytes} bytes`,
        { details: { issues: [{ path: part.name, message: `must be at most ${maxBytes} bytes` }] } },
      );
    }
    pieces.push(bufferOf(piece));
  }
  return Buffer.concat(pieces).toString("utf8").trim();
}
