import { createCipheriv, createHmac } from "node:crypto";
import { DrayError } from "@dray/common";
import { Aes256, Ff1 } from "./ff1.js";

/**
 * The bijective (key-safe) transformers: `ff1` (format-preserving encryption
 * of digit and alphanumeric strings) and `permute` (a keyed permutation of an
 * integer type's range, or of UUIDs). Distinct inputs always give distinct
 * outputs, so primary, unique and foreign keys stay valid; every output is a
 * deterministic function of (key, transformer, options, column type, value).
 */

/** A transformer for one column: text form in, text form out. */
export type KeyedTransform = (value: string) => string | null;

/** A transformer with its inverse (the inverse is for tests and audits). */
export interface KeyedCodec {
  encrypt(value: string): string;
  decrypt(value: string): string;
}

/** Derives a 32-byte subkey per transformer, so ff1 and permute never share an AES key. */
function subkey(key: Uint8Array, label: string): Uint8Array {
  if (key.length < 16)
    throw new DrayError(
      "invalid_argument",
      `the transform key has ${key.length} bytes; it needs at least 16`,
    );
  return createHmac("sha256", key).update(`dray/${label}/v1`).digest();
}

const INTEGER_BITS: Readonly<Record<string, 16 | 32 | 64>> = { smallint: 16, integer: 32, bigint: 64 };

// ---------------------------------------------------------------- integers

/** Parses a canonical integer (optional `-`, then digits), in [min, max]; never echoes the value. */
function parseInteger(value: string, columnType: string, min: bigint, max: bigint): bigint {
  let start = 0;
  if (value.charCodeAt(0) === 45) start = 1;
  let ok = value.length > start && value.length <= 21;
  for (let i = start; ok && i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 48 || c > 57) ok = false;
  }
  const parsed = ok ? BigInt(value) : undefined;
  if (parsed === undefined || parsed < min || parsed > max) throw notInteger(columnType);
  return parsed;
}

function notInteger(columnType: string): DrayError {
  return new DrayError(
    "invalid_argument",
    `a value of type ${columnType} is not a canonical integer within the type's range; check the column's type`,
  );
}

/** Like {@link parseInteger} for smallint and integer, in Number arithmetic. */
function parseSmallInteger(value: string, columnType: string, min: number, max: number): number {
  let start = 0;
  if (value.charCodeAt(0) === 45) start = 1;
  let ok = value.length > start && value.length <= 12;
  for (let i = start; ok && i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 48 || c > 57) ok = false;
  }
  const parsed = ok ? Number(value) : Number.NaN;
  if (!(parsed >= min && parsed <= max)) throw notInteger(columnType);
  return parsed;
}

/**
 * A keyed permutation of `bits`-bit words (bits ∈ {16, 32, 64}): a type-1
 * generalised Feistel network on k words of w bits (16 → 2×8, 32 → 2×16,
 * 64 → 4×16); with k = 2 it is a balanced Feistel network (12 rounds), with
 * k = 4 it has the Skipjack shape (32 rounds). Round i is
 * (x0, x1, …, xk−1) ↦ (x1 ⊕ Fi(x0), x2, …, xk−1, x0), where each Fi is a
 * random function drawn from the key: a table of the AES-256-CTR keystream.
 * The tables (≤ 4 MiB, built once per key and type) make a value cost a few
 * lookups instead of one AES call per round. A power-of-two domain needs no
 * cycle walking.
 */
class WordFeistel {
  private readonly w: number;
  private readonly k: number;
  private readonly rounds: number;
  private readonly tables: Uint16Array;

  constructor(key: Uint8Array, bits: 16 | 32 | 64) {
    this.w = bits === 16 ? 8 : 16;
    this.k = bits / this.w;
    this.rounds = this.k === 2 ? 12 : 32;
    const size = 2 ** this.w;
    const iv = Buffer.alloc(16);
    iv[0] = bits;
    const stream = createCipheriv("aes-256-ctr", key, iv).update(Buffer.alloc(this.rounds * size * 2));
    this.tables = new Uint16Array(this.rounds * size);
    const mask = size - 1;
    for (let j = 0; j < this.tables.length; j++) this.tables[j] = stream.readUInt16BE(j * 2) & mask;
  }

  /** Permutes `x` (k words) in place. */
  encrypt(x: number[]): void {
    const { k, w, tables } = this;
    for (let i = 0; i < this.rounds; i++) {
      const x0 = x[0] ?? 0;
      for (let j = 0; j < k - 1; j++) x[j] = x[j + 1] ?? 0;
      x[0] = (x[0] ?? 0) ^ (tables[(i << w) + x0] ?? 0);
      x[k - 1] = x0;
    }
  }

  /** Inverts {@link WordFeistel.encrypt} in place. */
  decrypt(y: number[]): void {
    const { k, w, tables } = this;
    for (let i = this.rounds - 1; i >= 0; i--) {
      const x0 = y[k - 1] ?? 0;
      const x1 = (y[0] ?? 0) ^ (tables[(i << w) + x0] ?? 0);
      for (let j = k - 1; j >= 2; j--) y[j] = y[j - 1] ?? 0;
      y[0] = x0;
      y[1] = x1;
    }
  }
}

const FEISTELS = new Map<string, WordFeistel>();

/** The network for a subkey and width, built once per process. */
function wordFeistel(key: Uint8Array, bits: 16 | 32 | 64): WordFeistel {
  const id = `${bits}:${Buffer.from(key).toString("hex")}`;
  let feistel = FEISTELS.get(id);
  if (!feistel) {
    feistel = new WordFeistel(key, bits);
    FEISTELS.set(id, feistel);
  }
  return feistel;
}

/** A keyed permutation of [-2^(bits-1), 2^(bits-1) − 1] (signed mapped to unsigned by offset). */
function integerCodec(key: Uint8Array, columnType: string, bits: 16 | 32 | 64): KeyedCodec {
  const feistel = wordFeistel(key, bits);
  if (bits === 64) {
    const min = -(2n ** 63n);
    const max = 2n ** 63n - 1n;
    const run = (value: string, forward: boolean): string => {
      const u = parseInteger(value, columnType, min, max) - min;
      const hi = Number(u >> 32n);
      const lo = Number(u & 0xffffffffn);
      const x = [hi >>> 16, hi & 0xffff, lo >>> 16, lo & 0xffff];
      if (forward) feistel.encrypt(x);
      else feistel.decrypt(x);
      const h = ((x[0] ?? 0) * 65536 + (x[1] ?? 0)) >>> 0;
      const l = ((x[2] ?? 0) * 65536 + (x[3] ?? 0)) >>> 0;
      return String(((BigInt(h) << 32n) | BigInt(l)) + min);
    };
    return { encrypt: (v) => run(v, true), decrypt: (v) => run(v, false) };
  }
  const half = bits / 2;
  const halfSize = 2 ** half;
  const offset = 2 ** (bits - 1);
  const run = (value: string, forward: boolean): string => {
    const u = parseSmallInteger(value, columnType, -offset, offset - 1) + offset;
    const x = [Math.floor(u / halfSize), u % halfSize];
    if (forward) feistel.encrypt(x);
    else feistel.decrypt(x);
    return String((x[0] ?? 0) * halfSize + (x[1] ?? 0) - offset);
  };
  return { encrypt: (v) => run(v, true), decrypt: (v) => run(v, false) };
}

// ---------------------------------------------------------------- uuids

const MASK29 = 0x1fffffff;

/** Two lowercase hex digits per byte value. */
const HEX_BYTES = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** The value of a hex digit's char code, -1 if it is none. */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** Parses the 8-4-4-4-12 hex form (either case) into `out` (16 bytes); never echoes the value. */
function parseUuid(value: string, out: Uint8Array): void {
  let ok = value.length === 36;
  for (let i = 0, j = 0; ok && i < 36; i++) {
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (value.charCodeAt(i) !== 45) ok = false;
      continue;
    }
    const hi = hexDigit(value.charCodeAt(i));
    const lo = hexDigit(value.charCodeAt(++i));
    if (hi < 0 || lo < 0) ok = false;
    out[j++] = (hi << 4) | lo;
  }
  if (!ok)
    throw new DrayError(
      "invalid_argument",
      "a uuid value is not in the 8-4-4-4-12 hexadecimal form; check the column's type",
    );
}

function formatUuid(b: Uint8Array): string {
  const h = (i: number) => HEX_BYTES[b[i] as number] as string;
  return `${h(0)}${h(1)}${h(2)}${h(3)}-${h(4)}${h(5)}-${h(6)}${h(7)}-${h(8)}${h(9)}-${h(10)}${h(11)}${h(12)}${h(13)}${h(14)}${h(15)}`;
}

/**
 * A keyed permutation of UUIDs that keeps the version nibble (high nibble of
 * byte 6) and the two top variant bits (of byte 8), and permutes the other 122
 * bits with a 10-round balanced Feistel network: 61-bit halves (each held as
 * 29 + 32 bits in Numbers), AES-256 round function (one block per round:
 * "U", the round number, the half fed in). A v4 UUID stays a valid v4 UUID;
 * output is lowercase 8-4-4-4-12.
 */
function uuidCodec(key: Uint8Array): KeyedCodec {
  const aes = new Aes256(key);
  const b = new Uint8Array(16);
  const run = (value: string, forward: boolean): string => {
    parseUuid(value, b);
    const b6 = b[6] as number;
    const b8 = b[8] as number;
    const word = (i: number) =>
      (((b[i] as number) << 24) |
        ((b[i + 1] as number) << 16) |
        ((b[i + 2] as number) << 8) |
        (b[i + 3] as number)) >>>
      0;
    // L: bytes 0–1, low nibble of 6, byte 7, bit 5 of byte 8 (29 bits) and bytes 2–5 (32 bits).
    let lHi =
      ((b[0] as number) << 21) |
      ((b[1] as number) << 13) |
      ((b6 & 0xf) << 9) |
      ((b[7] as number) << 1) |
      ((b8 >> 5) & 1);
    let lLo = word(2);
    // R: bits 0–4 of byte 8, bytes 9–11 (29 bits) and bytes 12–15 (32 bits).
    let rHi = ((b8 & 0x1f) << 24) | ((b[9] as number) << 16) | ((b[10] as number) << 8) | (b[11] as number);
    let rLo = word(12);
    for (let k = 0; k < 10; k++) {
      const i = forward ? k : 9 - k;
      // Encryption feeds R into round i, decryption L: block 0x55 ∥ i ∥ hi (4 bytes) ∥ lo (4 bytes) ∥ 0^6.
      const hi = forward ? rHi : lHi;
      const lo = forward ? rLo : lLo;
      const f = aes.encrypt((0x55 << 24) | (i << 16) | (hi >>> 16), (hi << 16) | (lo >>> 16), lo << 16, 0);
      const fHi = (f[0] as number) & MASK29;
      const fLo = f[1] as number;
      if (forward) {
        const nextHi = (lHi ^ fHi) >>> 0;
        const nextLo = (lLo ^ fLo) >>> 0;
        lHi = rHi;
        lLo = rLo;
        rHi = nextHi;
        rLo = nextLo;
      } else {
        const nextHi = (rHi ^ fHi) >>> 0;
        const nextLo = (rLo ^ fLo) >>> 0;
        rHi = lHi;
        rLo = lLo;
        lHi = nextHi;
        lLo = nextLo;
      }
    }
    b[0] = lHi >>> 21;
    b[1] = (lHi >>> 13) & 0xff;
    b[2] = lLo >>> 24;
    b[3] = (lLo >>> 16) & 0xff;
    b[4] = (lLo >>> 8) & 0xff;
    b[5] = lLo & 0xff;
    b[6] = (b6 & 0xf0) | ((lHi >>> 9) & 0xf);
    b[7] = (lHi >>> 1) & 0xff;
    b[8] = (b8 & 0xc0) | ((lHi & 1) << 5) | (rHi >>> 24);
    b[9] = (rHi >>> 16) & 0xff;
    b[10] = (rHi >>> 8) & 0xff;
    b[11] = rHi & 0xff;
    b[12] = rLo >>> 24;
    b[13] = (rLo >>> 16) & 0xff;
    b[14] = (rLo >>> 8) & 0xff;
    b[15] = rLo & 0xff;
    return formatUuid(b);
  };
  return { encrypt: (v) => run(v, true), decrypt: (v) => run(v, false) };
}

/**
 * The `permute` codec for a column type: `smallint`, `integer` and `bigint`
 * get a keyed permutation of the type's whole range, `uuid` one of UUIDs.
 */
export function permuteCodec(key: Uint8Array, columnType: string): KeyedCodec {
  const type = columnType.toLowerCase();
  const sub = subkey(key, `permute/${type}`);
  const bits = INTEGER_BITS[type];
  if (bits !== undefined) return integerCodec(sub, type, bits);
  if (type === "uuid") return uuidCodec(sub);
  throw new DrayError(
    "invalid_argument",
    `permute fits smallint, integer, bigint and uuid columns, not ${columnType}; use ff1 for digit or alphanumeric text`,
  );
}

/**
 * Factory of the `permute` transformer (no options): a keyed bijection of the
 * column type's range (integers) or of UUIDs.
 *
 * @example permuteFactory({}, key, "integer")("42") // e.g. "-1630208871"
 */
export function permuteFactory(
  options: Record<string, unknown>,
  key: Uint8Array,
  columnType: string,
): KeyedTransform {
  const unknown = Object.keys(options);
  if (unknown.length > 0)
    throw new DrayError("invalid_argument", `permute takes no options, got ${unknown.join(", ")}`);
  return permuteCodec(key, columnType).encrypt;
}

// ---------------------------------------------------------------- ff1

/** The alphabets ff1 encrypts; other characters stay where they are. */
export type Ff1Alphabet = "digits" | "alphanumeric";

const SHORT_MESSAGE =
  "ff1 needs at least 6 digits (or 4 alphanumerics) in a value; for short integer keys use permute instead";

function tooShort(): DrayError {
  return new DrayError("invalid_argument", SHORT_MESSAGE);
}

/** Numeral of a character in 0-9a-zA-Z order (radix 62), or -1. */
function numeral62(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 122) return c - 97 + 10;
  if (c >= 65 && c <= 90) return c - 65 + 36;
  return -1;
}

const CHARS62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/** Cycle walking: applies `step` until the result is in the set (the input must be in it). */
function walk(x: number[], step: (y: number[]) => number[], inSet: (y: number[]) => boolean): number[] {
  let y = step(x);
  while (!inSet(y)) y = step(y);
  return y;
}

const hasLetter36 = (y: number[]): boolean => y.some((d) => d >= 10);
const isMixed62 = (y: number[]): boolean => y.some((d) => d >= 10 && d < 36) && y.some((d) => d >= 36);

/**
 * ff1 on text: the characters of the alphabet, taken together as one string,
 * are encrypted; every other character (dashes, spaces) stays in place.
 *
 * Alphanumeric values fall in three disjoint classes, each mapped onto itself
 * so that the whole map stays a bijection (plain case-folding would not be:
 * "ab12" and "AB12" would collide whenever a letter's position turns to a digit):
 * - no uppercase letter: radix-36 FF1 (NIST), output lowercase;
 * - uppercase letters but no lowercase: case-folded radix-36 FF1, walked until
 *   the output has a letter, output uppercase;
 * - mixed case: radix-62 FF1 (0-9a-zA-Z), walked until the output is mixed case.
 */
function textCodec(key: Uint8Array, alphabet: Ff1Alphabet): KeyedCodec {
  const tweak = (label: string) => new TextEncoder().encode(`dray:ff1:${label}`);
  const digits = new Ff1(key, 10, tweak("digits"));
  const lower = new Ff1(key, 36, tweak("alphanumeric"));
  const mixed = new Ff1(key, 62, tweak("mixed-case"));
  const run = (value: string, forward: boolean): string => {
    const numerals: number[] = [];
    let upper = false;
    let lowerCase = false;
    for (let i = 0; i < value.length; i++) {
      const n = numeral62(value.charCodeAt(i));
      if (n < 0 || (alphabet === "digits" && n >= 10)) continue;
      if (n >= 36) upper = true;
      else if (n >= 10) lowerCase = true;
      numerals.push(n);
    }
    let out: number[];
    let offset = 0; // added to letters of the output: 26 makes them uppercase
    if (alphabet === "digits") {
      if (numerals.length < 6) throw tooShort();
      out = forward ? digits.encrypt(numerals) : digits.decrypt(numerals);
    } else if (numerals.length < 4) {
      throw tooShort();
    } else if (!upper) {
      out = forward ? lower.encrypt(numerals) : lower.decrypt(numerals);
    } else if (!lowerCase) {
      const folded = numerals.map((n) => (n >= 36 ? n - 26 : n));
      out = walk(folded, (y) => (forward ? lower.encrypt(y) : lower.decrypt(y)), hasLetter36);
      offset = 26;
    } else {
      out = walk(numerals, (y) => (forward ? mixed.encrypt(y) : mixed.decrypt(y)), isMixed62);
    }
    // The output: encrypted numerals in the alphabet's places, every other character kept.
    let text = "";
    let kept = 0;
    for (let i = 0, j = 0; i < value.length; i++) {
      const n = numeral62(value.charCodeAt(i));
      if (n < 0 || (alphabet === "digits" && n >= 10)) continue;
      const o = out[j++] as number;
      text += value.slice(kept, i) + (CHARS62[o >= 10 && o < 36 ? o + offset : o] as string);
      kept = i + 1;
    }
    return text + value.slice(kept);
  };
  return { encrypt: (v) => run(v, true), decrypt: (v) => run(v, false) };
}

/**
 * ff1 on an integer column: a permutation of the type's range that keeps the
 * sign. Non-negative x ↦ FF1 (radix 2) of x's binary digits, w = max(bits − 1,
 * 20) of them (2^20 is the smallest binary domain NIST allows), walked until
 * ≤ max: integer (w = 31) and bigint (w = 63) need no walking, smallint (w =
 * 20) about 32 steps, so its results are memoised (the range has 32,768
 * values). Negative x ↦ −1 − f(−1 − x).
 */
function integerFf1Codec(key: Uint8Array, columnType: string, bits: 16 | 32 | 64): KeyedCodec {
  const cipher = new Ff1(key, 2, new TextEncoder().encode(`dray:ff1:${columnType}`));
  if (bits === 64) return bigintFf1Codec(cipher, columnType);
  const width = Math.max(bits - 1, 20);
  const max = 2 ** (bits - 1) - 1;
  const digits = new Array<number>(width);
  const step = (y: number, forward: boolean): number => {
    for (let j = 0; j < width; j++) digits[j] = (y >>> (width - 1 - j)) & 1;
    const out = forward ? cipher.encrypt(digits) : cipher.decrypt(digits);
    let z = 0;
    for (let j = 0; j < width; j++) z = z * 2 + (out[j] as number);
    return z;
  };
  // Memoised results (smallint only): forward[x] and backward[f(x)], -1 while unknown.
  const forwardMemo = bits === 16 ? new Int32Array(max + 1).fill(-1) : undefined;
  const backwardMemo = bits === 16 ? new Int32Array(max + 1).fill(-1) : undefined;
  const f = (x: number, forward: boolean): number => {
    const memo = forward ? forwardMemo : backwardMemo;
    const known = memo?.[x] ?? -1;
    if (known >= 0) return known;
    let y = step(x, forward);
    while (y > max) y = step(y, forward);
    if (memo) {
      memo[x] = y;
      (forward ? backwardMemo : forwardMemo)![y] = x;
    }
    return y;
  };
  const run = (value: string, forward: boolean): string => {
    const x = parseSmallInteger(value, columnType, -max - 1, max);
    return String(x >= 0 ? f(x, forward) : -1 - f(-1 - x, forward));
  };
  return { encrypt: (v) => run(v, true), decrypt: (v) => run(v, false) };
}

/** {@link integerFf1Codec} for bigint: 63 binary digits, the high 31 and low 32 held in Numbers. */
function bigintFf1Codec(cipher: Ff1, columnType: string): KeyedCodec {
  const max = 2n ** 63n - 1n;
  const digits = new Array<number>(63);
  const f = (x: bigint, forward: boolean): bigint => {
    let hi = Number(x >> 32n);
    let lo = Number(x & 0xffffffffn);
    for (let j = 62; j >= 31; j--, lo = Math.floor(lo / 2)) digits[j] = lo % 2;
    for (let j = 30; j >= 0; j--, hi = Math.floor(hi / 2)) digits[j] = hi % 2;
    const out = forward ? cipher.encrypt(digits) : cipher.decrypt(digits);
    hi = 0;
    lo = 0;
    for (let j = 0; j < 31; j++) hi = hi * 2 + (out[j] as number);
    for (let j = 31; j < 63; j++) lo = lo * 2 + (out[j] as number);
    return (BigInt(hi) << 32n) | BigInt(lo);
  };
  const run = (value: string, forward: boolean): string => {
    const x = parseInteger(value, columnType, -max - 1n, max);
    return String(x >= 0n ? f(x, forward) : -1n - f(-1n - x, forward));
  };
  return { encrypt: (v) => run(v, true), decrypt: (v) => run(v, false) };
}

/**
 * Checks ff1's options without a key (for the registry's save-time check);
 * returns the alphabet, "digits" by default.
 */
export function validateFf1Options(options: Readonly<Record<string, unknown>>): Ff1Alphabet {
  const { alphabet = "digits", ...rest } = options;
  const unknown = Object.keys(rest);
  if (unknown.length > 0)
    throw new DrayError("invalid_argument", `ff1 takes only the option alphabet, got ${unknown.join(", ")}`);
  if (alphabet !== "digits" && alphabet !== "alphanumeric")
    throw new DrayError("invalid_argument", 'ff1 option alphabet must be "digits" or "alphanumeric"');
  return alphabet;
}

/**
 * The `ff1` codec for a column: text columns keep length, alphabet and the
 * place of other characters; smallint/integer/bigint columns get a
 * sign-keeping permutation of the type's range.
 */
export function ff1Codec(options: Record<string, unknown>, key: Uint8Array, columnType: string): KeyedCodec {
  const alphabet = validateFf1Options(options);
  const type = columnType.toLowerCase();
  const bits = INTEGER_BITS[type];
  if (bits !== undefined) {
    if (alphabet !== "digits")
      throw new DrayError(
        "invalid_argument",
        `ff1 on a ${type} column takes alphabet "digits"; remove the option (or use permute)`,
      );
    return integerFf1Codec(subkey(key, `ff1/${type}`), type, bits);
  }
  const isText =
    type === "text" ||
    type.startsWith("character") ||
    type === "citext" ||
    type === "name" ||
    type === "bpchar";
  if (!isText)
    throw new DrayError(
      "invalid_argument",
      `ff1 fits text and integer columns, not ${columnType}; use permute for uuid columns`,
    );
  return textCodec(subkey(key, "ff1"), alphabet);
}

/**
 * Factory of the `ff1` transformer (option alphabet: "digits" (default) or
 * "alphanumeric"): NIST FF1 format-preserving encryption with AES-256.
 *
 * @example ff1Factory({}, key, "text")("4111-1111-1111-1111") // e.g. "0386-5307-2218-9405"
 */
export function ff1Factory(
  options: Record<string, unknown>,
  key: Uint8Array,
  columnType: string,
): KeyedTransform {
  return ff1Codec(options, key, columnType).encrypt;
}
