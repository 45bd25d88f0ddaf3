/**
 * What an upload is, from its first bytes: a zip (refused), a tar or a
 * gzip-compressed tar (`ustar` magic at offset 257 of the first header, after
 * gunzip, with a valid header checksum), or a single file (anything else,
 * gzip or not). At most 512 bytes are read ahead (64 KiB of a gzip stream,
 * decompressed in bounded steps), and every byte is handed back.
 *
 * @example
 * const sniffed = await sniffUpload(part.body);
 * if (sniffed.kind === "zip") throw new DrayError("invalid_argument", ZIP_REFUSAL);
 */
import { constants, gunzipSync } from "node:zlib";
import { type BytePieces, bufferOf, iteratorOf } from "./byte-pieces.js";
import { isTarHeader, TAR_BLOCK_BYTES } from "./tar-headers.js";

/** The answer to a zip upload. */
export const ZIP_REFUSAL = "zip archives are not supported: upload the files, or a .tar.gz of them";

/** Compressed bytes a gzip upload is read ahead, at most, to see whether it holds a tar. */
const GZIP_SNIFF_MAX_BYTES = 64 * 1024;
/** Compressed bytes added per attempt to decompress the head of a gzip upload. */
const GZIP_SNIFF_STEP_BYTES = 512;

/** What an upload is, from its first bytes. */
export type UploadKind = "zip" | "tar" | "file";

/** An upload once recognised: its kind and all its bytes (those read to recognise it first). */
export interface SniffedUpload {
  kind: UploadKind;
  /** True when the bytes are gzip-compressed (a `.tar.gz`, or a single gzip file). */
  gzip: boolean;
  /** Every byte of the upload, from the first; iterate it once. */
  bytes: AsyncIterable<Uint8Array>;
}

/**
 * True for the first bytes of a zip archive (`PK\x03\x04`, or the empty and
 * spanned forms `PK\x05\x06`, `PK\x07\x08`).
 */
export function isZip(head: Uint8Array): boolean {
  if (head.length < 4 || head[0] !== 0x50 || head[1] !== 0x4b) return false;
  return (
    (head[2] === 3 && head[3] === 4) || (head[2] === 5 && head[3] === 6) || (head[2] === 7 && head[3] === 8)
  );
}

/** True when the first bytes are gzip's magic. */
function gzipMagic(head: Uint8Array): boolean {
  return head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
}

/**
 * Whether a gzip stream starts with a tar header: its head is decompressed in
 * steps of 512 compressed bytes (each step's output is bounded, so a
 * decompression bomb cannot blow up here) until 512 bytes come out, at most
 * {@link GZIP_SNIFF_MAX_BYTES} in. A gzip stream that cannot be decompressed
 * is not a tar (the loader reports it).
 */
function gzipHoldsTar(buffered: Buffer, ended: boolean, step: number): "tar" | "file" | "more" {
  const slice = buffered.subarray(0, step);
  let out: Buffer;
  try {
    out = gunzipSync(slice, { finishFlush: constants.Z_SYNC_FLUSH });
  } catch {
    return "file";
  }
  if (out.length >= TAR_BLOCK_BYTES) return isTarHeader(out) ? "tar" : "file";
  if ((ended && buffered.length <= step) || step >= GZIP_SNIFF_MAX_BYTES) return "file";
  return "more";
}

/**
 * Recognises an upload by its first bytes: a zip, a tar (plain or gzip) or a
 * single file. Reads ahead at most 512 bytes (64 KiB of a gzip stream), and
 * returns every byte, those read ahead included, in {@link SniffedUpload.bytes}.
 */
export async function sniffUpload(source: BytePieces): Promise<SniffedUpload> {
  const iterator = iteratorOf(source);
  let buffered: Buffer = Buffer.alloc(0);
  let ended = false;
  const fill = async (bytes: number) => {
    while (!ended && buffered.length < bytes) {
      const next = await iterator.next();
      if (next.done) {
        ended = true;
      } else if (next.value.byteLength > 0) {
        const piece = bufferOf(next.value);
        buffered = buffered.length === 0 ? piece : Buffer.concat([buffered, piece]);
      }
    }
  };
  await fill(TAR_BLOCK_BYTES);
  let kind: UploadKind = "file";
  const gzip = gzipMagic(buffered);
  if (isZip(buffered)) kind = "zip";
  else if (!gzip) kind = isTarHeader(buffered) ? "tar" : "file";
  else {
    for (let step = GZIP_SNIFF_STEP_BYTES; ; step += GZIP_SNIFF_STEP_BYTES) {
      await fill(step);
      const verdict = gzipHoldsTar(buffered, ended, step);
      if (verdict !== "more") {
        kind = verdict;
        break;
      }
    }
  }
  let head: Buffer | undefined = buffered.length > 0 ? buffered : undefined;
  const bytes: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]: () => ({
      next: async (): Promise<IteratorResult<Uint8Array>> => {
        if (head) {
          const value = head;
          head = undefined;
          return { done: false, value };
        }
        if (ended) return { done: true, value: undefined };
        const next = await iterator.next();
        if (next.done) ended = true;
        return next;
      },
    }),
  };
  return { kind, gzip, bytes };
}
