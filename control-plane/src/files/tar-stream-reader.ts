/**
 * The streaming tar reader: a tar is read as a stream of entries, each with
 * its bytes as an async iterable, so neither the archive nor an entry is ever
 * held whole. Handles ustar headers and checksums, GNU long names (`L`), pax
 * extended headers (`x`; global `g` and GNU `K` are skipped) and the padding
 * after each entry's data. Header parsing lives in `tar-headers.ts`.
 *
 * @example
 * for await (const entry of readTar(bytes)) {
 *   if (entry.type === "file") for await (const piece of entry.body) consume(piece);
 * }
 */
import { type BytePieces, iteratorOf } from "./byte-pieces.js";
import { BlockReader } from "./tar-block-reader.js";
import {
  checksumMatches,
  corruptTar,
  entryTypeOf,
  fieldText,
  hasNoData,
  headerPath,
  isZeroBlock,
  paddingOf,
  parsePaxRecords,
  paxSize,
  TAR_BLOCK_BYTES,
  type TarEntryType,
  tarNumber,
} from "./tar-headers.js";

/** Longest GNU long name (`L` entry), in bytes. */
const MAX_LONG_NAME_BYTES = 64 * 1024;
/** Largest pax extended header (`x`/`g` entry), in bytes. */
const MAX_PAX_HEADER_BYTES = 1024 * 1024;

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

/**
 * The entries of a tar stream, in order (ustar, GNU long names, pax `path`
 * and `size`; global pax headers are skipped). Throws `invalid_argument` for
 * a header whose checksum does not match, a size that is not a number, or a
 * stream that ends before its end-of-archive block. After that block the rest
 * of the input is read and dropped.
 */
export async function* readTar(source: BytePieces): AsyncGenerator<TarEntry> {
  const reader = new BlockReader(iteratorOf(source));
  let longName: string | undefined;
  let pax: Map<string, string> | undefined;
  for (let entries = 0; ; ) {
    if (!(await reader.want(TAR_BLOCK_BYTES))) {
      throw corruptTar(
        reader.buffered === 0
          ? "it ends without an end-of-archive block (truncated?)"
          : "it ends inside a header (truncated?)",
      );
    }
    const header = await reader.exact(TAR_BLOCK_BYTES, "a header");
    if (isZeroBlock(header)) {
      await reader.drain();
      return;
    }
    if (!checksumMatches(header))
      throw corruptTar(`the header after ${entries} entries is damaged (checksum)`);
    const flag = header[156]!;
    const ownSize = tarNumber(header.subarray(124, 136));
    if (ownSize === undefined) throw corruptTar(`the header after ${entries} entries has no valid size`);
    if (flag === 0x4c /* L */ || flag === 0x78 /* x */ || flag === 0x67 /* g */ || flag === 0x4b /* K */) {
      const limit = flag === 0x4c ? MAX_LONG_NAME_BYTES : MAX_PAX_HEADER_BYTES;
      if (ownSize > limit) throw corruptTar(`a metadata entry is larger than ${limit} bytes`);
      const data = await reader.exact(ownSize, "a metadata entry");
      await reader.skip(paddingOf(ownSize), "a metadata entry");
      if (flag === 0x4c) longName = fieldText(data);
      else if (flag === 0x78) pax = parsePaxRecords(data);
      continue;
    }
    const path = pax?.get("path") ?? longName ?? headerPath(header);
    const size = hasNoData(flag) ? 0 : (paxSize(pax?.get("size")) ?? ownSize);
    longName = undefined;
    pax = undefined;
    entries++;
    let remaining = size;
    const what = `the entry ${JSON.stringify(path.slice(0, 200))}`;
    const body: AsyncIterable<Uint8Array> = {
      [Symbol.asyncIterator]: () => ({
        next: async (): Promise<IteratorResult<Uint8Array>> => {
          if (remaining === 0) return { done: true, value: undefined };
          const piece = await reader.upTo(remaining, what);
          remaining -= piece.length;
          return { done: false, value: piece };
        },
      }),
    };
    yield { path, type: entryTypeOf(flag), size, body };
    await reader.skip(remaining + paddingOf(size), what);
    remaining = 0;
  }
}
