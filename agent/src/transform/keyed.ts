import { createCipheriv, createHmac } from "node:crypto";
import { DrayError } from "@dray/common";
import { aesBlockCipher, Ff1 } from "./ff1.js";

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

/** Parses the 8-4-4-4-12 hex form (either case) into 16 bytes; never echoes the value. */
function parseUuid(value: string): Buffer {
  let ok = value.length === 36;
  let hex = "";
  for (let i = 0; ok && i < 36; i++) {
    const c = value.charCodeAt(i);
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 45) ok = false;
      continue;
    }
    const isHex = (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
    if (!isHex) ok = false;
    hex += value[i];
  }
  if (!ok)
    throw new DrayError(
      "invalid_argument",
      "a uuid value is not in the 8-4-4-4-12 hexadecimal form; check the column's type",
    );
  return Buffer.from(hex, "hex");
}

function formatUuid(bytes: Buffer): string {
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * A keyed permutation of UUIDs that keeps the version nibble (high nibble of
 * byte 6) and the two top variant bits (of byte 8), and permutes the other 122
 * bits with a 10-round balanced Feistel network: 61-bit halves (each held as
 * 29 + 32 bits in Numbers), AES-256 round function. A v4 UUID stays a valid
 * v4 UUID; output is lowercase 8-4-4-4-12.
 */
function uuidCodec(key: Uint8Array): KeyedCodec {
  const aes = aesBlockCipher(key);
  const block = Buffer.alloc(16);
  block[0] = 0x55; // "U": uuid
  const run = (value: string, forward: boolean): string => {
    const b = parseUuid(value);
    const at = (i: number) => b[i] ?? 0;
    // L: bytes 0–1, low nibble of 6, byte 7, bit 5 of byte 8 (29 bits) and bytes 2–5 (32 bits).
    let lHi = (at(0) << 21) | (at(1) << 13) | ((at(6) & 0xf) << 9) | (at(7) << 1) | ((at(8) >> 5) & 1);
    let lLo = b.readUInt32BE(2);
    // R: bits 0–4 of byte 8, bytes 9–11 (29 bits) and bytes 12–15 (32 bits).
    let rHi = ((at(8) & 0x1f) << 24) | (at(9) << 16) | (at(10) << 8) | at(11);
    let rLo = b.readUInt32BE(12);
    for (let k = 0; k < 10; k++) {
      const i = forward ? k : 9 - k;
      block[1] = i;
      // Encryption feeds R into round i, decryption L.
      block.writeUInt32BE(forward ? rHi : lHi, 2);
      block.writeUInt32BE(forward ? rLo : lLo, 6);
      const f = aes(block);
      const fHi = f.readUInt32BE(0) & MASK29;
      const fLo = f.readUInt32BE(4);
      if (forward) {
        [lHi, lLo, rHi, rLo] = [rHi, rLo, (lHi ^ fHi) >>> 0, (lLo ^ fLo) >>> 0];
      } else {
        [lHi, lLo, rHi, rLo] = [(rHi ^ fHi) >>> 0, (rLo ^ fLo) >>> 0, lHi, lLo];
      }
    }
    const out = Buffer.alloc(16);
    out[0] = lHi >>> 21;
    out[1] = (lHi >>> 13) & 0xff;
    out.writeUInt32BE(lLo, 2);
    out[6] = (at(6) & 0xf0) | ((lHi >>> 9) & 0xf);
    out[7] = (lHi >>> 1) & 0xff;
    out[8] = (at(8) & 0xc0) | ((lHi & 1) << 5) | (rHi >>> 24);
    out[9] = (rHi >>> 16) & 0xff;
    out[10] = (rHi >>> 8) & 0xff;
    out[11] = rHi & 0xff;
    out.writeUInt32BE(rLo, 12);
    return formatUuid(out);
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
    const at: number[] = [];
    const numerals: number[] = [];
    let upper = false;
    let lowerCase = false;
    for (let i = 0; i < value.length; i++) {
      const n = numeral62(value.charCodeAt(i));
      if (n < 0 || (alphabet === "digits" && n >= 10)) continue;
      if (n >= 36) upper = true;
      else if (n >= 10) lowerCase = true;
      at.push(i);
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
    const chars = value.split("");
    for (let j = 0; j < at.length; j++) {
      const n = out[j] ?? 0;
      chars[at[j] ?? 0] = CHARS62[n >= 10 && n < 36 ? n + offset : n] ?? "";
    }
    return chars.join("");
  };
  return { encrypt: (v) => run(v, true), decrypt: (v) => run(v, false) };
}

/**
 * ff1 on an integer column: a permutation of the type's range that keeps the
 * sign. Non-negative x ↦ FF1 (radix 10) of x zero-padded to the width of the
 * type's maximum (at least 6 digits), walked until ≤ max; negative x ↦ −1 − f(−1 − x).
 */
function integerFf1Codec(key: Uint8Array, columnType: string, bits: 16 | 32 | 64): KeyedCodec {
  const cipher = new Ff1(key, 10, new TextEncoder().encode(`dray:ff1:${columnType}`));
  const max = 2n ** BigInt(bits - 1) - 1n;
  const min = -max - 1n;
  const width = Math.max(6, String(max).length);
  const toDigits = (x: bigint) => Array.from(x.toString().padStart(width, "0"), (c) => c.charCodeAt(0) - 48);
  const fromDigits = (d: number[]) => BigInt(d.join(""));
  const inRange = (d: number[]) => fromDigits(d) <= max;
  const run = (value: string, forward: boolean): string => {
    const x = parseInteger(value, columnType, min, max);
    const step = (d: number[]) => (forward ? cipher.encrypt(d) : cipher.decrypt(d));
    const f = (y: bigint) => fromDigits(walk(toDigits(y), step, inRange));
    return String(x >= 0n ? f(x) : -1n - f(-1n - x));
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
