/**
 * Staging of uploaded bytes in the store (staged_file_chunks), so that any
 * replica can load them: the bytes are written chunk by chunk as they arrive,
 * with their SHA-256 (the file id) and size computed on the way, and read back
 * chunk by chunk. At most one chunk is held in memory either way. The files
 * of an archive are staged the same way, one upload each, as the archive
 * streams ({@link stageArchive}).
 *
 * @example
 * const staged = await stageUpload(db, part.body, { maxBytes: config.uploadMaxBytes });
 * for await (const bytes of readStagedFile(db, staged.uploadId)) parser.write(bytes);
 */
import { createHash, randomUUID } from "node:crypto";
import { DrayError } from "@dray/common";
import { and, asc, eq, gt, inArray } from "drizzle-orm";
import type { Db } from "../store/db.js";
import { stagedFileChunks } from "../store/schema.js";
import type { ArchiveFile } from "./archive-entries.js";

/** Bytes per staged chunk unless told otherwise: 1 MiB. */
export const DEFAULT_CHUNK_BYTES = 1024 * 1024;

/** Bytes of the file's start kept in {@link StagedUpload.head} (enough for any magic number). */
export const HEAD_BYTES = 16;

/** The name of the setting that bounds an upload's size. */
export const UPLOAD_LIMIT_SETTING = "DRAY_UPLOAD_MAX_BYTES";

/** Options of {@link stageUpload}. */
export interface StageUploadOptions {
  /** Largest accepted file; past it the staged bytes are deleted and `UploadTooLargeError` is thrown. */
  maxBytes: number;
  /** Bytes per stored chunk. @default 1 MiB */
  chunkBytes?: number;
}

/** What {@link stageUpload} stored. */
export interface StagedUpload {
  /** Key of the chunks in staged_file_chunks. */
  uploadId: string;
  /** SHA-256 of the bytes, lower-case hex. */
  fileId: string;
  sizeBytes: number;
  chunks: number;
  /** The first {@link HEAD_BYTES} bytes (fewer for a shorter file), e.g. to spot gzip. */
  head: Uint8Array;
}

/**
 * Thrown when an upload is larger than its limit: `invalid_argument`, which
 * the upload route answers with HTTP 413.
 */
export class UploadTooLargeError extends DrayError {
  /** @param subject what is too large, e.g. `the file is` (the default) or `the archive's files together are` */
  constructor(
    readonly limitBytes: number,
    subject = "the file is",
  ) {
    super(
      "invalid_argument",
      `${subject} larger than the upload limit of ${formatBytes(limitBytes)} (${limitBytes} bytes); ` +
        `the limit is the control plane's ${UPLOAD_LIMIT_SETTING} setting`,
      { details: { limitBytes, setting: UPLOAD_LIMIT_SETTING } },
    );
  }
}

/** True for the error {@link stageUpload} throws past its limit. */
export function isUploadTooLarge(error: unknown): error is UploadTooLargeError {
  return error instanceof UploadTooLargeError;
}

/** A byte count for people: `5 GiB`, `64 KiB`, `1.5 MiB`, `17 bytes`. */
export function formatBytes(bytes: number): string {
  const units = ["GiB", "MiB", "KiB"];
  for (let i = 0; i < units.length; i++) {
    const size = 1024 ** (units.length - i);
    if (bytes >= size) {
      const value = bytes / size;
      return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[i]}`;
    }
  }
  return `${bytes} bytes`;
}

/** The pieces of a web ReadableStream, released when the caller stops early. */
async function* piecesOfStream(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

/** What {@link stageUpload} reads: a web ReadableStream, or an (async) iterable of byte pieces. */
export type ByteSource = AsyncIterable<Uint8Array> | Iterable<Uint8Array> | ReadableStream<Uint8Array>;

/** An iterable (for `for await`) over a web ReadableStream or any iterable of byte pieces. */
export function bytesOf(source: ByteSource): AsyncIterable<Uint8Array> | Iterable<Uint8Array> {
  if (Symbol.asyncIterator in source) return source as AsyncIterable<Uint8Array>;
  if (Symbol.iterator in source) return source as Iterable<Uint8Array>;
  return piecesOfStream(source as ReadableStream<Uint8Array>);
}

/**
 * Streams `source` into staged_file_chunks under a new upload id, hashing and
 * counting as it goes. Past `maxBytes` it deletes what it staged and throws
 * {@link UploadTooLargeError}; on any other failure (the source breaking off,
 * the store) it deletes what it staged and rethrows.
 */
export async function stageUpload(
  db: Db,
  source: ByteSource,
  options: StageUploadOptions,
): Promise<StagedUpload> {
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1)
    throw new RangeError("chunkBytes must be a positive integer");
  const uploadId = randomUUID();
  const hash = createHash("sha256");
  const head = Buffer.alloc(HEAD_BYTES);
  let headLength = 0;
  let size = 0;
  let seq = 0;
  let chunk = Buffer.allocUnsafe(chunkBytes);
  let filled = 0;
  const flush = async () => {
    if (filled === 0) return;
    await db.insert(stagedFileChunks).values({ uploadId, seq, data: chunk.subarray(0, filled) });
    seq++;
    // A new buffer: the one just written may still be referenced by the driver.
    chunk = Buffer.allocUnsafe(chunkBytes);
    filled = 0;
  };
  try {
    for await (const piece of bytesOf(source)) {
      if (piece.byteLength === 0) continue;
      size += piece.byteLength;
      if (size > options.maxBytes) throw new UploadTooLargeError(options.maxBytes);
      hash.update(piece);
      if (headLength < HEAD_BYTES) {
        const take = Math.min(HEAD_BYTES - headLength, piece.byteLength);
        head.set(piece.subarray(0, take), headLength);
        headLength += take;
      }
      let at = 0;
      while (at < piece.byteLength) {
        const take = Math.min(chunkBytes - filled, piece.byteLength - at);
        chunk.set(piece.subarray(at, at + take), filled);
        filled += take;
        at += take;
        if (filled === chunkBytes) await flush();
      }
    }
    await flush();
  } catch (error) {
    // The original error is the one to report; chunks left behind are purged as orphans later.
    await deleteStaged(db, uploadId).catch(() => {});
    throw error;
  }
  return {
    uploadId,
    fileId: hash.digest("hex"),
    sizeBytes: size,
    chunks: seq,
    head: new Uint8Array(head.subarray(0, headLength)),
  };
}

/**
 * The staged bytes of an upload, chunk by chunk in order, one chunk in memory
 * at a time (each read asks for the chunk after the last one read). Yields
 * nothing for an unknown or purged upload.
 */
export async function* readStagedFile(db: Db, uploadId: string): AsyncGenerator<Uint8Array> {
  let after = -1;
  for (;;) {
    const [row] = await db
      .select({ seq: stagedFileChunks.seq, data: stagedFileChunks.data })
      .from(stagedFileChunks)
      .where(and(eq(stagedFileChunks.uploadId, uploadId), gt(stagedFileChunks.seq, after)))
      .orderBy(asc(stagedFileChunks.seq))
      .limit(1);
    if (!row) return;
    after = row.seq;
    yield new Uint8Array(row.data.buffer, row.data.byteOffset, row.data.byteLength);
  }
}

/** Deletes an upload's staged chunks (nothing for an unknown upload); returns how many were deleted. */
export async function deleteStaged(db: Pick<Db, "delete">, uploadId: string): Promise<number> {
  const deleted = await db
    .delete(stagedFileChunks)
    .where(eq(stagedFileChunks.uploadId, uploadId))
    .returning({ seq: stagedFileChunks.seq });
  return deleted.length;
}

/** Deletes the staged chunks of several uploads at once; returns how many chunks were deleted. */
export async function deleteStagedMany(
  db: Pick<Db, "delete">,
  uploadIds: readonly string[],
): Promise<number> {
  if (uploadIds.length === 0) return 0;
  const deleted = await db
    .delete(stagedFileChunks)
    .where(inArray(stagedFileChunks.uploadId, [...uploadIds]))
    .returning({ seq: stagedFileChunks.seq });
  return deleted.length;
}

/**
 * The pieces of `source`, throwing {@link UploadTooLargeError} (about
 * `subject`) as soon as more than `maxBytes` came through: e.g. the bytes of
 * an upload as sent, before an archive among them is unpacked.
 */
export async function* limitBytes(
  source: ByteSource,
  maxBytes: number,
  subject = "the file is",
): AsyncGenerator<Uint8Array> {
  let size = 0;
  for await (const piece of bytesOf(source)) {
    size += piece.byteLength;
    if (size > maxBytes) throw new UploadTooLargeError(maxBytes, subject);
    yield piece;
  }
}

/** One file of an archive, staged. */
export interface StagedArchiveFile {
  /** Its path inside the archive (a label: never written to disk). */
  label: string;
  staged: StagedUpload;
}

/**
 * Stages the files of an archive one after another as they stream (each its
 * own upload id and SHA-256), the files together bounded by `maxBytes`
 * (past it {@link UploadTooLargeError}). On any failure, a damaged archive
 * included, it deletes every file it staged and rethrows: nothing of the
 * archive stays behind.
 */
export async function stageArchive(
  db: Db,
  files: AsyncIterable<ArchiveFile>,
  options: StageUploadOptions,
): Promise<StagedArchiveFile[]> {
  const staged: StagedArchiveFile[] = [];
  let used = 0;
  try {
    for await (const file of files) {
      let one: StagedUpload;
      try {
        one = await stageUpload(db, file.body, { ...options, maxBytes: options.maxBytes - used });
      } catch (error) {
        if (isUploadTooLarge(error))
          throw new UploadTooLargeError(options.maxBytes, "the archive's files together are");
        throw error;
      }
      used += one.sizeBytes;
      staged.push({ label: file.label, staged: one });
    }
  } catch (error) {
    await deleteStagedMany(
      db,
      staged.map((s) => s.staged.uploadId),
    ).catch(() => {
      // The original error is the one to report; chunks left behind are purged as orphans later.
    });
    throw error;
  }
  return staged;
}
