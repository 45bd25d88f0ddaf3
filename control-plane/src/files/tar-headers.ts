/**
 * Tar headers, pure: one 512-byte block is checked (ustar magic, checksum)
 * and read (numeric fields in octal or GNU base-256, the path from the ustar
 * prefix and name, the entry type); pax extended header records and sizes
 * are parsed. Nothing here reads a stream: see `tar-stream-reader.ts`.
 */
import { DrayError } from "@dray/common";
import { bufferOf } from "./byte-pieces.js";

/** Bytes of a tar block (headers and data padding). */
export const TAR_BLOCK_BYTES = 512;

/** The kind of a tar entry. */
export type TarEntryType = "file" | "directory" | "symlink" | "hardlink" | "other";

/** An `invalid_argument` error about an archive that cannot be read, with the reason. */
export function corruptTar(reason: string): DrayError {
  return new DrayError("invalid_argument", `the archive is not a valid tar: ${reason}`);
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
export function checksumMatches(block: Uint8Array): boolean {
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

/** True for a block of zeros (the end-of-archive marker). */
export function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

/** Bytes of padding after `size` bytes of data, up to the next block. */
export function paddingOf(size: number): number {
  const rest = size % TAR_BLOCK_BYTES;
  return rest === 0 ? 0 : TAR_BLOCK_BYTES - rest;
}

/** The UTF-8 text of a field up to its first NUL. */
export function fieldText(field: Uint8Array): string {
  const end = field.indexOf(0);
  return bufferOf(field.subarray(0, end < 0 ? field.length : end)).toString("utf8");
}

/**
 * The records of a pax extended header (`<length> <key>=<value>\n` each),
 * parsed in one pass. Throws `invalid_argument` for a malformed record.
 */
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
      throw corruptTar("a pax extended header is malformed");
    }
    const record = text.subarray(i + 1, end - 1);
    const equals = record.indexOf(0x3d);
    if (equals <= 0) throw corruptTar("a pax extended header is malformed");
    records.set(record.subarray(0, equals).toString("utf8"), record.subarray(equals + 1).toString("utf8"));
    at = end;
  }
  return records;
}

/**
 * A pax `size` value: decimal digits only (undefined when absent). Throws
 * `invalid_argument` for anything else.
 */
export function paxSize(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (value.length === 0 || value.length > 16) throw corruptTar("a pax size is not a number");
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x30 || c > 0x39) throw corruptTar("a pax size is not a number");
  }
  return Number(value);
}

/** The kind of an entry from its type flag. */
export function entryTypeOf(flag: number): TarEntryType {
  if (flag === 0 || flag === 0x30 || flag === 0x37) return "file"; // NUL, '0', '7' (contiguous)
  if (flag === 0x35) return "directory";
  if (flag === 0x32) return "symlink";
  if (flag === 0x31) return "hardlink";
  return "other";
}

/** True for the type flags POSIX stores no data for: '1' to '6' (links, devices, directories, FIFOs). */
export function hasNoData(flag: number): boolean {
  return flag >= 0x31 && flag <= 0x36;
}

/** The path of a header's own fields: the ustar prefix (POSIX magic only), `/`, the name. */
export function headerPath(header: Uint8Array): string {
  const name = fieldText(header.subarray(0, 100));
  const posix = hasUstarMagic(header) && header[262] === 0;
  const prefix = posix ? fieldText(header.subarray(345, 500)) : "";
  return prefix.length > 0 ? `${prefix}/${name}` : name;
}
