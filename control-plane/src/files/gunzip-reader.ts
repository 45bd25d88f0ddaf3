/**
 * Gunzipping an uploaded file as it streams, with bounded memory (the stream's
 * buffers): corrupt or truncated gzip fails with `invalid_argument` ("the file
 * is not valid gzip: …", reason `invalid_gzip`). Garbage from a corrupt stream
 * often fails the parser first; the reader can then read on to the gzip error,
 * the one to report.
 */
import { pipeline, Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { DrayError, isDrayError } from "@dray/common";

/**
 * The gunzipped bytes of `input`, streaming; corrupt or truncated gzip throws
 * `invalid_argument`. Stopping an iteration early does not close the stream:
 * {@link GunzipReader.gzipErrorAfterDrain} can then read on to the end, and
 * {@link GunzipReader.close} ends it.
 *
 * @example
 * const gunzip = new GunzipReader(upload);
 * try {
 *   for await (const chunk of gunzip) read(chunk);
 * } finally {
 *   gunzip.close();
 * }
 */
export class GunzipReader implements AsyncIterable<Buffer> {
  private readonly gunzip = createGunzip();
  private readonly chunks: AsyncIterator<Buffer>;
  /** The gzip error once met (a read the parser no longer waited for may have met it). */
  private failure: DrayError | null = null;

  constructor(input: AsyncIterable<Uint8Array>) {
    pipeline(Readable.from(input, { objectMode: false }), this.gunzip, ignore);
    this.chunks = this.gunzip[Symbol.asyncIterator]();
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return {
      next: () => this.next(),
      return: async () => ({ done: true, value: undefined }),
    };
  }

  /**
   * Reads (and drops) the rest of the stream; the gzip error it ends with, or
   * `null`. Garbage from a corrupt gzip stream often fails the parser before
   * the gzip checks fail: the gzip error is the one to report then.
   */
  async gzipErrorAfterDrain(): Promise<DrayError | null> {
    try {
      while (!(await this.next()).done) {
        // dropped
      }
      return this.failure;
    } catch (error) {
      return isGzipError(error) ? error : this.failure;
    }
  }

  /** Ends the stream (and the input it reads). */
  close(): void {
    this.gunzip.destroy();
  }

  private async next(): Promise<IteratorResult<Buffer>> {
    try {
      return await this.chunks.next();
    } catch (error) {
      if (isZlibError(error)) {
        this.failure = new DrayError("invalid_argument", `the file is not valid gzip: ${error.message}`, {
          details: { reason: "invalid_gzip" },
        });
        throw this.failure;
      }
      throw error;
    }
  }
}

/**
 * True for the failures that garbage from a corrupt gzip stream can cause
 * before the gzip checks fail (text that is not UTF-8, an overlong line, CSV
 * that cannot be read): {@link GunzipReader.gzipErrorAfterDrain} then tells
 * whether the gzip error is the one to report.
 */
export function isGarbageFailure(error: unknown): boolean {
  if (!isDrayError(error)) return false;
  const reason = (error.details as { reason?: unknown } | undefined)?.reason;
  return (
    typeof reason === "string" &&
    (reason === "invalid_utf8" ||
      reason === "line_too_long" ||
      reason.startsWith("CSV_") ||
      reason === "INVALID_OPENING_QUOTE")
  );
}

function isGzipError(error: unknown): error is DrayError {
  return isDrayError(error) && (error.details as { reason?: unknown } | undefined)?.reason === "invalid_gzip";
}

function isZlibError(error: unknown): error is Error {
  const code = (error as { code?: unknown } | null)?.code;
  return error instanceof Error && typeof code === "string" && code.startsWith("Z_");
}

function ignore(): void {}
