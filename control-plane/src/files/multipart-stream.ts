/**
 * A streaming parser of `multipart/form-data` bodies (RFC 7578): parts come
 * one after another, each with its bytes as an async iterable, so an uploaded
 * file is never held whole in memory. The parser keeps at most one piece of
 * the body plus a delimiter's length; the delimiter is found with
 * `Buffer.indexOf` (no regular expressions).
 *
 * @example
 * for await (const part of parseMultipart(body, boundaryOf(contentType))) {
 *   if (part.name === "file") await stageUpload(db, part.body, { maxBytes });
 *   else await readTextPart(part, 1024);
 * }
 */
import { DrayError } from "@dray/common";

/** Limits of {@link parseMultipart}. */
export interface MultipartLimits {
  /** Largest header block of one part. @default 16 KiB */
  maxHeaderBytes?: number;
  /** Most parts in one body. @default 20 */
  maxParts?: number;
  /** Largest preamble (bytes before the first boundary). @default 64 KiB */
  maxPreambleBytes?: number;
}

/** One part of a multipart body. */
export interface MultipartPart {
  /** The `name` of its Content-Disposition. */
  name: string;
  /** The `filename` (or decoded `filename*`) of its Content-Disposition, as sent. */
  filename: string | undefined;
  /** Its Content-Type header, when sent. */
  contentType: string | undefined;
  /**
   * Its bytes. Read them before asking for the next part; what is left unread
   * is skipped when the next part is asked for.
   */
  body: AsyncIterable<Uint8Array>;
}

const CRLF = Buffer.from("\r\n");
const HEADER_END = Buffer.from("\r\n\r\n");
const MAX_BOUNDARY_LENGTH = 70;

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
 * The boundary of a `multipart/form-data` Content-Type. Throws
 * `invalid_argument` for another type or a missing or invalid boundary.
 *
 * @example
 * boundaryOf('multipart/form-data; boundary="abc"') // "abc"
 */
export function boundaryOf(contentType: string | undefined): string {
  const expected = "the request must be multipart/form-data with a boundary (send the file as a form field)";
  if (!contentType) throw new DrayError("invalid_argument", expected);
  const { type, params } = parseHeaderValue(contentType);
  if (type.toLowerCase() !== "multipart/form-data") throw new DrayError("invalid_argument", expected);
  const boundary = params.get("boundary");
  if (boundary === undefined || boundary.length === 0 || boundary.length > MAX_BOUNDARY_LENGTH) {
    throw new DrayError("invalid_argument", expected);
  }
  for (let i = 0; i < boundary.length; i++) {
    if (!isBoundaryChar(boundary.charCodeAt(i))) throw new DrayError("invalid_argument", expected);
  }
  return boundary;
}

/**
 * A header value `type; a=b; c="d e"` as its first token and its parameters
 * (names lower-cased; quoted values unquoted, `\"` and `\\` unescaped). One
 * linear scan.
 */
export function parseHeaderValue(value: string): { type: string; params: Map<string, string> } {
  const params = new Map<string, string>();
  let at = value.indexOf(";");
  const type = (at < 0 ? value : value.slice(0, at)).trim();
  if (at < 0) return { type, params };
  at++;
  while (at < value.length) {
    while (at < value.length && (value[at] === " " || value[at] === "\t" || value[at] === ";")) at++;
    if (at >= value.length) break;
    let nameEnd = at;
    while (nameEnd < value.length && value[nameEnd] !== "=" && value[nameEnd] !== ";") nameEnd++;
    const name = value.slice(at, nameEnd).trim().toLowerCase();
    if (nameEnd >= value.length || value[nameEnd] === ";") {
      at = nameEnd;
      continue;
    }
    at = nameEnd + 1;
    while (at < value.length && (value[at] === " " || value[at] === "\t")) at++;
    let text = "";
    if (value[at] === '"') {
      at++;
      while (at < value.length && value[at] !== '"') {
        if (value[at] === "\\" && (value[at + 1] === '"' || value[at + 1] === "\\")) at++;
        text += value[at];
        at++;
      }
      at++; // the closing quote
      while (at < value.length && value[at] !== ";") at++;
    } else {
      let end = value.indexOf(";", at);
      if (end < 0) end = value.length;
      text = value.slice(at, end).trim();
      at = end;
    }
    if (name && !params.has(name)) params.set(name, text);
  }
  return { type, params };
}

/** The value of an RFC 5987 `filename*` (`UTF-8''%E2%82%AC.csv`), or undefined when it cannot be read. */
function decodeExtendedValue(value: string): string | undefined {
  const first = value.indexOf("'");
  const second = first < 0 ? -1 : value.indexOf("'", first + 1);
  if (second < 0) return undefined;
  const charset = value.slice(0, first).toLowerCase();
  if (charset !== "utf-8" && charset !== "us-ascii" && charset !== "") return undefined;
  try {
    return decodeURIComponent(value.slice(second + 1));
  } catch {
    return undefined;
  }
}

/** The name, filename and content type of a part from its header block. */
function partHeaders(block: string): Omit<MultipartPart, "body"> {
  let disposition: string | undefined;
  let contentType: string | undefined;
  for (const line of block.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === "content-disposition") disposition = value;
    else if (name === "content-type") contentType = value;
  }
  if (disposition === undefined) throw malformed("a part has no Content-Disposition header");
  const { type, params } = parseHeaderValue(disposition);
  const name = params.get("name");
  if (type.toLowerCase() !== "form-data" || name === undefined) {
    throw malformed("a part's Content-Disposition is not `form-data` with a `name`");
  }
  const extended = params.get("filename*");
  const filename =
    (extended === undefined ? undefined : decodeExtendedValue(extended)) ?? params.get("filename");
  return { name, filename, contentType };
}

/** A pull reader over the body's pieces with one pending buffer. */
class PieceReader {
  buffer: Buffer;
  private ended = false;

  constructor(
    private readonly source: AsyncIterator<Uint8Array>,
    initial: Buffer,
  ) {
    this.buffer = initial;
  }

  /** Appends the next non-empty piece to `buffer`; false when the body has ended. */
  async more(): Promise<boolean> {
    while (!this.ended) {
      const next = await this.source.next();
      if (next.done) {
        this.ended = true;
        return false;
      }
      const piece = next.value;
      if (piece.byteLength === 0) continue;
      const bytes = Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
      this.buffer = this.buffer.length === 0 ? bytes : Buffer.concat([this.buffer, bytes]);
      return true;
    }
    return false;
  }
}

/**
 * The parts of a multipart body, in order. Throws `invalid_argument` (400) for
 * a body that does not follow the format or exceeds `limits`.
 */
export async function* parseMultipart(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  boundary: string,
  limits: MultipartLimits = {},
): AsyncGenerator<MultipartPart> {
  const maxHeaderBytes = limits.maxHeaderBytes ?? 16 * 1024;
  const maxParts = limits.maxParts ?? 20;
  const maxPreambleBytes = limits.maxPreambleBytes ?? 64 * 1024;
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  const keep = delimiter.length - 1;
  // A CRLF in front makes the first boundary look like every later one.
  const pieces = (async function* () {
    yield* source;
  })();
  const reader = new PieceReader(pieces, Buffer.from(CRLF));

  // The preamble: everything before the first delimiter is skipped.
  let skipped = 0;
  for (;;) {
    const at = reader.buffer.indexOf(delimiter);
    if (at >= 0) {
      reader.buffer = reader.buffer.subarray(at + delimiter.length);
      break;
    }
    if (reader.buffer.length > keep) {
      skipped += reader.buffer.length - keep;
      reader.buffer = reader.buffer.subarray(reader.buffer.length - keep);
    }
    if (skipped > maxPreambleBytes) throw malformed("no boundary where the body starts");
    if (!(await reader.more())) throw malformed("the body holds no part (no boundary found)");
  }

  for (let parts = 0; ; parts++) {
    // After a delimiter: `--` closes the body; otherwise optional padding, then CRLF and the headers.
    while (reader.buffer.length < 2) {
      if (!(await reader.more())) throw malformed("the body ended after a boundary");
    }
    if (reader.buffer[0] === 45 && reader.buffer[1] === 45) return;
    if (parts >= maxParts) throw malformed(`more than ${maxParts} parts`);
    let headerEnd: number;
    for (;;) {
      const lineEnd = reader.buffer.indexOf(CRLF);
      headerEnd = lineEnd < 0 ? -1 : reader.buffer.indexOf(HEADER_END, lineEnd);
      if (headerEnd >= 0) break;
      if (reader.buffer.length > maxHeaderBytes) {
        throw malformed(`a part's headers are longer than ${maxHeaderBytes} bytes`);
      }
      if (!(await reader.more())) throw malformed("the body ended inside a part's headers");
    }
    const lineEnd = reader.buffer.indexOf(CRLF);
    for (let i = 0; i < lineEnd; i++) {
      const c = reader.buffer[i];
      if (c !== 32 && c !== 9) throw malformed("unexpected bytes after a boundary");
    }
    const block = reader.buffer.subarray(lineEnd + 2, Math.max(lineEnd + 2, headerEnd)).toString("utf8");
    reader.buffer = reader.buffer.subarray(headerEnd + HEADER_END.length);
    const headers = partHeaders(block);

    let partEnded = false;
    /** The next bytes of the current part, or undefined at its end. */
    const nextBytes = async (): Promise<Buffer | undefined> => {
      while (!partEnded) {
        const at = reader.buffer.indexOf(delimiter);
        if (at >= 0) {
          const bytes = reader.buffer.subarray(0, at);
          reader.buffer = reader.buffer.subarray(at + delimiter.length);
          partEnded = true;
          if (bytes.length > 0) return bytes;
          return undefined;
        }
        if (reader.buffer.length > keep) {
          const bytes = reader.buffer.subarray(0, reader.buffer.length - keep);
          reader.buffer = reader.buffer.subarray(reader.buffer.length - keep);
          return bytes;
        }
        if (!(await reader.more())) throw malformed("the body ended inside a part (no closing boundary)");
      }
      return undefined;
    };
    const body: AsyncIterable<Uint8Array> = {
      [Symbol.asyncIterator]: () => ({
        next: async (): Promise<IteratorResult<Uint8Array>> => {
          const bytes = await nextBytes();
          return bytes === undefined ? { done: true, value: undefined } : { done: false, value: bytes };
        },
      }),
    };
    yield { ...headers, body };
    // What the caller left unread is skipped.
    while ((await nextBytes()) !== undefined) {
      // skip
    }
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
    pieces.push(Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength));
  }
  return Buffer.concat(pieces).toString("utf8").trim();
}
