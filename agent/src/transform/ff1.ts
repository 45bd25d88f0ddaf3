import { DrayError } from "@dray/common";

/**
 * NIST SP 800-38G FF1 format-preserving encryption with AES-256.
 * A string of `n` numerals in base `radix` maps to another such string; for a
 * fixed key and tweak it is a permutation of all radix^n strings.
 */

/** The smallest domain NIST allows (SP 800-38G rev. 1: radix^minlen ≥ 1,000,000). */
export const FF1_MIN_DOMAIN = 1_000_000;

const BLOCK = 16;

// ---------------------------------------------------------------- AES-256

/** The AES S-box and the four round tables (SubBytes, ShiftRows and MixColumns of one byte). */
const SBOX = new Uint8Array(256);
const TE0 = new Int32Array(256);
const TE1 = new Int32Array(256);
const TE2 = new Int32Array(256);
const TE3 = new Int32Array(256);

/** Multiplication by x in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1. */
function xtime(a: number): number {
  return ((a << 1) ^ (a & 0x80 ? 0x1b : 0)) & 0xff;
}

{
  // The S-box from its definition: the inverse in GF(2^8), then the affine map.
  const exp = new Uint8Array(256);
  const log = new Uint8Array(256);
  for (let i = 0, x = 1; i < 255; i++) {
    exp[i] = x;
    log[x] = i;
    x ^= xtime(x); // multiply by the generator 3
  }
  for (let i = 0; i < 256; i++) {
    const inverse = i === 0 ? 0 : (exp[(255 - (log[i] as number)) % 255] as number);
    let s = inverse;
    for (let k = 1, r = inverse; k <= 4; k++) {
      r = ((r << 1) | (r >>> 7)) & 0xff;
      s ^= r;
    }
    SBOX[i] = s ^ 0x63;
  }
  for (let i = 0; i < 256; i++) {
    const s = SBOX[i] as number;
    const s2 = xtime(s);
    const t = (s2 << 24) | (s << 16) | (s << 8) | (s2 ^ s);
    TE0[i] = t;
    TE1[i] = (t >>> 8) | (t << 24);
    TE2[i] = (t >>> 16) | (t << 16);
    TE3[i] = (t >>> 24) | (t << 8);
  }
}

/**
 * AES-256 block encryption in JavaScript (FIPS 197, table-driven): about five
 * times faster than a `node:crypto` call per 16-byte block, which the
 * block-at-a-time constructions here (FF1 rounds, Feistel rounds) need. Blocks
 * are four big-endian 32-bit words. Table lookups depend on the data, so a
 * process sharing this CPU's cache could in principle time them; the agent
 * runs the transformers in its own process.
 */
export class Aes256 {
  /** The 60 round-key words. */
  private readonly rk = new Int32Array(60);
  /** The last output block's words (overwritten by each {@link Aes256.encrypt}). */
  readonly out = new Int32Array(4);

  constructor(key: Uint8Array) {
    if (key.length !== 32)
      throw new DrayError("invalid_argument", `an AES-256 key has 32 bytes, not ${key.length}`);
    const w = this.rk;
    for (let i = 0; i < 8; i++)
      w[i] =
        ((key[4 * i] as number) << 24) |
        ((key[4 * i + 1] as number) << 16) |
        ((key[4 * i + 2] as number) << 8) |
        (key[4 * i + 3] as number);
    for (let i = 8, rcon = 1; i < 60; i++) {
      let t = w[i - 1] as number;
      if (i % 8 === 0) {
        t = subWord((t << 8) | (t >>> 24)) ^ (rcon << 24);
        rcon = xtime(rcon);
      } else if (i % 8 === 4) t = subWord(t);
      w[i] = (w[i - 8] as number) ^ t;
    }
  }

  /** Encrypts the block (w0, w1, w2, w3); the result is in {@link Aes256.out}, returned. */
  encrypt(w0: number, w1: number, w2: number, w3: number): Int32Array {
    const rk = this.rk;
    let s0 = w0 ^ (rk[0] as number);
    let s1 = w1 ^ (rk[1] as number);
    let s2 = w2 ^ (rk[2] as number);
    let s3 = w3 ^ (rk[3] as number);
    for (let k = 4; k < 56; k += 4) {
      const t0 =
        (TE0[s0 >>> 24] as number) ^
        (TE1[(s1 >>> 16) & 0xff] as number) ^
        (TE2[(s2 >>> 8) & 0xff] as number) ^
        (TE3[s3 & 0xff] as number) ^
        (rk[k] as number);
      const t1 =
        (TE0[s1 >>> 24] as number) ^
        (TE1[(s2 >>> 16) & 0xff] as number) ^
        (TE2[(s3 >>> 8) & 0xff] as number) ^
        (TE3[s0 & 0xff] as number) ^
        (rk[k + 1] as number);
      const t2 =
        (TE0[s2 >>> 24] as number) ^
        (TE1[(s3 >>> 16) & 0xff] as number) ^
        (TE2[(s0 >>> 8) & 0xff] as number) ^
        (TE3[s1 & 0xff] as number) ^
        (rk[k + 2] as number);
      const t3 =
        (TE0[s3 >>> 24] as number) ^
        (TE1[(s0 >>> 16) & 0xff] as number) ^
        (TE2[(s1 >>> 8) & 0xff] as number) ^
        (TE3[s2 & 0xff] as number) ^
        (rk[k + 3] as number);
      s0 = t0;
      s1 = t1;
      s2 = t2;
      s3 = t3;
    }
    const out = this.out;
    out[0] = lastRound(s0, s1, s2, s3) ^ (rk[56] as number);
    out[1] = lastRound(s1, s2, s3, s0) ^ (rk[57] as number);
    out[2] = lastRound(s2, s3, s0, s1) ^ (rk[58] as number);
    out[3] = lastRound(s3, s0, s1, s2) ^ (rk[59] as number);
    return out;
  }

  /** Encrypts one 16-byte block into a new buffer. */
  encryptBlock(block: Uint8Array): Buffer {
    const b = Buffer.from(block.buffer, block.byteOffset, block.byteLength);
    if (b.length !== BLOCK)
      throw new DrayError("invalid_argument", `an AES block has 16 bytes, not ${b.length}`);
    const o = this.encrypt(b.readInt32BE(0), b.readInt32BE(4), b.readInt32BE(8), b.readInt32BE(12));
    const out = Buffer.allocUnsafe(BLOCK);
    for (let j = 0; j < 4; j++) out.writeInt32BE(o[j] as number, 4 * j);
    return out;
  }
}

function subWord(t: number): number {
  return (
    ((SBOX[t >>> 24] as number) << 24) |
    ((SBOX[(t >>> 16) & 0xff] as number) << 16) |
    ((SBOX[(t >>> 8) & 0xff] as number) << 8) |
    (SBOX[t & 0xff] as number)
  );
}

/** SubBytes and ShiftRows of the final round, for one output column. */
function lastRound(a: number, b: number, c: number, d: number): number {
  return (
    ((SBOX[a >>> 24] as number) << 24) |
    ((SBOX[(b >>> 16) & 0xff] as number) << 16) |
    ((SBOX[(c >>> 8) & 0xff] as number) << 8) |
    (SBOX[d & 0xff] as number)
  );
}

// ---------------------------------------------------------------- FF1

/** Parameters that depend only on the length n, computed once per length. */
interface LengthParams {
  u: number;
  v: number;
  b: number;
  d: number;
  /** The CBC-MAC state after P and Q's constant blocks (tweak and padding), before the block with the round number. */
  state: Int32Array;
  /** Q from that block to its end: tweak and padding bytes set, round number and NUM(B) left zero. */
  tail: Buffer;
  /** Where the round number sits in {@link LengthParams.tail}. */
  roundAt: number;
  /** Number arithmetic is exact: radix^v · 256 < 2^53, NUM(B) and the round number fit Q's last 8 bytes. */
  small: boolean;
  modU: bigint;
  modV: bigint;
  modUn: number;
  modVn: number;
  /** Bits folded per step when reducing S modulo radix^u and radix^v in Number arithmetic. */
  stepU: number;
  stepV: number;
}

/** Bit length of a non-negative bigint. */
function bitLength(x: bigint): number {
  return x === 0n ? 0 : x.toString(2).length;
}

/** The widest step (32, 16 or 8 bits) with (mod − 1) · 2^step + 2^step − 1 < 2^53. */
function reductionStep(mod: number): number {
  if (mod <= 2 ** 21) return 32;
  if (mod <= 2 ** 37) return 16;
  return 8;
}

/** An FF1 cipher for one key, radix and tweak. */
export class Ff1 {
  readonly radix: number;
  private readonly aes: Aes256;
  private readonly tweak: Uint8Array;
  private readonly params = new Map<number, LengthParams>();

  constructor(key: Uint8Array, radix: number, tweak: Uint8Array = new Uint8Array(0)) {
    if (!Number.isInteger(radix) || radix < 2 || radix > 65536)
      throw new DrayError("invalid_argument", `the FF1 radix must be an integer in [2, 65536], not ${radix}`);
    this.aes = new Aes256(key);
    this.radix = radix;
    this.tweak = Uint8Array.from(tweak);
  }

  /** The fewest numerals NIST allows in this radix. */
  minLength(): number {
    let n = 2;
    while (this.radix ** n < FF1_MIN_DOMAIN) n++;
    return n;
  }

  /** Encrypts numerals (each in [0, radix)); returns as many numerals. */
  encrypt(x: readonly number[]): number[] {
    return this.run(x, true);
  }

  /** Inverts {@link Ff1.encrypt}. */
  decrypt(x: readonly number[]): number[] {
    return this.run(x, false);
  }

  private lengthParams(n: number): LengthParams {
    const cached = this.params.get(n);
    if (cached) return cached;
    const radix = this.radix;
    const u = Math.floor(n / 2);
    const v = n - u;
    const bigRadix = BigInt(radix);
    const modU = bigRadix ** BigInt(u);
    const modV = bigRadix ** BigInt(v);
    // b = ⌈⌈v·log2(radix)⌉ / 8⌉, with ⌈log2 N⌉ = bitlength(N − 1) computed exactly.
    const b = Math.ceil(bitLength(modV - 1n) / 8);
    const d = 4 * Math.ceil(b / 4) + 4;
    const p = Buffer.alloc(BLOCK);
    p[0] = 1;
    p[1] = 2;
    p[2] = 1;
    p.writeUIntBE(radix, 3, 3);
    p[6] = 10;
    p[7] = u % 256;
    p.writeUInt32BE(n, 8);
    p.writeUInt32BE(this.tweak.length, 12);
    // Q = T ∥ [0]^pad ∥ [i] ∥ NUM_b(B): every block before the one holding [i] is constant.
    const t = this.tweak.length;
    const pad = (((-t - b - 1) % BLOCK) + BLOCK) % BLOCK;
    const q = Buffer.alloc(t + pad + 1 + b);
    q.set(this.tweak, 0);
    const constantEnd = Math.floor((t + pad) / BLOCK) * BLOCK;
    const state = new Int32Array(4);
    this.cbc(state, p, 0, BLOCK);
    this.cbc(state, q, 0, constantEnd);
    const small = modV * 256n < 2n ** 53n;
    const params: LengthParams = {
      u,
      v,
      b,
      d,
      state,
      tail: q.subarray(constantEnd),
      roundAt: t + pad - constantEnd,
      small,
      modU,
      modV,
      modUn: Number(modU),
      modVn: Number(modV),
      stepU: reductionStep(Number(modU)),
      stepV: reductionStep(Number(modV)),
    };
    this.params.set(n, params);
    return params;
  }

  /** CBC-MAC of bytes [from, to) of `data` (whole blocks), continuing from `state`, in place. */
  private cbc(state: Int32Array, data: Buffer, from: number, to: number): void {
    for (let at = from; at < to; at += BLOCK) {
      const o = this.aes.encrypt(
        (state[0] as number) ^ data.readInt32BE(at),
        (state[1] as number) ^ data.readInt32BE(at + 4),
        (state[2] as number) ^ data.readInt32BE(at + 8),
        (state[3] as number) ^ data.readInt32BE(at + 12),
      );
      state.set(o);
    }
  }

  private run(x: readonly number[], forward: boolean): number[] {
    const radix = this.radix;
    const n = x.length;
    if (radix ** n < FF1_MIN_DOMAIN)
      throw new DrayError(
        "invalid_argument",
        `FF1 needs radix^length ≥ 1,000,000: at least ${this.minLength()} numerals in radix ${radix}, got ${n}`,
      );
    if (n > 0xffff) throw new DrayError("invalid_argument", `FF1 takes at most 65535 numerals, got ${n}`);
    for (let j = 0; j < n; j++) {
      const digit = x[j] as number;
      if (!Number.isInteger(digit) || digit < 0 || digit >= radix)
        throw new DrayError("invalid_argument", `an FF1 numeral must be an integer in [0, ${radix})`);
    }
    const p = this.lengthParams(n);
    return p.small ? this.runSmall(x, p, forward) : this.runBig(x, p, forward);
  }

  /** The ten rounds in Number arithmetic: A and B are held as NUM_radix values. */
  private runSmall(x: readonly number[], p: LengthParams, forward: boolean): number[] {
    const { radix, aes } = this;
    const { u, b, d, state, tail, modUn, modVn, stepU, stepV } = p;
    let a = 0;
    for (let j = 0; j < u; j++) a = a * radix + (x[j] as number);
    let bb = 0;
    for (let j = u; j < x.length; j++) bb = bb * radix + (x[j] as number);
    // Q's last block: constant bytes (tweak tail, padding) in c0…c3, [i] ∥ NUM_b(B) xored into its last b + 1 bytes.
    const last = tail.length - BLOCK;
    const c0 = (state[0] as number) ^ tail.readInt32BE(last);
    const c1 = (state[1] as number) ^ tail.readInt32BE(last + 4);
    const c2 = (state[2] as number) ^ tail.readInt32BE(last + 8);
    const c3 = (state[3] as number) ^ tail.readInt32BE(last + 12);
    const shift = 2 ** (8 * b);
    const words = d / 4;
    for (let k = 0; k < 10; k++) {
      const i = forward ? k : 9 - k;
      const even = i % 2 === 0;
      const mod = even ? modUn : modVn;
      const step = even ? stepU : stepV;
      // Encryption feeds B into round i, decryption A.
      const value = i * shift + (forward ? bb : a);
      const o = aes.encrypt(c0, c1, c2 ^ Math.floor(value / 4294967296), c3 ^ value);
      const y = reduce(o, words, mod, step);
      if (forward) {
        const c = (a + y) % mod;
        a = bb;
        bb = c;
      } else {
        const c = (bb - y + mod) % mod;
        bb = a;
        a = c;
      }
    }
    const out = new Array<number>(x.length);
    for (let j = u - 1; j >= 0; j--) {
      out[j] = a % radix;
      a = Math.floor(a / radix);
    }
    for (let j = x.length - 1; j >= u; j--) {
      out[j] = bb % radix;
      bb = Math.floor(bb / radix);
    }
    return out;
  }

  /** The ten rounds in BigInt arithmetic, for long inputs. */
  private runBig(x: readonly number[], p: LengthParams, forward: boolean): number[] {
    const { radix, aes } = this;
    const { u, v, b, d, tail, roundAt, modU, modV } = p;
    const bigRadix = BigInt(radix);
    let a = 0n;
    for (let j = 0; j < u; j++) a = a * bigRadix + BigInt(x[j] as number);
    let bb = 0n;
    for (let j = u; j < x.length; j++) bb = bb * bigRadix + BigInt(x[j] as number);
    const q = Buffer.from(tail);
    const state = new Int32Array(4);
    const blocks = Math.ceil(d / BLOCK);
    const s = new Int32Array(blocks * 4);
    for (let k = 0; k < 10; k++) {
      const i = forward ? k : 9 - k;
      const mod = i % 2 === 0 ? modU : modV;
      q[roundAt] = i;
      writeBig(q, roundAt + 1, b, forward ? bb : a);
      state.set(p.state);
      this.cbc(state, q, 0, q.length);
      // S = R ∥ CIPH(R ⊕ [1]^16) ∥ CIPH(R ⊕ [2]^16) ∥ …, its first d bytes as a number.
      s.set(state);
      for (let j = 1; j < blocks; j++)
        s.set(
          aes.encrypt(state[0] as number, state[1] as number, state[2] as number, (state[3] as number) ^ j),
          4 * j,
        );
      let y = 0n;
      for (let j = 0; j < d / 4; j++) y = (y << 32n) | BigInt((s[j] as number) >>> 0);
      y %= mod;
      if (forward) {
        const c = (a + y) % mod;
        a = bb;
        bb = c;
      } else {
        const c = (((bb - y) % mod) + mod) % mod;
        bb = a;
        a = c;
      }
    }
    const out = new Array<number>(x.length);
    for (let j = u - 1; j >= 0; j--) {
      out[j] = Number(a % bigRadix);
      a /= bigRadix;
    }
    for (let j = u + v - 1; j >= u; j--) {
      out[j] = Number(bb % bigRadix);
      bb /= bigRadix;
    }
    return out;
  }
}

/** NUM of the first `words` words of `o`, modulo `mod`, folding `step` bits at a time (exact in doubles). */
function reduce(o: Int32Array, words: number, mod: number, step: number): number {
  let y = 0;
  for (let j = 0; j < words; j++) {
    const w = (o[j] as number) >>> 0;
    if (step === 32) y = (y * 4294967296 + w) % mod;
    else if (step === 16) {
      y = (y * 65536 + (w >>> 16)) % mod;
      y = (y * 65536 + (w & 0xffff)) % mod;
    } else for (let shift = 24; shift >= 0; shift -= 8) y = (y * 256 + ((w >>> shift) & 0xff)) % mod;
  }
  return y;
}

function writeBig(buf: Buffer, at: number, len: number, value: bigint): void {
  for (let j = at + len - 1; j >= at; j--) {
    buf[j] = Number(value & 0xffn);
    value >>= 8n;
  }
}

const CIPHERS = new WeakMap<Uint8Array, Map<string, Ff1>>();

function cipherFor(key: Uint8Array, tweak: Uint8Array, radix: number): Ff1 {
  let byKey = CIPHERS.get(key);
  if (!byKey) {
    byKey = new Map();
    CIPHERS.set(key, byKey);
  }
  const id = `${radix}:${Buffer.from(tweak).toString("hex")}`;
  let cipher = byKey.get(id);
  if (!cipher) {
    cipher = new Ff1(key, radix, tweak);
    byKey.set(id, cipher);
  }
  return cipher;
}

/**
 * FF1-AES-256 encryption of `digits` (numerals in [0, radix)). The cipher is
 * cached per key object, so calling this in a loop costs no key schedule.
 *
 * @example ff1Encrypt(key, new Uint8Array(0), 10, [0,1,2,3,4,5,6,7,8,9])
 */
export function ff1Encrypt(key: Uint8Array, tweak: Uint8Array, radix: number, digits: number[]): number[] {
  return cipherFor(key, tweak, radix).encrypt(digits);
}

/** Inverts {@link ff1Encrypt}. */
export function ff1Decrypt(key: Uint8Array, tweak: Uint8Array, radix: number, digits: number[]): number[] {
  return cipherFor(key, tweak, radix).decrypt(digits);
}
