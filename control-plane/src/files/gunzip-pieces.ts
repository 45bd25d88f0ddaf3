/**
 * Bounded gunzip of byte pieces: a gzip upload is decompressed as its pieces
 * are asked for (backpressure through a stream pipeline), so a decompression
 * bomb is never held whole. Invalid gzip answers `invalid_argument`; errors
 * of the source (such as the upload size limit) pass through unchanged.
 */
import { pipeline, Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { DrayError } from "@dray/common";

/** True for an error of node:zlib (its codes start with `Z_`). */
function isZlibError(error: unknown): error is Error & { code: string } {
  const code = (error as { code?: unknown } | null)?.code;
  return error instanceof Error && typeof code === "string" && code.startsWith("Z_");
}

/**
 * The decompressed bytes of a gzip stream, piece by piece (with backpressure:
 * the source is read as the pieces are asked for). A stream that is not valid
 * gzip, or breaks off, throws `invalid_argument`; an error of the source is
 * rethrown as is.
 */
export async function* gunzipPieces(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const gunzip = createGunzip();
  pipeline(Readable.from(source, { highWaterMark: 1 }), gunzip, () => {
    // Errors reach the reader below: pipeline destroys the gunzip stream with them.
  });
  try {
    for await (const piece of gunzip) yield piece as Buffer;
  } catch (error) {
    if (isZlibError(error))
      throw new DrayError("invalid_argument", `the archive is not valid gzip: ${error.message}`);
    throw error;
  } finally {
    gunzip.destroy();
  }
}
