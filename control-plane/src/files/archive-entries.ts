/**
 * Archives among uploads: an upload is recognised by its first bytes as a zip
 * (refused), a tar or a gzip-compressed tar (`ustar` magic at offset 257 of
 * the first header, after gunzip, with a valid header checksum), or a single
 * file (anything else, gzip or not). A tar is read as a stream of entries,
 * each with its bytes as an async iterable, so neither the archive nor an
 * entry is ever held whole: the reader keeps one piece of the input plus less
 * than a header block. Entry paths are labels only (never written to disk);
 * a path that leaves the archive (`..`, absolute) refuses the archive.
 *
 * @example
 * const sniffed = await sniffUpload(part.body);
 * if (sniffed.kind === "tar") {
 *   for await (const file of archiveFiles(sniffed.gzip ? gunzipPieces(sniffed.bytes) : sniffed.bytes)) {
 *     await stageUpload(db, file.body, { maxBytes });
 *   }
 * }
 */
import { pipeline, Readable } from "node:stream";
import { constants, createGunzip, gunzipSync } from "node:zlib";
import { DrayError } from "@dray/common";

/** Bytes of a tar block (headers and data padding). */
export const TAR_BLOCK_BYTES = 512;

/** Most files (loadable entries) one archive may hold. */
export const MAX_ARCHIVE_FILES = 1_000;

/** The answer to a zip upload. */
export const ZIP_REFUSAL = "zip archives are not supported: upload the files, or a .tar.gz of them";

/** Compressed bytes a gzip upload is read ahead, at most, to see whether it holds a tar. */
const GZIP_SNIFF_MAX_BYTES = 64 * 1024;
/** Compressed bytes added per attempt to decompress the head of a gzip upload. */
const GZIP_SNIFF_STEP_BYTES = 512;
/** Longest GNU long name (`L` entry), in bytes. */
const MAX_LONG_NAME_BYTES = 64 * 1024;
/** Largest pax extended header (`x`/`g` entry), in bytes. */
const MAX_PAX_HEADER_BYTES = 1024 * 1024;
/** Longest entry label, in characters. */
const MAX_LABEL_LENGTH = 255;

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

/** The kind of a tar entry. */
export type TarEntryType = "file" | "directory" | "symlink" | "hardlink" | "other";

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

/** An entry of an archive to load: a regular, visible, non-empty file. */
export interface ArchiveFile {
  /** Its path inside the archive, normalised (no `.` segments, `/` separated, control characters dropped). */
  label: string;
  size: number;
  /** Its bytes; read them before asking for the next file. */
  body: AsyncIterable<Uint8Array>;
}

/** An `invalid_argument` error about an archive that cannot be read. */
function corrupt(reason: string): DrayError {
  return new DrayError("invalid_argument", `the archive is not a valid tar: ${reason}`);
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

/**
 * The number of a tar numeric field: octal ASCII (leading spaces, ending at a
 * space or NUL) or GNU base-256 (high bit of the first byte set, positive
 * only). Undefined when the field holds anything else.
 */
export function tarNumber(field: Uint8Array): number | undefined {
  if (field.length === 0) return 0;
  if ((field[0]! & 0x80) !== 0) {
    if ((field[0]! & 0x40) !== 0) return undefined; // negative
    let value = field[0]! & 0x3f;
    for (let i = 1; i < field.length; i++) {
      value = value * 256 + field[i]!;
      if (value > Number.MAX_SAFE_INTEGER) return undefined;
    }
    return value;
  }
  let at = 0;
  while (at < field.length && (field[at] === 0x20 || field[at] === 0)) at++;
  let value = 0;
  let digits = 0;
  for (; at < field.length; at++) {
    const c = field[at]!;
    if (c === 0x20 || c === 0) break;
    if (c < 0x30 || c > 0x37) return undefined;
    value = value * 8 + (c - 0x30);
    digits++;
  }
  for (; at < field.length; at++) {
    if (field[at] !== 0x20 && field[at] !== 0) return undefined;
  }
  return digits === 0 ? 0 : value;
}

/** True when a header block's checksum field matches its bytes (unsigned or, for old writers, signed sum). */
function checksumMatches(block: Uint8Array): boolean {
  const stored = tarNumber(block.subarray(148, 156));
  if (stored === undefined) return false;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < TAR_BLOCK_BYTES; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += b;
    signed += b >= 128 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

/** True when the 6 bytes at 257 are `ustar\0` (POSIX) or `ustar ` (GNU). */
function hasUstarMagic(block: Uint8Array): boolean {
  const magic = [0x75, 0x73, 0x74, 0x61, 0x72];
  for (let i = 0; i < magic.length; i++) if (block[257 + i] !== magic[i]) return false;
  return block[262] === 0 || block[262] === 0x20;
}

/**
 * True for the first block of a tar: at least 512 bytes, `ustar` magic at
 * offset 257 and a header checksum that matches (a CSV line that happens to
 * hold `ustar` there is not taken for a tar).
 */
export function isTarHeader(block: Uint8Array): boolean {
  return block.length >= TAR_BLOCK_BYTES && hasUstarMagic(block) && checksumMatches(block);
}

/** True when the first bytes are gzip's magic. */
function gzipMagic(head: Uint8Array): boolean {
  return head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
}

/** The async iterator of an (async) iterable of byte pieces. */
function iteratorOf(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncIterator<Uint8Array> {
  if (Symbol.asyncIterator in source) return source[Symbol.asyncIterator]();
  const sync = source[Symbol.iterator]();
  return { next: async () => sync.next() };
}

/** A Buffer over a piece's bytes (no copy). */
function bufferOf(piece: Uint8Array): Buffer {
  return Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
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
export async function sniffUpload(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
): Promise<SniffedUpload> {
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

/** A pull reader over byte pieces with one pending buffer (less than a block plus one piece). */
class BlockReader {
  private buffer: Buffer = Buffer.alloc(0);
  private ended = false;

  constructor(private readonly source: AsyncIterator<Uint8Array>) {}

  /** Bytes buffered. */
  get buffered(): number {
    return this.buffer.length;
  }

  /** Appends the next non-empty piece; false at the end. */
  private async more(): Promise<boolean> {
    while (!this.ended) {
      const next = await this.source.next();
      if (next.done) {
        this.ended = true;
        return false;
      }
      if (next.value.byteLength === 0) continue;
      const piece = bufferOf(next.value);
      this.buffer = this.buffer.length === 0 ? piece : Buffer.concat([this.buffer, piece]);
      return true;
    }
    return false;
  }

  /** True once `bytes` bytes are buffered; false when the input ends first. */
  async want(bytes: number): Promise<boolean> {
    while (this.buffer.length < bytes) if (!(await this.more())) return false;
    return true;
  }

  /** Exactly `bytes` bytes (a header or small metadata); throws when the input ends first. */
  async exact(bytes: number, what: string): Promise<Buffer> {
    if (!(await this.want(bytes))) throw corrupt(`it ends inside ${what} (truncated?)`);
    const out = this.buffer.subarray(0, bytes);
    this.buffer = this.buffer.subarray(bytes);
    return out;
  }

  /** The next 1 to `bytes` bytes, as buffered; throws when the input ends first. */
  async upTo(bytes: number, what: string): Promise<Buffer> {
    if (this.buffer.length === 0 && !(await this.more()))
      throw corrupt(`it ends inside ${what} (truncated?)`);
    const take = Math.min(bytes, this.buffer.length);
    const out = this.buffer.subarray(0, take);
    this.buffer = this.buffer.subarray(take);
    return out;
  }

  /** Skips `bytes` bytes; throws when the input ends first. */
  async skip(bytes: number, what: string): Promise<void> {
    let left = bytes;
    while (left > 0) left -= (await this.upTo(left, what)).length;
  }

  /** Reads and drops the rest of the input (a gzip stream checks its trailer on the way). */
  async drain(): Promise<void> {
    this.buffer = Buffer.alloc(0);
    while (await this.more()) this.buffer = Buffer.alloc(0);
  }
}

/** Bytes of padding after `size` bytes of data, up to the next block. */
function paddingOf(size: number): number {
  const rest = size % TAR_BLOCK_BYTES;
  return rest === 0 ? 0 : TAR_BLOCK_BYTES - rest;
}

/** The UTF-8 text of a field up to its first NUL. */
function fieldText(field: Uint8Array): string {
  const end = field.indexOf(0);
  return bufferOf(field.subarray(0, end < 0 ? field.length : end)).toString("utf8");
}

/** True for a block of zeros (the end-of-archive marker). */
function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

/** The records of a pax extended header (`<length> <key>=<value>\n` each), parsed in one pass. */
export function parsePaxRecords(bytes: Uint8Array): Map<string, string> {
  const records = new Map<string, string>();
  const text = bufferOf(bytes);
  let at = 0;
  while (at < text.length) {
    if (text[at] === 0) break; // padding some writers leave
    let length = 0;
    let i = at;
    while (i < text.length && text[i]! >= 0x30 && text[i]! <= 0x39 && length <= text.length) {
      length = length * 10 + (text[i]! - 0x30);
      i++;
    }
    const end = at + length;
    if (i === at || text[i] !== 0x20 || end <= i + 1 || end > text.length || text[end - 1] !== 0x0a) {
      throw corrupt("a pax extended header is malformed");
    }
    const record = text.subarray(i + 1, end - 1);
    const equals = record.indexOf(0x3d);
    if (equals <= 0) throw corrupt("a pax extended header is malformed");
    records.set(record.subarray(0, equals).toString("utf8"), record.subarray(equals + 1).toString("utf8"));
    at = end;
  }
  return records;
}

/** A pax `size` value: decimal digits only. */
function paxSize(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (value.length === 0 || value.length > 16) throw corrupt("a pax size is not a number");
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x30 || c > 0x39) throw corrupt("a pax size is not a number");
  }
  return Number(value);
}

/** The kind of an entry from its type flag. */
function entryTypeOf(flag: number): TarEntryType {
  if (flag === 0 || flag === 0x30 || flag === 0x37) return "file"; // NUL, '0', '7' (contiguous)
  if (flag === 0x35) return "directory";
  if (flag === 0x32) return "symlink";
  if (flag === 0x31) return "hardlink";
  return "other";
}

/** True for the type flags POSIX stores no data for: '1' to '6' (links, devices, directories, FIFOs). */
function hasNoData(flag: number): boolean {
  return flag >= 0x31 && flag <= 0x36;
}

/** The path of a header's own fields: the ustar prefix (POSIX magic only), `/`, the name. */
function headerPath(header: Uint8Array): string {
  const name = fieldText(header.subarray(0, 100));
  const posix = hasUstarMagic(header) && header[262] === 0;
  const prefix = posix ? fieldText(header.subarray(345, 500)) : "";
  return prefix.length > 0 ? `${prefix}/${name}` : name;
}

/**
 * The entries of a tar stream, in order (ustar, GNU long names, pax `path`
 * and `size`; global pax headers are skipped). Throws `invalid_argument` for
 * a header whose checksum does not match, a size that is not a number, or a
 * stream that ends before its end-of-archive block. After that block the rest
 * of the input is read and dropped.
 */
export async function* readTar(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
): AsyncGenerator<TarEntry> {
  const reader = new BlockReader(iteratorOf(source));
  let longName: string | undefined;
  let pax: Map<string, string> | undefined;
  for (let entries = 0; ; ) {
    if (!(await reader.want(TAR_BLOCK_BYTES))) {
      throw corrupt(
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
    if (!checksumMatches(header)) throw corrupt(`the header after ${entries} entries is damaged (checksum)`);
    const flag = header[156]!;
    const ownSize = tarNumber(header.subarray(124, 136));
    if (ownSize === undefined) throw corrupt(`the header after ${entries} entries has no valid size`);
    if (flag === 0x4c /* L */ || flag === 0x78 /* x */ || flag === 0x67 /* g */ || flag === 0x4b /* K */) {
      const limit = flag === 0x4c ? MAX_LONG_NAME_BYTES : MAX_PAX_HEADER_BYTES;
      if (ownSize > limit) throw corrupt(`a metadata entry is larger than ${limit} bytes`);
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

/** True for a character kept in a label (no C0 controls, no DEL). */
function isLabelChar(code: number): boolean {
  return code >= 32 && code !== 127;
}

/**
 * An entry path as a label: `/`-separated (a `\` separates too), `.` and
 * empty segments dropped, control characters dropped, at most 255
 * characters; `hidden` when a segment starts with `.` (`.DS_Store`,
 * `._orders.csv`) or is `__MACOSX`. Throws `invalid_argument` for a path that
 * leaves the archive (a `..` segment, or absolute).
 *
 * @example
 * entryLabel("./data/orders.csv") // { label: "data/orders.csv", hidden: false }
 * entryLabel("__MACOSX/data/._orders.csv").hidden // true
 */
export function entryLabel(path: string): { label: string; hidden: boolean } {
  const shown = JSON.stringify(path.length > 200 ? `${path.slice(0, 200)}…` : path);
  if (path.startsWith("/") || path.startsWith("\\")) {
    throw new DrayError("invalid_argument", `the archive's entry ${shown} has an absolute path: refused`);
  }
  const segments: string[] = [];
  let hidden = false;
  let segment = "";
  const close = () => {
    if (segment === ".." || segment.trim() === "..") {
      throw new DrayError(
        "invalid_argument",
        `the archive's entry ${shown} has a path that leaves the archive (..): refused`,
      );
    }
    if (segment.length > 0 && segment !== ".") {
      if (segment.startsWith(".") || segment === "__MACOSX") hidden = true;
      segments.push(segment);
    }
    segment = "";
  };
  for (const ch of path) {
    if (ch === "/" || ch === "\\") close();
    else if (isLabelChar(ch.codePointAt(0)!)) segment += ch;
  }
  close();
  const label = Array.from(segments.join("/")).slice(0, MAX_LABEL_LENGTH).join("");
  return { label: label.length > 0 ? label : "entry", hidden };
}

/** Options of {@link archiveFiles}. */
export interface ArchiveFilesOptions {
  /** Most files; past it `invalid_argument` is thrown. @default 1,000 */
  maxFiles?: number;
}

/**
 * The files of a tar to load: regular, non-empty entries whose path is not
 * hidden or metadata (see {@link entryLabel}); directories, links, devices,
 * empty and hidden files are skipped. Throws `invalid_argument` past
 * `maxFiles` files, for a path that leaves the archive, for a damaged tar,
 * and at the end when the archive held no file to load.
 */
export async function* archiveFiles(
  tar: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: ArchiveFilesOptions = {},
): AsyncGenerator<ArchiveFile> {
  const maxFiles = options.maxFiles ?? MAX_ARCHIVE_FILES;
  let files = 0;
  for await (const entry of readTar(tar)) {
    if (entry.type !== "file") continue;
    const { label, hidden } = entryLabel(entry.path);
    if (hidden || entry.size === 0) continue;
    files++;
    if (files > maxFiles) {
      throw new DrayError(
        "invalid_argument",
        `the archive holds more than ${maxFiles} files: upload it in smaller archives`,
        { details: { maxFiles } },
      );
    }
    yield { label, size: entry.size, body: entry.body };
  }
  if (files === 0) {
    throw new DrayError(
      "invalid_argument",
      "the archive holds no file to load (directories, links, hidden and empty files are skipped)",
    );
  }
}
