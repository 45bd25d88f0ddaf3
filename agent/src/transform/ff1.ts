import { type Cipher, createCipheriv } from "node:crypto";
import { DrayError } from "@dray/common";

/**
 * NIST SP 800-38G FF1 format-preserving encryption with AES-256 (node:crypto).
 * A string of `n` numerals in base `radix` maps to another such string; for a
 * fixed key and tweak it is a permutation of all radix^n strings.
 */

/** The smallest domain NIST allows (SP 800-38G rev. 1: radix^minlen ≥ 1,000,000). */
export const FF1_MIN_DOMAIN = 1_000_000;

const BLOCK = 16;

/** A single-block AES-256 encryptor reused for every call (ECB, no padding, never finalised). */
export function aesBlockCipher(key: Uint8Array): (block: Uint8Array) => Buffer {
  if (key.length !== 32)
    throw new DrayError("invalid_argument", `an AES-256 key has 32 bytes, not ${key.length}`);
  const cipher: Cipher = createCipheriv("aes-256-ecb", key, null);
  cipher.setAutoPadding(false);
  return (block) => cipher.update(block);
}

/** Parameters that depend only on the length n, computed once per length. */
interface LengthParams {
  u: number;
  v: number;
  b: number;
  d: number;
  /** CIPH(P): the CBC-MAC state after the constant first block P. */
  encP: Buffer;
  modU: bigint;
  modV: bigint;
  /** Number arithmetic is exact: radix^v · 256 < 2^53. */
  small: boolean;
  modUn: number;
  modVn: number;
}

/** Bit length of a non-negative bigint. */
function bitLength(x: bigint): number {
  return x === 0n ? 0 : x.toString(2).length;
}

/** An FF1 cipher for one key, radix and tweak. */
export class Ff1 {
  readonly radix: number;
  private readonly aes: (block: Uint8Array) => Buffer;
  private readonly tweak: Uint8Array;
  private readonly params = new Map<number, LengthParams>();
  private readonly scratch = Buffer.alloc(BLOCK);

  constructor(key: Uint8Array, radix: number, tweak: Uint8Array = new Uint8Array(0)) {
    if (!Number.isInteger(radix) || radix < 2 || radix > 65536)
      throw new DrayError("invalid_argument", `the FF1 radix must be an integer in [2, 65536], not ${radix}`);
    this.aes = aesBlockCipher(key);
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
    const small = modV * 256n < 2n ** 53n;
    const params: LengthParams = {
      u,
      v,
      b,
      d,
      encP: Buffer.from(this.aes(p)),
      modU,
      modV,
      small,
      modUn: Number(modU),
      modVn: Number(modV),
    };
    this.params.set(n, params);
    return params;
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
    for (const digit of x)
      if (!Number.isInteger(digit) || digit < 0 || digit >= radix)
        throw new DrayError("invalid_argument", `an FF1 numeral must be an integer in [0, ${radix})`);
    const p = this.lengthParams(n);
    const t = this.tweak.length;
    const pad = (((-t - p.b - 1) % BLOCK) + BLOCK) % BLOCK;
    const q = Buffer.alloc(t + pad + 1 + p.b);
    q.set(this.tweak, 0);
    const roundAt = t + pad;
    let a = x.slice(0, p.u);
    let b = x.slice(p.u);
    for (let k = 0; k < 10; k++) {
      const i = forward ? k : 9 - k;
      const m = i % 2 === 0 ? p.u : p.v;
      // Encryption feeds B into the round function, decryption A.
      const fed = forward ? b : a;
      const other = forward ? a : b;
      q[roundAt] = i;
      let result: number[];
      if (p.small) {
        writeNumber(q, roundAt + 1, p.b, numSmall(fed, radix));
        const y = this.roundValueSmall(q, p, m === p.u ? p.modUn : p.modVn);
        const mod = m === p.u ? p.modUn : p.modVn;
        const base = numSmall(other, radix);
        const c = forward ? (base + y) % mod : (base - y + mod) % mod;
        result = strSmall(c, radix, m);
      } else {
        writeBig(q, roundAt + 1, p.b, numBig(fed, radix));
        const mod = m === p.u ? p.modU : p.modV;
        const y = this.roundValueBig(q, p) % mod;
        const base = numBig(other, radix);
        const c = forward ? (base + y) % mod : (((base - y) % mod) + mod) % mod;
        result = strBig(c, radix, m);
      }
      if (forward) {
        a = b;
        b = result;
      } else {
        b = a;
        a = result;
      }
    }
    return [...a, ...b];
  }

  /** R = PRF(P ∥ Q): CBC-MAC from the cached CIPH(P). */
  private prf(q: Buffer, p: LengthParams): Buffer {
    const y = this.scratch;
    p.encP.copy(y);
    let out: Buffer = y;
    for (let off = 0; off < q.length; off += BLOCK) {
      for (let j = 0; j < BLOCK; j++) y[j] = (out[j] ?? 0) ^ (q[off + j] ?? 0);
      out = this.aes(y);
    }
    return Buffer.from(out);
  }

  /** S: the first d bytes of R ∥ CIPH(R ⊕ [1]^16) ∥ CIPH(R ⊕ [2]^16) ∥ … */
  private sBytes(q: Buffer, p: LengthParams): Buffer {
    const r = this.prf(q, p);
    if (p.d <= BLOCK) return r.subarray(0, p.d);
    const blocks = Math.ceil(p.d / BLOCK);
    const s = Buffer.alloc(blocks * BLOCK);
    r.copy(s, 0);
    const x = this.scratch;
    for (let j = 1; j < blocks; j++) {
      r.copy(x);
      x.writeUInt32BE((x.readUInt32BE(12) ^ j) >>> 0, 12);
      this.aes(x).copy(s, j * BLOCK);
    }
    return s.subarray(0, p.d);
  }

  private roundValueSmall(q: Buffer, p: LengthParams, mod: number): number {
    const s = this.sBytes(q, p);
    let y = 0;
    for (let j = 0; j < s.length; j++) y = (y * 256 + (s[j] ?? 0)) % mod;
    return y;
  }

  private roundValueBig(q: Buffer, p: LengthParams): bigint {
    const s = this.sBytes(q, p);
    return BigInt(`0x${s.toString("hex")}`);
  }
}

function numSmall(x: readonly number[], radix: number): number {
  let r = 0;
  for (const digit of x) r = r * radix + digit;
  return r;
}

function numBig(x: readonly number[], radix: number): bigint {
  const bigRadix = BigInt(radix);
  let r = 0n;
  for (const digit of x) r = r * bigRadix + BigInt(digit);
  return r;
}

function strSmall(c: number, radix: number, m: number): number[] {
  const out = new Array<number>(m);
  for (let j = m - 1; j >= 0; j--) {
    out[j] = c % radix;
    c = Math.floor(c / radix);
  }
  return out;
}

function strBig(c: bigint, radix: number, m: number): number[] {
  const bigRadix = BigInt(radix);
  const out = new Array<number>(m);
  for (let j = m - 1; j >= 0; j--) {
    out[j] = Number(c % bigRadix);
    c /= bigRadix;
  }
  return out;
}

function writeNumber(buf: Buffer, at: number, len: number, value: number): void {
  for (let j = at + len - 1; j >= at; j--) {
    buf[j] = value % 256;
    value = Math.floor(value / 256);
  }
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
