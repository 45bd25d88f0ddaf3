/**
 * The simple transformers: null, constant, mask, hash, char_scramble and choice.
 * Importing this module registers them.
 */
import { DrayError } from "@dray/common";
import type { Prf } from "./prf.js";
import { registerTransformer, type TransformOptions, type ValueTransform } from "./registry.js";

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";
const HEX_LENGTH = 64;
const BASE32_LENGTH = 52;
/** The fewest hash characters kept: 16 hex characters are 64 bits. */
export const MIN_HASH_LENGTH = 16;

function invalid(message: string): DrayError {
  return new DrayError("invalid_argument", message);
}

/** RFC 4648 base32, lowercase, unpadded. */
export function base32(bytes: Uint8Array): string {
  let out = "";
  let bits = 0;
  let acc = 0;
  for (const byte of bytes) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += BASE32[(acc >>> bits) & 31];
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32[(acc << (5 - bits)) & 31];
  return out;
}

// --- null, constant --------------------------------------------------------

registerTransformer("null", () => () => null);

registerTransformer("constant", (options) => {
  const value = options.value as string;
  return () => value;
});

// --- mask ------------------------------------------------------------------

function validateMask(options: TransformOptions): void {
  for (const name of ["keepFirst", "keepLast"]) {
    const n = options[name];
    if (n !== undefined && (n as number) < 0)
      throw invalid(`transformer mask: option ${name} must be 0 or more`);
  }
  const char = options.char;
  if (char !== undefined && [...(char as string)].length !== 1)
    throw invalid("transformer mask: option char must be exactly one character, e.g. *");
}

/**
 * Masks every character (code point) but the first `keepFirst` and last
 * `keepLast`. When those would keep the whole value, every character is masked.
 */
function mask(options: TransformOptions): ValueTransform {
  const keepFirst = (options.keepFirst as number | undefined) ?? 0;
  const keepLast = (options.keepLast as number | undefined) ?? 0;
  const char = (options.char as string | undefined) ?? "*";
  return (value) => {
    const chars = [...value];
    const n = chars.length;
    if (keepFirst + keepLast >= n) return char.repeat(n);
    return (
      chars.slice(0, keepFirst).join("") +
      char.repeat(n - keepFirst - keepLast) +
      chars.slice(n - keepLast).join("")
    );
  };
}

registerTransformer("mask", { factory: mask, validate: validateMask });

// --- hash ------------------------------------------------------------------

function validateHash(options: TransformOptions): void {
  const encoding = options.encoding ?? "hex";
  if (encoding !== "hex" && encoding !== "base32")
    throw invalid("transformer hash: option encoding must be hex or base32");
  const length = options.length as number | undefined;
  const max = encoding === "hex" ? HEX_LENGTH : BASE32_LENGTH;
  if (length !== undefined && (length < MIN_HASH_LENGTH || length > max))
    throw invalid(
      `transformer hash: option length must be between ${MIN_HASH_LENGTH} (64 bits, so distinct values stay distinct) and ${max} for ${encoding}`,
    );
}

function hashTransform(options: TransformOptions, { prf }: { prf: Prf }): ValueTransform {
  const base = options.encoding === "base32";
  const length = (options.length as number | undefined) ?? (base ? BASE32_LENGTH : HEX_LENGTH);
  if (base) return (value) => base32(prf.bytes("hash", value)).slice(0, length);
  const bytes = Math.ceil(length / 2);
  return (value) => prf.bytes("hash", value, bytes).toString("hex").slice(0, length);
}

registerTransformer("hash", { factory: hashTransform, validate: validateHash });

// --- char_scramble -----------------------------------------------------------

const UPPER_A = 65;
const LOWER_A = 97;
const DIGIT_0 = 48;

function isCased(ch: string): "upper" | "lower" | undefined {
  const lower = ch.toLowerCase();
  const upper = ch.toUpperCase();
  if (lower === upper) return undefined;
  return ch === upper ? "upper" : ch === lower ? "lower" : undefined;
}

/**
 * Letters to letters, digits to digits, keyed by the whole value and the
 * position: one PRF call over the value gives a byte per character (one
 * HMAC up to 32 characters; modulo bias under 3%, irrelevant for a lossy mask). ASCII
 * letters keep their case; other cased letters (é, Ж) become an ASCII letter
 * of the same case; digits stay digits; everything else is kept.
 */
function charScramble({ prf }: { prf: Prf }): ValueTransform {
  return (value) => {
    const stream = prf.bytes("char_scramble", value, Math.max(32, value.length));
    let out = "";
    let i = 0;
    for (const ch of value) {
      const code = ch.codePointAt(0) as number;
      const r = stream[i++] as number;
      if (code >= DIGIT_0 && code <= DIGIT_0 + 9) {
        out += String.fromCharCode(DIGIT_0 + ((code - DIGIT_0 + 1 + (r % 9)) % 10));
      } else if (code >= UPPER_A && code <= UPPER_A + 25) {
        out += String.fromCharCode(UPPER_A + ((code - UPPER_A + 1 + (r % 25)) % 26));
      } else if (code >= LOWER_A && code <= LOWER_A + 25) {
        out += String.fromCharCode(LOWER_A + ((code - LOWER_A + 1 + (r % 25)) % 26));
      } else if (code < 128) {
        out += ch;
      } else {
        const cased = isCased(ch);
        if (cased === undefined) out += ch;
        else out += String.fromCharCode((cased === "upper" ? UPPER_A : LOWER_A) + (r % 26));
      }
    }
    return out;
  };
}

registerTransformer("char_scramble", (_options, context) => charScramble(context));

// --- choice ------------------------------------------------------------------

function validateChoice(options: TransformOptions): void {
  if ((options.values as string[]).length === 0)
    throw invalid("transformer choice: option values must list at least one value");
}

registerTransformer("choice", {
  factory: (options, { prf }) => {
    const values = [...(options.values as string[])];
    return (value) => values[prf.index("choice", value, values.length)] as string;
  },
  validate: validateChoice,
});
