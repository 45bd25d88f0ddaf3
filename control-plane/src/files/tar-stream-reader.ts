/**
 * The streaming tar reader: a tar is read as a stream of entries, each with
 * its bytes as an async iterable, so neither the archive nor an entry is ever
 * held whole. The parsing is `tar-stream`'s (ustar headers and checksums, GNU
 * long names, pax extended headers); this module turns its `extract()` stream
 * into an async iterable with backpressure (a piece of the archive is handed
 * over only once the previous ones were taken, and none while the entry being
 * read holds unread bytes) and its failures into `invalid_argument` errors.
 *
 * @example
 * for await (const entry of readTar(bytes)) {
 *   if (entry.type === "file") for await (const piece of entry.body) consume(piece);
 * }
 */
import { DrayError, isDrayError } from "@dray/common";
import { type ExtractEvents, extract, type Header } from "tar-stream";
import { type BytePieces, bufferOf, iteratorOf } from "./byte-pieces.js";
import { TAR_BLOCK_BYTES } from "./tar-headers.js";

/** The kind of a tar entry. */
export type TarEntryType = "file" | "directory" | "symlink" | "hardlink" | "other";

/** Largest metadata entry (pax extended header, GNU long name) `tar-stream` reads, in bytes. */
const MAX_METADATA_BYTES = 4 * 1024 * 1024;

/** One entry of a tar. */
export interface TarEntry {
  /** Its path as stored (pax `path`, GNU long name, or ustar prefix + name). */
  path: string;
  type: TarEntryType;
  /** Bytes of its data (0 for entries without data). */
  size: number;
  /** Its data. Read it before asking for the next entry; what is left unread is skipped. */
  body: AsyncIterable<Uint8Array>;
}

/** An `invalid_argument` error about an archive that cannot be read, with the reason. */
export function corruptTar(reason: string): DrayError {
  return new DrayError("invalid_argument", `the archive is not a valid tar: ${reason}`);
}

/** The kind of an entry from `tar-stream`'s type. */
function entryTypeOf(type: Header["type"] | null): TarEntryType {
  switch (type) {
    case "file":
    case "contiguous-file":
      return "file";
    case "directory":
      return "directory";
    case "symlink":
      return "symlink";
    case "link":
      return "hardlink";
    default:
      return "other";
  }
}

/** Bytes of padding after `size` bytes of data, up to the next block. */
function paddingOf(size: number): number {
  const rest = size % TAR_BLOCK_BYTES;
  return rest === 0 ? 0 : TAR_BLOCK_BYTES - rest;
}

/** True for a string of decimal digits only. */
function isDigits(value: string): boolean {
  if (value.length === 0 || value.length > 16) return false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/**
 * Refuses pax records `tar-stream` read leniently: a `path` that runs past
 * its record (a newline or NUL inside) or a `size` that is not a number.
 */
function checkPax(pax: unknown): void {
  if (pax === null || typeof pax !== "object") return;
  const { path, size } = pax as Record<string, unknown>;
  if (typeof path === "string" && (path.includes("\n") || path.includes("\0"))) {
    throw corruptTar("a pax extended header is malformed");
  }
  if (size !== undefined && (typeof size !== "string" || !isDigits(size))) {
    throw corruptTar("a pax size is not a number");
  }
}

/** Where the reading stands, to explain a failure of `tar-stream`. */
interface TarProgress {
  /** Entries handed out so far. */
  entries: number;
  /** Bytes of the archive handed to the parser. */
  written: number;
  /** Where the last entry's data and padding end. */
  lastEnd: number;
  /** The last entry's path. */
  lastPath: string | undefined;
}

/**
 * A failure of `tar-stream` as the `invalid_argument` error to answer; any
 * other error (the bytes' own source failing, gzip included) as it is.
 */
function tarFailure(error: unknown, at: TarProgress): unknown {
  if (isDrayError(error) || !(error instanceof Error)) return error;
  const message = error.message;
  if (message.startsWith("Invalid tar header. Maybe the tar is corrupted")) {
    return corruptTar(`the header after ${at.entries} entries is damaged (checksum)`);
  }
  if (message.startsWith("Invalid tar header: unknown format")) {
    return corruptTar(`the header after ${at.entries} entries is not a ustar or GNU header`);
  }
  if (message.startsWith("Invalid tar header: pax path"))
    return corruptTar("a pax extended header is malformed");
  if (message === "Invalid header") {
    return corruptTar(`the header after ${at.entries} entries has no valid size`);
  }
  if (message === "Header exceeds max size") {
    return corruptTar(`a metadata entry is larger than ${MAX_METADATA_BYTES} bytes`);
  }
  if (message === "Unexpected end of data") {
    const what =
      at.written < at.lastEnd && at.lastPath !== undefined
        ? `the entry ${JSON.stringify(at.lastPath.slice(0, 200))}`
        : "a header";
    return corruptTar(`it ends inside ${what} (truncated?)`);
  }
  return error;
}

/** An entry as the parser announced it, with its callback to go on to the next one. */
interface AnnouncedEntry {
  header: Header;
  stream: ExtractEvents["entry"][1];
  next: () => void;
}

/**
 * The entries of a tar stream, in order (ustar, GNU long names, pax `path`
 * and `size`). Throws `invalid_argument` for a header whose checksum does not
 * match, a size that is not a number, or a stream that ends before its
 * end-of-archive block; a failure of `source` itself is thrown as it is.
 */
export async function* readTar(source: BytePieces): AsyncGenerator<TarEntry> {
  const parser = extract();
  const progress: TarProgress = { entries: 0, written: 0, lastEnd: 0, lastPath: undefined };
  const announced: AnnouncedEntry[] = [];
  let failure: unknown;
  let finished = false;
  let stopped = false;
  let current: AnnouncedEntry["stream"] | undefined;
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
    for (const entry of announced) entry.stream.destroy(reason);
    notify();
    interruptWrite?.();
  };

  parser.on("entry", (header, stream, next) => {
    announced.push({ header, stream, next: () => next() });
    notify();
  });
  parser.on("error", (error) => fail(tarFailure(error, progress)));
  parser.on("finish", () => {
    finished = true;
    notify();
  });

  /** Hands the archive to the parser one piece at a time, waiting while it holds enough. */
  const pump = async () => {
    const pieces = iteratorOf(source);
    try {
      for (;;) {
        const next = await pieces.next();
        if (stopped || failure !== undefined) {
          if (!next.done) await pieces.return?.();
          break;
        }
        if (next.done) {
          parser.end(null); // no last piece
          break;
        }
        if (next.value.byteLength === 0) continue;
        progress.written += next.value.byteLength;
        if (!parser.write(bufferOf(next.value))) {
          await new Promise<void>((resolve) => {
            interruptWrite = resolve;
            parser.once("drain", resolve);
          });
          interruptWrite = undefined;
        }
      }
    } catch (error) {
      if (!stopped) {
        fail(error);
        parser.destroy(error instanceof Error ? error : undefined);
      }
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
      const entry = announced.shift();
      if (!entry) break;
      const { header, stream } = entry;
      checkPax(header.pax);
      const type = entryTypeOf(header.type);
      const size = header.size;
      progress.entries++;
      progress.lastPath = header.name;
      progress.lastEnd =
        stream.offset + TAR_BLOCK_BYTES + (header.type === "directory" ? 0 : size + paddingOf(size));
      current = stream;
      let iterator: AsyncIterator<Uint8Array> | undefined;
      const nextPiece = async (): Promise<IteratorResult<Uint8Array>> => {
        iterator ??= stream[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
        try {
          const result = await iterator.next();
          if (result.done && failure !== undefined) throw failure;
          return result;
        } catch (error) {
          throw failure ?? tarFailure(error, progress);
        }
      };
      // No `return`: an entry left early is skipped below, not torn down.
      const body: AsyncIterable<Uint8Array> = { [Symbol.asyncIterator]: () => ({ next: nextPiece }) };
      yield { path: header.name, type, size, body };
      while (!(await nextPiece()).done) {
        // skip what was left unread
      }
      current = undefined;
      entry.next();
    }
    if (progress.written < progress.lastEnd + TAR_BLOCK_BYTES) {
      throw corruptTar("it ends without an end-of-archive block (truncated?)");
    }
  } finally {
    stopped = true;
    interruptWrite?.();
    current?.destroy();
    for (const entry of announced) entry.stream.destroy();
    parser.destroy();
    // The pump ends at its next piece; it never throws.
    void pumping;
  }
}
