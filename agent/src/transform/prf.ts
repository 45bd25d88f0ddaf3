/**
 * The keyed pseudo-random function behind every deterministic transformer:
 * HMAC-SHA256(key, transformer + "\0" + value). Its output depends only on the
 * key, the transformer's name and the value, never on the column, the table or
 * the row order, so one value maps the same way in every table and every run.
 */
import { createHash, hash } from "node:crypto";
import { DrayError } from "@dray/common";

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
 * Creates the PRF of `key` (at least {@link MIN_KEY_BYTES} bytes). HMAC is
 * computed with two one-shot `crypto.hash` calls over precomputed ipad/opad
 * blocks and reused buffers: no crypto object per value.
 */
export function createPrf(key: Uint8Array): Prf {
  if (!(key instanceof Uint8Array) || key.length < MIN_KEY_BYTES)
    throw new DrayError(
      "invalid_argument",
      `the transform key must be at least ${MIN_KEY_BYTES} bytes; generate one with 32 random bytes`,
    );
  const block = Buffer.alloc(BLOCK);
  if (key.length > BLOCK) hash("sha256", key, "buffer").copy(block);
  else Buffer.from(key).copy(block);
  // inner: ipad block followed by the message, grown on demand.
  let inner = Buffer.alloc(BLOCK + 1024);
  for (let i = 0; i < BLOCK; i++) inner[i] = (block[i] as number) ^ 0x36;
  const outer = Buffer.alloc(BLOCK + DIGEST);
  for (let i = 0; i < BLOCK; i++) outer[i] = (block[i] as number) ^ 0x5c;
  block.fill(0);

  const mac = (message: string): Buffer => {
    const max = message.length * 3;
    if (BLOCK + max > inner.length) {
      const grown = Buffer.alloc(BLOCK + max);
      inner.copy(grown, 0, 0, BLOCK);
      inner = grown;
    }
    const len = inner.write(message, BLOCK, "utf8");
    hash("sha256", inner.subarray(0, BLOCK + len), "buffer").copy(outer, BLOCK);
    return hash("sha256", outer, "buffer");
  };

  const bytes = (transformer: string, value: string, n = DIGEST): Buffer => {
    const first = mac(`${transformer}\0${value}`);
    if (n <= DIGEST) return n === DIGEST ? first : first.subarray(0, n);
    const out = Buffer.alloc(n);
    first.copy(out);
    for (let i = 1, at = DIGEST; at < n; i++, at += DIGEST)
      mac(`\u0001${transformer}\0${value}\0${i}`).copy(out, at);
    return out;
  };

  return {
    keyId: keyId(key),
    bytes,
    uint32: (transformer, value) => mac(`${transformer}\0${value}`).readUInt32BE(0),
    float: (transformer, value) => {
      const d = mac(`${transformer}\0${value}`);
      return (d.readUInt32BE(0) * 2 ** 21 + (d.readUInt32BE(4) >>> 11)) / 2 ** 53;
    },
    index: (transformer, value, modulo) => {
      if (!Number.isSafeInteger(modulo) || modulo < 1)
        throw new DrayError("invalid_argument", `index modulo must be a positive integer, got ${modulo}`);
      const d = mac(`${transformer}\0${value}`);
      // 52 bits reduced modulo: negligible bias for any modulo below 2^32.
      const x = d.readUInt32BE(0) * 2 ** 20 + (d.readUInt32BE(4) >>> 12);
      return x % modulo;
    },
  };
}
