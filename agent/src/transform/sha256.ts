/**
 * The SHA-256 compression function (FIPS 180-4) in plain TypeScript, for the
 * keyed PRF: with the HMAC ipad/opad midstates computed once per key, a short
 * message costs two compressions here, cheaper than two native hash calls.
 * State and message words are signed 32-bit integers in Int32Arrays; read a
 * word as unsigned with `>>> 0`.
 */

/** Bytes in one SHA-256 block. */
export const SHA256_BLOCK = 64;

/** The round constants K[0..63] (FIPS 180-4 §4.2.2). */
const K = Int32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
]);

/** A fresh state holding the initial hash value H(0) (FIPS 180-4 §5.3.3). */
export function sha256Initial(): Int32Array {
  return Int32Array.from([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]);
}

/** A buffer for one block's 16 message words, as {@link compress} takes it. */
export function sha256Block(): Int32Array {
  return new Int32Array(16);
}

/** Loads the 64-byte block at `bytes[offset]` into `w[0..15]`, big-endian. */
export function loadBlock(w: Int32Array, bytes: Uint8Array, offset: number): void {
  for (let i = 0; i < 16; i++, offset += 4)
    w[i] =
      ((bytes[offset] as number) << 24) |
      ((bytes[offset + 1] as number) << 16) |
      ((bytes[offset + 2] as number) << 8) |
      (bytes[offset + 3] as number);
}

/**
 * One application of the compression function (FIPS 180-4 §6.2.2): `state`
 * (8 words) absorbs the block whose 16 words are in `w`, which is left as is.
 * The 64 rounds run as 4 passes of 16 written out, with the message schedule
 * kept in 16 locals (W[t] replaces W[t - 16]) and the working variables renamed
 * from round to round instead of shifted: about 40% faster than a plain loop
 * over an array schedule. σ, Σ, Ch and Maj (§4.1.2) are written inline, as V8
 * would not inline that many helper calls.
 */
export function compress(state: Int32Array, w: Int32Array): void {
  let a = state[0] as number;
  let b = state[1] as number;
  let c = state[2] as number;
  let d = state[3] as number;
  let e = state[4] as number;
  let f = state[5] as number;
  let g = state[6] as number;
  let h = state[7] as number;
  let w0 = w[0] as number;
  let w1 = w[1] as number;
  let w2 = w[2] as number;
  let w3 = w[3] as number;
  let w4 = w[4] as number;
  let w5 = w[5] as number;
  let w6 = w[6] as number;
  let w7 = w[7] as number;
  let w8 = w[8] as number;
  let w9 = w[9] as number;
  let w10 = w[10] as number;
  let w11 = w[11] as number;
  let w12 = w[12] as number;
  let w13 = w[13] as number;
  let w14 = w[14] as number;
  let w15 = w[15] as number;
  let s0 = 0;
  let s1 = 0;
  let t1 = 0;
  for (let t = 0; t < 64; t += 16) {
    if (t > 0) {
      // W[t] = σ1(W[t - 2]) + W[t - 7] + σ0(W[t - 15]) + W[t - 16], for the next 16 rounds.
      s0 = ((w1 >>> 7) | (w1 << 25)) ^ ((w1 >>> 18) | (w1 << 14)) ^ (w1 >>> 3);
      s1 = ((w14 >>> 17) | (w14 << 15)) ^ ((w14 >>> 19) | (w14 << 13)) ^ (w14 >>> 10);
      w0 = (s1 + w9 + s0 + w0) | 0;
      s0 = ((w2 >>> 7) | (w2 << 25)) ^ ((w2 >>> 18) | (w2 << 14)) ^ (w2 >>> 3);
      s1 = ((w15 >>> 17) | (w15 << 15)) ^ ((w15 >>> 19) | (w15 << 13)) ^ (w15 >>> 10);
      w1 = (s1 + w10 + s0 + w1) | 0;
      s0 = ((w3 >>> 7) | (w3 << 25)) ^ ((w3 >>> 18) | (w3 << 14)) ^ (w3 >>> 3);
      s1 = ((w0 >>> 17) | (w0 << 15)) ^ ((w0 >>> 19) | (w0 << 13)) ^ (w0 >>> 10);
      w2 = (s1 + w11 + s0 + w2) | 0;
      s0 = ((w4 >>> 7) | (w4 << 25)) ^ ((w4 >>> 18) | (w4 << 14)) ^ (w4 >>> 3);
      s1 = ((w1 >>> 17) | (w1 << 15)) ^ ((w1 >>> 19) | (w1 << 13)) ^ (w1 >>> 10);
      w3 = (s1 + w12 + s0 + w3) | 0;
      s0 = ((w5 >>> 7) | (w5 << 25)) ^ ((w5 >>> 18) | (w5 << 14)) ^ (w5 >>> 3);
      s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
      w4 = (s1 + w13 + s0 + w4) | 0;
      s0 = ((w6 >>> 7) | (w6 << 25)) ^ ((w6 >>> 18) | (w6 << 14)) ^ (w6 >>> 3);
      s1 = ((w3 >>> 17) | (w3 << 15)) ^ ((w3 >>> 19) | (w3 << 13)) ^ (w3 >>> 10);
      w5 = (s1 + w14 + s0 + w5) | 0;
      s0 = ((w7 >>> 7) | (w7 << 25)) ^ ((w7 >>> 18) | (w7 << 14)) ^ (w7 >>> 3);
      s1 = ((w4 >>> 17) | (w4 << 15)) ^ ((w4 >>> 19) | (w4 << 13)) ^ (w4 >>> 10);
      w6 = (s1 + w15 + s0 + w6) | 0;
      s0 = ((w8 >>> 7) | (w8 << 25)) ^ ((w8 >>> 18) | (w8 << 14)) ^ (w8 >>> 3);
      s1 = ((w5 >>> 17) | (w5 << 15)) ^ ((w5 >>> 19) | (w5 << 13)) ^ (w5 >>> 10);
      w7 = (s1 + w0 + s0 + w7) | 0;
      s0 = ((w9 >>> 7) | (w9 << 25)) ^ ((w9 >>> 18) | (w9 << 14)) ^ (w9 >>> 3);
      s1 = ((w6 >>> 17) | (w6 << 15)) ^ ((w6 >>> 19) | (w6 << 13)) ^ (w6 >>> 10);
      w8 = (s1 + w1 + s0 + w8) | 0;
      s0 = ((w10 >>> 7) | (w10 << 25)) ^ ((w10 >>> 18) | (w10 << 14)) ^ (w10 >>> 3);
      s1 = ((w7 >>> 17) | (w7 << 15)) ^ ((w7 >>> 19) | (w7 << 13)) ^ (w7 >>> 10);
      w9 = (s1 + w2 + s0 + w9) | 0;
      s0 = ((w11 >>> 7) | (w11 << 25)) ^ ((w11 >>> 18) | (w11 << 14)) ^ (w11 >>> 3);
      s1 = ((w8 >>> 17) | (w8 << 15)) ^ ((w8 >>> 19) | (w8 << 13)) ^ (w8 >>> 10);
      w10 = (s1 + w3 + s0 + w10) | 0;
      s0 = ((w12 >>> 7) | (w12 << 25)) ^ ((w12 >>> 18) | (w12 << 14)) ^ (w12 >>> 3);
      s1 = ((w9 >>> 17) | (w9 << 15)) ^ ((w9 >>> 19) | (w9 << 13)) ^ (w9 >>> 10);
      w11 = (s1 + w4 + s0 + w11) | 0;
      s0 = ((w13 >>> 7) | (w13 << 25)) ^ ((w13 >>> 18) | (w13 << 14)) ^ (w13 >>> 3);
      s1 = ((w10 >>> 17) | (w10 << 15)) ^ ((w10 >>> 19) | (w10 << 13)) ^ (w10 >>> 10);
      w12 = (s1 + w5 + s0 + w12) | 0;
      s0 = ((w14 >>> 7) | (w14 << 25)) ^ ((w14 >>> 18) | (w14 << 14)) ^ (w14 >>> 3);
      s1 = ((w11 >>> 17) | (w11 << 15)) ^ ((w11 >>> 19) | (w11 << 13)) ^ (w11 >>> 10);
      w13 = (s1 + w6 + s0 + w13) | 0;
      s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
      s1 = ((w12 >>> 17) | (w12 << 15)) ^ ((w12 >>> 19) | (w12 << 13)) ^ (w12 >>> 10);
      w14 = (s1 + w7 + s0 + w14) | 0;
      s0 = ((w0 >>> 7) | (w0 << 25)) ^ ((w0 >>> 18) | (w0 << 14)) ^ (w0 >>> 3);
      s1 = ((w13 >>> 17) | (w13 << 15)) ^ ((w13 >>> 19) | (w13 << 13)) ^ (w13 >>> 10);
      w15 = (s1 + w8 + s0 + w15) | 0;
    }
    // T1 = h + Σ1(e) + Ch(e, f, g) + K[t] + W[t]; d += T1; h = T1 + Σ0(a) + Maj(a, b, c); then rename.
    s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    t1 = (h + s1 + (g ^ (e & (f ^ g))) + (K[t + 0] as number) + w0) | 0;
    d = (d + t1) | 0;
    s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    h = (t1 + s0 + ((a & b) ^ (c & (a ^ b)))) | 0;
    s1 = ((d >>> 6) | (d << 26)) ^ ((d >>> 11) | (d << 21)) ^ ((d >>> 25) | (d << 7));
    t1 = (g + s1 + (f ^ (d & (e ^ f))) + (K[t + 1] as number) + w1) | 0;
    c = (c + t1) | 0;
    s0 = ((h >>> 2) | (h << 30)) ^ ((h >>> 13) | (h << 19)) ^ ((h >>> 22) | (h << 10));
    g = (t1 + s0 + ((h & a) ^ (b & (h ^ a)))) | 0;
    s1 = ((c >>> 6) | (c << 26)) ^ ((c >>> 11) | (c << 21)) ^ ((c >>> 25) | (c << 7));
    t1 = (f + s1 + (e ^ (c & (d ^ e))) + (K[t + 2] as number) + w2) | 0;
    b = (b + t1) | 0;
    s0 = ((g >>> 2) | (g << 30)) ^ ((g >>> 13) | (g << 19)) ^ ((g >>> 22) | (g << 10));
    f = (t1 + s0 + ((g & h) ^ (a & (g ^ h)))) | 0;
    s1 = ((b >>> 6) | (b << 26)) ^ ((b >>> 11) | (b << 21)) ^ ((b >>> 25) | (b << 7));
    t1 = (e + s1 + (d ^ (b & (c ^ d))) + (K[t + 3] as number) + w3) | 0;
    a = (a + t1) | 0;
    s0 = ((f >>> 2) | (f << 30)) ^ ((f >>> 13) | (f << 19)) ^ ((f >>> 22) | (f << 10));
    e = (t1 + s0 + ((f & g) ^ (h & (f ^ g)))) | 0;
    s1 = ((a >>> 6) | (a << 26)) ^ ((a >>> 11) | (a << 21)) ^ ((a >>> 25) | (a << 7));
    t1 = (d + s1 + (c ^ (a & (b ^ c))) + (K[t + 4] as number) + w4) | 0;
    h = (h + t1) | 0;
    s0 = ((e >>> 2) | (e << 30)) ^ ((e >>> 13) | (e << 19)) ^ ((e >>> 22) | (e << 10));
    d = (t1 + s0 + ((e & f) ^ (g & (e ^ f)))) | 0;
    s1 = ((h >>> 6) | (h << 26)) ^ ((h >>> 11) | (h << 21)) ^ ((h >>> 25) | (h << 7));
    t1 = (c + s1 + (b ^ (h & (a ^ b))) + (K[t + 5] as number) + w5) | 0;
    g = (g + t1) | 0;
    s0 = ((d >>> 2) | (d << 30)) ^ ((d >>> 13) | (d << 19)) ^ ((d >>> 22) | (d << 10));
    c = (t1 + s0 + ((d & e) ^ (f & (d ^ e)))) | 0;
    s1 = ((g >>> 6) | (g << 26)) ^ ((g >>> 11) | (g << 21)) ^ ((g >>> 25) | (g << 7));
    t1 = (b + s1 + (a ^ (g & (h ^ a))) + (K[t + 6] as number) + w6) | 0;
    f = (f + t1) | 0;
    s0 = ((c >>> 2) | (c << 30)) ^ ((c >>> 13) | (c << 19)) ^ ((c >>> 22) | (c << 10));
    b = (t1 + s0 + ((c & d) ^ (e & (c ^ d)))) | 0;
    s1 = ((f >>> 6) | (f << 26)) ^ ((f >>> 11) | (f << 21)) ^ ((f >>> 25) | (f << 7));
    t1 = (a + s1 + (h ^ (f & (g ^ h))) + (K[t + 7] as number) + w7) | 0;
    e = (e + t1) | 0;
    s0 = ((b >>> 2) | (b << 30)) ^ ((b >>> 13) | (b << 19)) ^ ((b >>> 22) | (b << 10));
    a = (t1 + s0 + ((b & c) ^ (d & (b ^ c)))) | 0;
    s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    t1 = (h + s1 + (g ^ (e & (f ^ g))) + (K[t + 8] as number) + w8) | 0;
    d = (d + t1) | 0;
    s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    h = (t1 + s0 + ((a & b) ^ (c & (a ^ b)))) | 0;
    s1 = ((d >>> 6) | (d << 26)) ^ ((d >>> 11) | (d << 21)) ^ ((d >>> 25) | (d << 7));
    t1 = (g + s1 + (f ^ (d & (e ^ f))) + (K[t + 9] as number) + w9) | 0;
    c = (c + t1) | 0;
    s0 = ((h >>> 2) | (h << 30)) ^ ((h >>> 13) | (h << 19)) ^ ((h >>> 22) | (h << 10));
    g = (t1 + s0 + ((h & a) ^ (b & (h ^ a)))) | 0;
    s1 = ((c >>> 6) | (c << 26)) ^ ((c >>> 11) | (c << 21)) ^ ((c >>> 25) | (c << 7));
    t1 = (f + s1 + (e ^ (c & (d ^ e))) + (K[t + 10] as number) + w10) | 0;
    b = (b + t1) | 0;
    s0 = ((g >>> 2) | (g << 30)) ^ ((g >>> 13) | (g << 19)) ^ ((g >>> 22) | (g << 10));
    f = (t1 + s0 + ((g & h) ^ (a & (g ^ h)))) | 0;
    s1 = ((b >>> 6) | (b << 26)) ^ ((b >>> 11) | (b << 21)) ^ ((b >>> 25) | (b << 7));
    t1 = (e + s1 + (d ^ (b & (c ^ d))) + (K[t + 11] as number) + w11) | 0;
    a = (a + t1) | 0;
    s0 = ((f >>> 2) | (f << 30)) ^ ((f >>> 13) | (f << 19)) ^ ((f >>> 22) | (f << 10));
    e = (t1 + s0 + ((f & g) ^ (h & (f ^ g)))) | 0;
    s1 = ((a >>> 6) | (a << 26)) ^ ((a >>> 11) | (a << 21)) ^ ((a >>> 25) | (a << 7));
    t1 = (d + s1 + (c ^ (a & (b ^ c))) + (K[t + 12] as number) + w12) | 0;
    h = (h + t1) | 0;
    s0 = ((e >>> 2) | (e << 30)) ^ ((e >>> 13) | (e << 19)) ^ ((e >>> 22) | (e << 10));
    d = (t1 + s0 + ((e & f) ^ (g & (e ^ f)))) | 0;
    s1 = ((h >>> 6) | (h << 26)) ^ ((h >>> 11) | (h << 21)) ^ ((h >>> 25) | (h << 7));
    t1 = (c + s1 + (b ^ (h & (a ^ b))) + (K[t + 13] as number) + w13) | 0;
    g = (g + t1) | 0;
    s0 = ((d >>> 2) | (d << 30)) ^ ((d >>> 13) | (d << 19)) ^ ((d >>> 22) | (d << 10));
    c = (t1 + s0 + ((d & e) ^ (f & (d ^ e)))) | 0;
    s1 = ((g >>> 6) | (g << 26)) ^ ((g >>> 11) | (g << 21)) ^ ((g >>> 25) | (g << 7));
    t1 = (b + s1 + (a ^ (g & (h ^ a))) + (K[t + 14] as number) + w14) | 0;
    f = (f + t1) | 0;
    s0 = ((c >>> 2) | (c << 30)) ^ ((c >>> 13) | (c << 19)) ^ ((c >>> 22) | (c << 10));
    b = (t1 + s0 + ((c & d) ^ (e & (c ^ d)))) | 0;
    s1 = ((f >>> 6) | (f << 26)) ^ ((f >>> 11) | (f << 21)) ^ ((f >>> 25) | (f << 7));
    t1 = (a + s1 + (h ^ (f & (g ^ h))) + (K[t + 15] as number) + w15) | 0;
    e = (e + t1) | 0;
    s0 = ((b >>> 2) | (b << 30)) ^ ((b >>> 13) | (b << 19)) ^ ((b >>> 22) | (b << 10));
    a = (t1 + s0 + ((b & c) ^ (d & (b ^ c)))) | 0;
  }
  state[0] = ((state[0] as number) + a) | 0;
  state[1] = ((state[1] as number) + b) | 0;
  state[2] = ((state[2] as number) + c) | 0;
  state[3] = ((state[3] as number) + d) | 0;
  state[4] = ((state[4] as number) + e) | 0;
  state[5] = ((state[5] as number) + f) | 0;
  state[6] = ((state[6] as number) + g) | 0;
  state[7] = ((state[7] as number) + h) | 0;
}

/** Bytes {@link finish} needs after the message's end for the padding: up to 72. */
export const SHA256_PADDING = SHA256_BLOCK + 8;

/**
 * Absorbs the message `bytes[start .. start + length)` and its padding into
 * `state`, which has already absorbed `before` bytes (a multiple of 64, for a
 * midstate). The padding is written in place, so `bytes` must have
 * {@link SHA256_PADDING} writable bytes after the message.
 */
export function finish(
  state: Int32Array,
  w: Int32Array,
  bytes: Uint8Array,
  start: number,
  length: number,
  before: number,
): void {
  // The message, 0x80, zeros and the 8-byte length fill whole blocks.
  const blocks = Math.floor((length + 8) / SHA256_BLOCK) + 1;
  let end = start + blocks * SHA256_BLOCK - 8;
  bytes[start + length] = 0x80;
  for (let i = start + length + 1; i < end; i++) bytes[i] = 0;
  const bits = (before + length) * 8;
  const high = Math.floor(bits / 2 ** 32);
  bytes[end] = high >>> 24;
  bytes[end + 1] = high >>> 16;
  bytes[end + 2] = high >>> 8;
  bytes[end + 3] = high;
  bytes[end + 4] = bits >>> 24;
  bytes[end + 5] = bits >>> 16;
  bytes[end + 6] = bits >>> 8;
  bytes[end + 7] = bits;
  end += 8;
  for (let at = start; at < end; at += SHA256_BLOCK) {
    loadBlock(w, bytes, at);
    compress(state, w);
  }
}

/** Writes the 8 state words to `out[offset ..]` big-endian, at most `n` bytes (32 by default). */
export function writeDigest(state: Int32Array, out: Uint8Array, offset = 0, n = 32): void {
  for (let i = 0; i < n; i++) out[offset + i] = (state[i >> 2] as number) >>> (24 - 8 * (i & 3));
}

/** SHA-256 of `data`, as a fresh 32-byte Buffer. */
export function sha256(data: Uint8Array): Buffer {
  const padded = new Uint8Array(data.length + SHA256_PADDING);
  padded.set(data);
  const state = sha256Initial();
  finish(state, sha256Block(), padded, 0, data.length, 0);
  const out = Buffer.alloc(32);
  writeDigest(state, out);
  return out;
}
