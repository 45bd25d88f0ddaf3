/**
 * Byte pieces: the small helpers Dray's upload readers share to walk an
 * (async) iterable of `Uint8Array` pieces without copying them.
 */

/** Bytes as they arrive: an async iterable of pieces (a request body) or a plain iterable (tests, buffers). */
export type BytePieces = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/** The async iterator of an (async) iterable of byte pieces. */
export function iteratorOf(source: BytePieces): AsyncIterator<Uint8Array> {
  if (Symbol.asyncIterator in source) return source[Symbol.asyncIterator]();
  const sync = source[Symbol.iterator]();
  return { next: async () => sync.next() };
}

/** A Buffer over a piece's bytes (no copy). */
export function bufferOf(piece: Uint8Array): Buffer {
  return Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
}
