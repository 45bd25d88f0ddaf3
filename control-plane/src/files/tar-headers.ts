/**
 * Recognising a tar header, pure: one 512-byte block is checked for the
 * ustar magic and a matching header checksum (how `upload-sniff.ts` tells a
 * tar from a file). Reading a tar is `tar-stream-reader.ts`.
 */

/** Bytes of a tar block (headers and data padding). */
export const TAR_BLOCK_BYTES = 512;

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
