/**
 * The keyed pseudo-random function behind every deterministic transformer:
 * HMAC-SHA256(key, transformer + "\0" + value). Its output depends only on the
 * key, the transformer's name and the value, never on the column, the table or
 * the row order, so one value maps the same way in every table and every run.
 */
import { createHash, hash } from "node:crypto";
import { DrayError } from "@dray/common";
import {
  compress,
  finish,
  loadBlock,
  SHA256_PADDING,
  sha256,
  sha256Block,
  sha256Initial,
  writeDigest,
} from "./sha256.js";

/** The fewest key bytes accepted: a shorter key is a configuration mistake. */
export const MIN_KEY_BYTES = 16;

const BLOCK = 64;
const DIGEST = 32;

/** A keyed PRF; see {@link createPrf}. */
export interface Prf {
  /** The key's id (see {@link keyId}), safe to record and show. */
  readonly keyId: string;
  /**
   * HMAC-SHA256(key, transformer + "\0" + value), its first `n` bytes (32 by
   * default). For `n` > 32 the digest is extended in counter mode with
   * HMAC(key, "\u0001" + transformer + "\0" + value + "\0" + i), i = 1, 2, …
   * The returned buffer is the caller's own.
   */
  bytes(transformer: string, value: string, n?: number): Buffer;
  /** The first 4 bytes of {@link Prf.bytes}, big-endian, in [0, 2^32). */
  uint32(transformer: string, value: string): number;
  /** A float in [0, 1) with 53 bits from the digest. */
  float(transformer: string, value: string): number;
  /** An integer in [0, modulo) (bias below 2^-20 for modulo < 2^32). */
  index(transformer: string, value: string, modulo: number): number;
}

/**
 * The public id of a transform key: the first 16 hex characters of
 * SHA-256("dray-transform-key-id\0" + key). Executions record this, never the key.
 */
export function keyId(key: Uint8Array): string {
  return createHash("sha256").update("dray-transform-key-id\0").update(key).digest("hex").slice(0, 16);
}

/**
 * Encoded messages longer than this (4 blocks with the padding) go to the
 * native hash, which is faster per byte once its call overhead is paid.
 */
const NATIVE_ABOVE = 4 * BLOCK - 9;

/**
 * Writes `s` as UTF-8 into `out` from `at` and returns the end; a lone
 * surrogate becomes U+FFFD, as `Buffer#write` encodes it. `out` needs
 * 3 bytes per UTF-16 unit of `s`.
 */
function writeUtf8(s: string, out: Uint8Array, at: number): number {
  const length = s.length;
  for (let i = 0; i < length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      out[at++] = c;
    } else if (c < 0x800) {
      out[at++] = 0xc0 | (c >> 6);
      out[at++] = 0x80 | (c & 0x3f);
    } else {
      if (c >= 0xd800 && c < 0xe000) {
        const next = i + 1 < length ? s.charCodeAt(i + 1) : 0;
        if (c < 0xdc00 && next >= 0xdc00 && next < 0xe000) {
          const point = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
          out[at++] = 0xf0 | (point >> 18);
          out[at++] = 0x80 | ((point >> 12) & 0x3f);
          out[at++] = 0x80 | ((point >> 6) & 0x3f);
          out[at++] = 0x80 | (point & 0x3f);
          i++;
          continue;
        }
        c = 0xfffd;
      }
      out[at++] = 0xe0 | (c >> 12);
      out[at++] = 0x80 | ((c >> 6) & 0x3f);
      out[at++] = 0x80 | (c & 0x3f);
    }
  }
  return at;
}

/**
 * Creates the PRF of `key` (at least {@link MIN_KEY_BYTES} bytes). The SHA-256
 * states after the key's ipad and opad blocks are computed once here, so HMAC
 * of a short message costs two compressions in plain code (see ./sha256.ts),
 * into reused buffers: no crypto object, and no native call for messages up to
 * {@link NATIVE_ABOVE} bytes (longer ones hash their inner part natively).
 */
export function createPrf(key: Uint8Array): Prf {
  if (!(key instanceof Uint8Array) || key.length < MIN_KEY_BYTES)
    throw new DrayError(
      "invalid_argument",
      `the transform key must be at least ${MIN_KEY_BYTES} bytes; generate one with 32 random bytes`,
    );
  const w = sha256Block();
  const block = new Uint8Array(BLOCK);
  block.set(key.length > BLOCK ? sha256(key) : key);
  // message: the ipad block (for the native path) followed by the encoded message, grown on demand.
  let message = new Uint8Array(BLOCK + 1024);
  for (let i = 0; i < BLOCK; i++) message[i] = (block[i] as number) ^ 0x36;
  const ipad = sha256Initial();
  loadBlock(w, message, 0);
  compress(ipad, w);
  for (let i = 0; i < BLOCK; i++) block[i] = (block[i] as number) ^ 0x5c;
  const opad = sha256Initial();
  loadBlock(w, block, 0);
  compress(opad, w);
  block.fill(0);
  /** The last MAC computed by {@link mac}. */
  const digest = new Int32Array(8);

  /** Room for `units` UTF-16 units of message plus the padding. */
  const reserve = (units: number): void => {
    const needed = BLOCK + units * 3 + SHA256_PADDING;
    if (needed <= message.length) return;
    const grown = new Uint8Array(needed);
    grown.set(message.subarray(0, BLOCK));
    message = grown;
  };

  /** `digest` = HMAC over the message encoded in `message[BLOCK .. end)`. */
  const macTo = (end: number): void => {
    const length = end - BLOCK;
    if (length > NATIVE_ABOVE) {
      const inner = hash("sha256", message.subarray(0, end), "buffer");
      for (let i = 0; i < 8; i++) w[i] = inner.readInt32BE(4 * i);
    } else {
      for (let i = 0; i < 8; i++) digest[i] = ipad[i] as number;
      finish(digest, w, message, BLOCK, length, BLOCK);
      for (let i = 0; i < 8; i++) w[i] = digest[i] as number;
    }
    // outer block: the inner digest, 0x80, zeros, length (64 + 32) * 8 bits.
    w[8] = 0x80000000 | 0;
    for (let i = 9; i < 15; i++) w[i] = 0;
    w[15] = (BLOCK + DIGEST) * 8;
    for (let i = 0; i < 8; i++) digest[i] = opad[i] as number;
    compress(digest, w);
  };

  /** `digest` = HMAC(key, transformer + "\0" + value). */
  const mac = (transformer: string, value: string): void => {
    reserve(transformer.length + 1 + value.length);
    let at = writeUtf8(transformer, message, BLOCK);
    message[at++] = 0;
    macTo(writeUtf8(value, message, at));
  };

  /** `digest` = HMAC(key, "\u0001" + transformer + "\0" + value + "\0" + counter). */
  const macCounter = (transformer: string, value: string, counter: number): void => {
    const suffix = String(counter);
    reserve(1 + transformer.length + 1 + value.length + 1 + suffix.length);
    message[BLOCK] = 1;
    let at = writeUtf8(transformer, message, BLOCK + 1);
    message[at++] = 0;
    at = writeUtf8(value, message, at);
    message[at++] = 0;
    macTo(writeUtf8(suffix, message, at));
  };

  const bytes = (transformer: string, value: string, n = DIGEST): Buffer => {
    mac(transformer, value);
    if (n <= DIGEST) {
      // Not pooled: the buffer is the caller's own, down to its ArrayBuffer.
      if (Number.isInteger(n) && n >= 0) {
        const first = Buffer.allocUnsafeSlow(n);
        writeDigest(digest, first, 0, n);
        return first;
      }
      // A fractional or negative n: the first 32 bytes cut as `subarray(0, n)` cuts them.
      const first = Buffer.allocUnsafeSlow(DIGEST);
      writeDigest(digest, first);
      return first.subarray(0, n);
    }
    const out = Buffer.alloc(n);
    writeDigest(digest, out);
    for (let i = 1, at = DIGEST; at < n; i++, at += DIGEST) {
      macCounter(transformer, value, i);
      writeDigest(digest, out, at, Math.min(DIGEST, out.length - at));
    }
    return out;
  };

  return {
    keyId: keyId(key),
    bytes,
    uint32: (transformer, value) => {
      mac(transformer, value);
      return (digest[0] as number) >>> 0;
    },
    float: (transformer, value) => {
      mac(transformer, value);
      return (((digest[0] as number) >>> 0) * 2 ** 21 + ((digest[1] as number) >>> 11)) / 2 ** 53;
    },
    index: (transformer, value, modulo) => {
      if (!Number.isSafeInteger(modulo) || modulo < 1)
        throw new DrayError("invalid_argument", `index modulo must be a positive integer, got ${modulo}`);
      mac(transformer, value);
      // 52 bits reduced modulo: negligible bias for any modulo below 2^32.
      const x = ((digest[0] as number) >>> 0) * 2 ** 20 + ((digest[1] as number) >>> 12);
      return x % modulo;
    },
  };
}
