/**
 * Realistic, locale-aware fakes (first_name … company, email, phone) and the
 * `anonymize` pseudonym. Every output depends only on PRF(key, transformer
 * name, value): fakes index faker's locale definitions with PRF bytes (no
 * faker instance per value), anonymize runs a keyed permutation over the
 * value's shape. Registration lives in fakes-register.ts.
 */

import { DrayError, typeFamily } from "@dray/common";
import { de, en, fr, type LocaleDefinition } from "@faker-js/faker";
import { Aes256 } from "./ff1.js";
import type { Prf } from "./prf.js";

/** A compiled transformer: text form of a non-NULL value in, text (or NULL) out. */
export type ValueFn = (value: string) => string | null;

/** Compiles a nested transformer (used by the wrappers). */
export type Resolve = (name: string, options: unknown) => ValueFn;

/** A transformer factory in the shape fakes and wrappers are written against. */
export type FakeFactory = (
  options: Record<string, unknown>,
  prf: Prf,
  columnType: string,
  resolve: Resolve,
) => ValueFn;

function invalid(message: string): DrayError {
  return new DrayError("invalid_argument", message);
}

// --- locale data -------------------------------------------------------------

/** The locales fakes support. */
export const FAKE_LOCALES = ["en", "fr", "de"] as const;
export type FakeLocale = (typeof FAKE_LOCALES)[number];

interface LocaleData {
  firstNames: readonly string[];
  lastNames: readonly string[];
  def: LocaleDefinition;
  /** E.164 country calling code. */
  countryCode: string;
}

const COUNTRY_CODES: Record<FakeLocale, string> = { en: "1", fr: "33", de: "49" };
const DEFINITIONS: Record<FakeLocale, LocaleDefinition> = { en, fr, de };
const LOCALES = new Map<FakeLocale, LocaleData>();

/** Every string of an array, or of the arrays of an object (faker's generic/female/male). */
function strings(node: unknown): string[] {
  if (typeof node === "string") return [node];
  if (Array.isArray(node)) return node.flatMap(strings);
  if (node !== null && typeof node === "object") return Object.values(node).flatMap(strings);
  return [];
}

const LISTS = new Map<string, readonly string[]>();

/** The strings of `def[section][key]`, flattened once per locale. */
function list(data: LocaleData, section: string, key: string): readonly string[] {
  const id = `${data.countryCode}\0${section}\0${key}`;
  let found = LISTS.get(id);
  if (found === undefined) {
    const node = (data.def as Record<string, Record<string, unknown> | undefined>)[section]?.[key];
    found = strings(node);
    LISTS.set(id, found);
  }
  return found;
}

function localeData(locale: FakeLocale): LocaleData {
  let data = LOCALES.get(locale);
  if (data === undefined) {
    const def = DEFINITIONS[locale];
    data = {
      def,
      firstNames: [...new Set(strings(def.person?.first_name))],
      lastNames: [...new Set(strings(def.person?.last_name))],
      countryCode: COUNTRY_CODES[locale],
    };
    if (data.firstNames.length === 0 || data.lastNames.length === 0)
      throw new DrayError("internal", `faker locale ${locale} has no names`);
    LOCALES.set(locale, data);
  }
  return data;
}

function localeOption(name: string, options: Record<string, unknown>): FakeLocale {
  const locale = options.locale ?? "en";
  if (typeof locale !== "string" || !(FAKE_LOCALES as readonly string[]).includes(locale))
    throw invalid(`transformer ${name}: option locale must be one of ${FAKE_LOCALES.join(", ")}`);
  return locale as FakeLocale;
}

// --- PRF-driven picks ----------------------------------------------------------

/**
 * Deterministic picks for one value: 16-bit draws from PRF(key, name, value),
 * 32 bytes first, extended to 64 bytes by the PRF's counter mode when a fake
 * needs more than 16 draws.
 */
class Picker {
  private bytes: Buffer;
  /** The first 32 PRF bytes. */
  readonly digest: Buffer;
  private at = 0;
  constructor(
    private readonly prf: Prf,
    private readonly name: string,
    private readonly value: string,
    skip = 0,
  ) {
    this.bytes = prf.bytes(name, value);
    this.digest = this.bytes;
    this.at = skip;
  }

  /** 16 PRF bits. */
  draw(): number {
    if (this.at + 2 > this.bytes.length) {
      const next = this.bytes.length + 32;
      if (next > 256) throw new DrayError("internal", `fake ${this.name} needed too many random draws`);
      this.bytes = this.prf.bytes(this.name, this.value, next);
    }
    const v = this.bytes.readUInt16BE(this.at);
    this.at += 2;
    return v;
  }

  pick<T>(list: readonly T[]): T {
    return list[this.draw() % list.length]!;
  }

  /** `pattern` with `#` → 0-9 and `!` → 2-9. */
  digits(pattern: string): string {
    let out = "";
    for (const c of pattern) {
      if (c === "#") out += String(this.draw() % 10);
      else if (c === "!") out += String(2 + (this.draw() % 8));
      else out += c;
    }
    return out;
  }
}

/** Expands faker's `{{section.key}}` patterns against locale data. */
function expand(pattern: string, data: LocaleData, p: Picker, depth = 0): string {
  if (depth > 4) throw new DrayError("internal", "faker pattern nests too deep");
  let out = "";
  let at = 0;
  for (;;) {
    const open = pattern.indexOf("{{", at);
    if (open === -1) return out + pattern.slice(at);
    const close = pattern.indexOf("}}", open);
    if (close === -1) return out + pattern.slice(at);
    out += pattern.slice(at, open) + reference(pattern.slice(open + 2, close), data, p, depth);
    at = close + 2;
  }
}

function reference(ref: string, data: LocaleData, p: Picker, depth: number): string {
  switch (ref) {
    case "person.firstName":
    case "person.first_name":
      return p.pick(data.firstNames);
    case "person.lastName":
    case "person.last_name":
      return p.pick(data.lastNames);
    case "location.buildingNumber":
      return p.digits(p.pick(list(data, "location", "building_number")));
    case "location.street":
      return expand(p.pick(list(data, "location", "street_pattern")), data, p, depth + 1);
    case "location.secondaryAddress":
      return p.digits(p.pick(list(data, "location", "secondary_address")));
  }
  const dot = ref.indexOf(".");
  const options = list(data, ref.slice(0, dot), ref.slice(dot + 1));
  if (options.length === 0) throw new DrayError("internal", `faker locale data has no ${ref}`);
  return expand(p.pick(options), data, p, depth + 1);
}

// --- the fakes -------------------------------------------------------------------

type Fake = (data: LocaleData, p: Picker) => string;

function streetAddress(data: LocaleData, p: Picker): string {
  const address = data.def.location?.street_address as { normal?: string } | undefined;
  return expand(address?.normal ?? "{{location.buildingNumber}} {{location.street}}", data, p);
}

const PHONE_FORMATS = new Map<string, string[]>();

function phone(data: LocaleData, p: Picker): string {
  const cc = data.countryCode;
  let formats = PHONE_FORMATS.get(cc);
  if (formats === undefined) {
    formats = strings(
      (data.def.phone_number?.format as { international?: unknown } | undefined)?.international,
    );
    PHONE_FORMATS.set(cc, formats);
  }
  let number = formats.length > 0 ? p.digits(p.pick(formats)) : `+${cc}${p.digits("!#########")}`;
  let digits = "";
  for (const c of number) if (c >= "0" && c <= "9") digits += c;
  // The national number never starts with the trunk prefix 0.
  if (digits[cc.length] === "0") digits = `${cc}${1 + (p.draw() % 9)}${digits.slice(cc.length + 1)}`;
  number = `+${digits.slice(0, 15)}`;
  return number;
}

const FAKES: Record<string, Fake> = {
  first_name: (d, p) => p.pick(d.firstNames),
  last_name: (d, p) => p.pick(d.lastNames),
  full_name: (d, p) => `${p.pick(d.firstNames)} ${p.pick(d.lastNames)}`,
  phone,
  street_address: streetAddress,
  city: (d, p) => p.pick(list(d, "location", "city_name")),
  postcode: (d, p) => p.digits(p.pick(list(d, "location", "postcode"))),
  country: (d, p) => p.pick(list(d, "location", "country")),
  company: (d, p) => expand(p.pick(list(d, "company", "name_pattern")), d, p),
};

function fakeFactory(name: string, fake: Fake): FakeFactory {
  return (options, prf) => {
    const data = localeData(localeOption(name, options));
    return (value) => fake(data, new Picker(prf, name, value));
  };
}

// --- email -----------------------------------------------------------------------

/** Crockford base32, lowercase (no i, l, o, u). */
const TAG_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";
/** Characters of the tag: 12 × 5 = 60 bits. */
export const EMAIL_TAG_LENGTH = 12;

/** `name` folded to ASCII letters and digits, lowercase (Müller → muller, Zoë → zoe). */
export function asciiFold(name: string): string {
  const decomposed = name.normalize("NFKD").toLowerCase();
  let out = "";
  for (const c of decomposed) {
    if ((c >= "a" && c <= "z") || (c >= "0" && c <= "9")) out += c;
    else if (c === "ß") out += "ss";
    else if (c === "æ") out += "ae";
    else if (c === "ø") out += "o";
    else if (c === "œ") out += "oe";
  }
  return out === "" ? "x" : out;
}

function checkDomain(domain: unknown): string {
  if (domain === undefined) return "example.com";
  const ok =
    typeof domain === "string" &&
    domain.length > 0 &&
    domain.length <= 253 &&
    [...domain].every(
      (c) =>
        (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c === "-" || c === ".",
    ) &&
    !domain.startsWith(".") &&
    !domain.endsWith(".") &&
    !domain.includes("..");
  if (!ok)
    throw invalid(
      "transformer email: option domain must be a domain name such as example.com (letters, digits, - and .)",
    );
  return (domain as string).toLowerCase();
}

/** Checks email's options without a key (for the registry's `validate`). */
export function validateEmailOptions(options: Record<string, unknown>): void {
  localeOption("email", options);
  checkDomain(options.domain);
}

/**
 * `email`: `<first>.<last>.<tag>@<domain>`. The tag is 60 bits of
 * PRF(key, "email", value) in base32, so distinct inputs give distinct
 * addresses except with probability ~n²/2^61; the names come from the same
 * digest (bytes 8…).
 */
export const emailFactory: FakeFactory = (options, prf) => {
  const data = localeData(localeOption("email", options));
  const domain = checkDomain(options.domain);
  return (value) => {
    const p = new Picker(prf, "email", value, 8);
    const bytes = p.digest;
    // 60 bits: bytes 0..7 (64 bits), the top 60 as 12 five-bit groups.
    const hi = bytes.readUInt32BE(0);
    const lo = bytes.readUInt32BE(4);
    let tag = "";
    for (let i = 0; i < EMAIL_TAG_LENGTH; i++) {
      // Group i covers bits [64-5(i+1), 64-5i) of hi:lo.
      const start = 64 - 5 * (i + 1);
      let v: number;
      if (start >= 32) v = (hi >>> (start - 32)) & 31;
      else if (start + 5 <= 32) v = (lo >>> start) & 31;
      else v = ((hi << (32 - start)) | (lo >>> start)) & 31;
      tag += TAG_ALPHABET[v];
    }
    return `${asciiFold(p.pick(data.firstNames))}.${asciiFold(p.pick(data.lastNames))}.${tag}@${domain}`;
  };
};

// --- anonymize ---------------------------------------------------------------------

const LOWER = "abcdefghijklmnopqrstuvwxyz";
const UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS = "0123456789";
const NONZERO = "123456789";
const HEX = "0123456789abcdef";
const VARIANT = "89ab";
const ROUNDS = 8;
/** Domains up to 2^60 values are permuted (bijective); larger ones are re-drawn from PRF bits (≥ 60 bits). */
const PERMUTE_LIMIT = 2n ** 60n;
/** The PRF's transformer name for anonymize's derived keys and shape tags (no catalogue name has a "/"). */
const ROUNDS_LABEL = "anonymize/rounds";

/**
 * A value as kept characters plus slots, each drawn from an alphabet. Slots
 * are UTF-16 positions in `value`; every other character is kept as it is.
 */
interface Shape {
  value: string;
  slots: number[];
  alphabets: string[];
  /** Each slot's character as its index in the slot's alphabet. */
  digits: number[];
  /** Names the shape: the value with every slot replaced by its alphabet's first character. */
  tweak: string;
}

function sqrtCeil(n: bigint): bigint {
  if (n < 2n) return n;
  let x = BigInt(Math.ceil(Math.sqrt(Number(n))));
  while (x * x < n) x++;
  while ((x - 1n) * (x - 1n) >= n) x--;
  return x;
}

/** Round tables are kept for halves up to this size (8 × 4 bytes per entry). */
const TABLE_MAX_HALF = 65536;
/** Round tables are built for a shape once it has been seen this often. */
const TABLE_AFTER_USES = 16;
/** The total table entries kept per PRF before the tables are dropped (64 MB). */
const TABLE_BUDGET = 16 * 1024 * 1024;
/** Shapes remembered per PRF before the memory is dropped. */
const SHAPES_MAX = 100_000;

/** One domain's (tweak's) round-function state. */
interface ShapeRounds {
  /** The tweak's 128-bit tag: the first 16 bytes of PRF(key, "anonymize/rounds", tweak). */
  tag0: number;
  tag1: number;
  tag2: number;
  tag3: number;
  uses: number;
  /** Memoised round outputs (p per round, -1 = not computed), for small halves seen often. */
  table: Int32Array | undefined;
}

/**
 * anonymize's keyed round functions, one per PRF. Round r of the domain named
 * `tweak` maps a half h ∈ [0, p) to AES-256_K(tag(tweak) ⊕ (r, h)) reduced
 * modulo p (52 bits of the block, bias below 2^-20 for p < 2^32), where K and
 * the 128-bit tag are HMAC-SHA256 outputs of the key (see {@link Prf}): one
 * HMAC per new shape, then one AES block per round instead of one HMAC.
 * Distinct (r, h) give distinct AES inputs, so each round of each shape is a
 * keyed pseudo-random function. Shapes whose halves are small and seen often
 * (codes, names, phone numbers) memoise the outputs in tables.
 */
class RoundFunctions {
  private readonly aes: Aes256;
  /** The stream for domains too large to permute: AES-256 keyed apart from the rounds. */
  readonly stream: Aes256;
  private readonly shapes = new Map<string, ShapeRounds>();
  private entries = 0;

  constructor(private readonly prf: Prf) {
    this.aes = new Aes256(prf.bytes(ROUNDS_LABEL, "\0round key"));
    this.stream = new Aes256(prf.bytes(ROUNDS_LABEL, "\0stream key"));
  }

  /** The round state of `tweak` (a domain whose halves are in [0, p)). */
  shape(tweak: string, p: number): ShapeRounds {
    let shape = this.shapes.get(tweak);
    if (shape === undefined) {
      if (this.shapes.size >= SHAPES_MAX) {
        this.shapes.clear();
        this.entries = 0;
      }
      const tag = this.prf.bytes(ROUNDS_LABEL, tweak, 16);
      shape = {
        tag0: tag.readInt32BE(0),
        tag1: tag.readInt32BE(4),
        tag2: tag.readInt32BE(8),
        tag3: tag.readInt32BE(12),
        uses: 0,
        table: undefined,
      };
      this.shapes.set(tweak, shape);
    }
    if (shape.table === undefined && p <= TABLE_MAX_HALF && ++shape.uses >= TABLE_AFTER_USES) {
      if (this.entries + ROUNDS * p > TABLE_BUDGET) {
        for (const other of this.shapes.values()) other.table = undefined;
        this.entries = 0;
      }
      shape.table = new Int32Array(ROUNDS * p).fill(-1);
      this.entries += ROUNDS * p;
    }
    return shape;
  }

  /** Round `r` of `shape` at `half` (< p ≤ 2^53), in [0, p). */
  round(shape: ShapeRounds, r: number, half: number, p: number): number {
    const table = shape.table;
    if (table !== undefined) {
      const at = r * p + half;
      const known = table[at]!;
      if (known >= 0) return known;
      const f = this.compute(shape, r, half, p);
      table[at] = f;
      return f;
    }
    return this.compute(shape, r, half, p);
  }

  private compute(shape: ShapeRounds, r: number, half: number, p: number): number {
    const o = this.aes.encrypt(
      shape.tag0 ^ r,
      shape.tag1,
      shape.tag2 ^ Math.floor(half / 4294967296),
      shape.tag3 ^ half,
    );
    return ((o[0]! >>> 0) * 2 ** 20 + (o[1]! >>> 12)) % p;
  }
}

const ROUND_FUNCTIONS = new WeakMap<Prf, RoundFunctions>();

function roundFunctions(prf: Prf): RoundFunctions {
  let rounds = ROUND_FUNCTIONS.get(prf);
  if (rounds === undefined) {
    rounds = new RoundFunctions(prf);
    ROUND_FUNCTIONS.set(prf, rounds);
  }
  return rounds;
}

/**
 * A keyed permutation of [0, n): a Feistel network over Z_p × Z_p (p = ⌈√n⌉)
 * with keyed round functions (8 rounds, see {@link RoundFunctions}),
 * cycle-walked into [0, n). Bijective for every key and tweak; the tweak
 * names the domain (the value's shape).
 */
export function permuteIndex(prf: Prf, tweak: string, n: bigint, x: bigint): bigint {
  if (n <= 1n) return x;
  if (n <= 2n ** 52n) return BigInt(permuteSmall(prf, tweak, Number(n), Number(x)));
  const p = sqrtCeil(n);
  const pn = Number(p);
  const rounds = roundFunctions(prf);
  const shape = rounds.shape(tweak, pn);
  let y = x;
  do {
    let left = Number(y / p);
    let right = Number(y % p);
    for (let r = 0; r < ROUNDS; r++) {
      const next = (left + rounds.round(shape, r, right, pn)) % pn;
      left = right;
      right = next;
    }
    y = BigInt(left) * p + BigInt(right);
  } while (y >= n);
  return y;
}

/** {@link permuteIndex} for n ≤ 2^52, in doubles. */
function permuteSmall(prf: Prf, tweak: string, n: number, x: number): number {
  if (n <= 1) return x;
  let p = Math.ceil(Math.sqrt(n));
  while (p * p < n) p++;
  while ((p - 1) * (p - 1) >= n) p--;
  const rounds = roundFunctions(prf);
  const shape = rounds.shape(tweak, p);
  let y = x;
  do {
    let left = Math.floor(y / p);
    let right = y % p;
    for (let r = 0; r < ROUNDS; r++) {
      const next = (left + rounds.round(shape, r, right, p)) % p;
      left = right;
      right = next;
    }
    y = left * p + right;
  } while (y >= n);
  return y;
}

/** The shape's value with slot i set to `alphabets[i][picks[i]]`. */
function fill(shape: Shape, picks: ArrayLike<number>): string {
  const { value, slots, alphabets } = shape;
  let text = "";
  let kept = 0;
  for (let i = 0; i < slots.length; i++) {
    const at = slots[i]!;
    text += value.slice(kept, at) + alphabets[i]![picks[i]!]!;
    kept = at + 1;
  }
  return text + value.slice(kept);
}

/** The mixed-radix digits of `index` (last slot least significant), in doubles. */
function picksOf(shape: Shape, index: number): number[] {
  const picks = new Array<number>(shape.slots.length);
  for (let i = picks.length - 1; i >= 0; i--) {
    const radix = shape.alphabets[i]!.length;
    picks[i] = index % radix;
    index = Math.floor(index / radix);
  }
  return picks;
}

/** {@link picksOf} in BigInt arithmetic. */
function picksOfBig(shape: Shape, index: bigint): number[] {
  const picks = new Array<number>(shape.slots.length);
  for (let i = picks.length - 1; i >= 0; i--) {
    const radix = BigInt(shape.alphabets[i]!.length);
    picks[i] = Number(index % radix);
    index /= radix;
  }
  return picks;
}

/**
 * The shape's slots re-drawn: a permutation of the shape's domain when it has
 * at most 2^60 values, else drawn from the PRF of the whole value (16 bits per
 * slot, over more than 2^60 outputs): the HMAC digest's 16 words, then AES-256
 * blocks of the digest's first half ⊕ j (j = 1, 2, …) under the stream key.
 */
function pseudonym(prf: Prf, shape: Shape): string {
  const { alphabets, digits } = shape;
  let size = 1;
  for (const a of alphabets) size *= a.length;
  if (size <= 2 ** 52) {
    // Exact: a product of integers that stays below 2^53.
    let index = 0;
    for (let i = 0; i < digits.length; i++) index = index * alphabets[i]!.length + digits[i]!;
    return fill(shape, picksOf(shape, permuteSmall(prf, shape.tweak, size, index)));
  }
  if (size < 2 ** 62) {
    let exact = 1n;
    for (const a of alphabets) exact *= BigInt(a.length);
    if (exact <= PERMUTE_LIMIT) {
      let index = 0n;
      for (let i = 0; i < digits.length; i++)
        index = index * BigInt(alphabets[i]!.length) + BigInt(digits[i]!);
      return fill(shape, picksOfBig(shape, permuteIndex(prf, shape.tweak, exact, index)));
    }
  }
  const digest = prf.bytes("anonymize", `${shape.tweak}\0${shape.value}`);
  const stream = roundFunctions(prf).stream;
  const d0 = digest.readInt32BE(0);
  const d1 = digest.readInt32BE(4);
  const d2 = digest.readInt32BE(8);
  const d3 = digest.readInt32BE(12);
  const picks = new Array<number>(digits.length);
  let block: Int32Array | undefined;
  for (let i = 0; i < picks.length; i++) {
    let word: number;
    if (i < 16) word = digest.readUInt16BE(2 * i);
    else {
      const j = i - 16;
      if (j % 8 === 0) block = stream.encrypt(d0, d1, d2, d3 ^ (j / 8 + 1));
      const w = block![(j % 8) >> 1]!;
      word = j % 2 === 0 ? w >>> 16 : w & 0xffff;
    }
    picks[i] = word % alphabets[i]!.length;
  }
  return fill(shape, picks);
}

/** Text: ASCII letters → letters (case kept), digits → digits, everything else kept. */
function textShape(value: string): Shape {
  const slots: number[] = [];
  const alphabets: string[] = [];
  const digits: number[] = [];
  let marked = "";
  let kept = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    let alphabet: string;
    let digit: number;
    if (c >= 97 && c <= 122) {
      alphabet = LOWER;
      digit = c - 97;
    } else if (c >= 65 && c <= 90) {
      alphabet = UPPER;
      digit = c - 65;
    } else if (c >= 48 && c <= 57) {
      alphabet = DIGITS;
      digit = c - 48;
    } else continue;
    slots.push(i);
    alphabets.push(alphabet);
    digits.push(digit);
    marked += value.slice(kept, i) + alphabet[0];
    kept = i + 1;
  }
  return { value, slots, alphabets, digits, tweak: `text\0${marked}${value.slice(kept)}` };
}

function shapeOf(kind: string, value: string, slots: number[], alphabets: string[]): Shape {
  const digits = slots.map((at, i) => alphabets[i]!.indexOf(value[at]!));
  const marked = [...value];
  for (let i = 0; i < slots.length; i++) marked[slots[i]!] = alphabets[i]![0]!;
  return { value, slots, alphabets, digits, tweak: `${kind}\0${marked.join("")}` };
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= "0" && c <= "9";
}

/** Numeric: the mantissa's digits, a leading integer digit stays non-zero; sign, point, exponent kept. */
function numericShape(value: string): Shape {
  const slots: number[] = [];
  const alphabets: string[] = [];
  let i = value[0] === "-" || value[0] === "+" ? 1 : 0;
  const intStart = i;
  while (isDigit(value[i])) i++;
  const intDigits = i - intStart;
  for (let j = intStart; j < i; j++) {
    slots.push(j);
    alphabets.push(j === intStart && intDigits > 1 ? NONZERO : DIGITS);
  }
  if (value[i] === ".") {
    i++;
    while (isDigit(value[i])) {
      slots.push(i);
      alphabets.push(DIGITS);
      i++;
    }
  }
  return shapeOf("numeric", value, slots, alphabets);
}

function uuidShape(value: string): Shape | undefined {
  const lower = value.toLowerCase();
  if (lower.length !== 36) return undefined;
  const slots: number[] = [];
  const alphabets: string[] = [];
  const digits: number[] = [];
  let marked = "";
  for (let i = 0; i < 36; i++) {
    const c = lower.charCodeAt(i);
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 45) return undefined;
      marked += "-";
      continue;
    }
    const digit = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1;
    if (digit < 0) return undefined;
    if (i === 14) {
      marked += lower[i]; // the version nibble, kept
      continue;
    }
    const variant = i === 19 && digit >= 8 && digit <= 11;
    slots.push(i);
    alphabets.push(variant ? VARIANT : HEX);
    digits.push(variant ? digit - 8 : digit);
    marked += variant ? "8" : "0";
  }
  return { value: lower, slots, alphabets, digits, tweak: `uuid\0${marked}` };
}

const INTEGER_MAX: Record<string, bigint> = {
  smallint: 32767n,
  integer: 2147483647n,
  bigint: 9223372036854775807n,
};

/** Integers: sign and digit count kept, within the column type's range; a permutation of that range. */
function anonymizeInteger(prf: Prf, value: string, columnType: string): string | undefined {
  const negative = value.startsWith("-");
  const digits = negative ? value.slice(1) : value;
  if (digits.length === 0 || digits.length > 19 || ![...digits].every(isDigit)) return undefined;
  if (digits.length > 1 && digits[0] === "0") return undefined;
  const max = INTEGER_MAX[columnType.toLowerCase()] ?? INTEGER_MAX.bigint!;
  const bound = negative ? max + 1n : max;
  const d = digits.length;
  const low = d === 1 ? (negative ? 1n : 0n) : 10n ** BigInt(d - 1);
  let high = 10n ** BigInt(d) - 1n;
  if (high > bound) high = bound;
  const v = BigInt(digits);
  if (v > high) return undefined;
  const out =
    low + permuteIndex(prf, `integer\0${negative ? "-" : "+"}${d}\0${high}`, high - low + 1n, v - low);
  return `${negative ? "-" : ""}${out}`;
}

const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function isLeap(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

function twoDigits(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/**
 * Dates (`YYYY-MM-DD[ BC]`) and timestamps (`YYYY-MM-DD HH:MM:SS[.f…][±zz[:zz]][ BC]`):
 * the day of the year (and the time of day, to the input's precision) are
 * permuted within the year; the year, era, offset and precision are kept.
 */
function anonymizeDate(prf: Prf, value: string, withTime: boolean): string | undefined {
  let body = value;
  let era = "";
  if (body.endsWith(" BC")) {
    era = " BC";
    body = body.slice(0, -3);
  }
  const dash = body.indexOf("-", 4);
  if (dash < 4) return undefined;
  const yearText = body.slice(0, dash);
  if (![...yearText].every(isDigit)) return undefined;
  if (body[dash + 3] !== "-") return undefined;
  const monthText = body.slice(dash + 1, dash + 3);
  const dayText = body.slice(dash + 4, dash + 6);
  if (![...monthText, ...dayText].every(isDigit)) return undefined;
  const year = Number(yearText);
  const month = Number(monthText);
  const day = Number(dayText);
  // BC years are 1-based: 1 BC is astronomical year 0, a leap year.
  const leap = isLeap(era === "" ? year : 1 - year);
  const monthDays = (m: number) => (m === 2 && leap ? 29 : MONTH_DAYS[m - 1]!);
  if (month < 1 || month > 12 || day < 1 || day > monthDays(month)) return undefined;
  let dayOfYear = day - 1;
  for (let m = 1; m < month; m++) dayOfYear += monthDays(m);
  const days = leap ? 366 : 365;

  let rest = body.slice(dash + 6);
  let seconds = 0;
  let fraction = "";
  let zone = "";
  let n = BigInt(days);
  let index = BigInt(dayOfYear);
  if (withTime) {
    if (rest.length === 0) return undefined;
    if (rest[0] !== " " || rest[3] !== ":" || rest[6] !== ":") return undefined;
    const hms = [rest.slice(1, 3), rest.slice(4, 6), rest.slice(7, 9)];
    if (!hms.every((t) => t.length === 2 && isDigit(t[0]) && isDigit(t[1]))) return undefined;
    const [h, mi, s] = hms.map(Number) as [number, number, number];
    if (h > 23 || mi > 59 || s > 59) return undefined;
    seconds = h * 3600 + mi * 60 + s;
    rest = rest.slice(9);
    if (rest[0] === ".") {
      let i = 1;
      while (isDigit(rest[i])) i++;
      fraction = rest.slice(1, i);
      rest = rest.slice(i);
    }
    zone = rest;
    rest = "";
    const scale = 10n ** BigInt(fraction.length);
    n = BigInt(days) * 86400n * scale;
    index =
      (BigInt(dayOfYear) * 86400n + BigInt(seconds)) * scale + (fraction === "" ? 0n : BigInt(fraction));
  } else if (rest !== "") return undefined;

  const kind = withTime ? `timestamp\0${fraction.length}` : "date";
  let out = permuteIndex(prf, `${kind}\0${yearText}${era}`, n, index);
  let outFraction = "";
  let outSeconds = 0;
  if (withTime) {
    const scale = 10n ** BigInt(fraction.length);
    if (fraction !== "") outFraction = `.${(out % scale).toString().padStart(fraction.length, "0")}`;
    out /= scale;
    outSeconds = Number(out % 86400n);
    out /= 86400n;
  }
  let d = Number(out);
  let m = 1;
  while (d >= monthDays(m)) {
    d -= monthDays(m);
    m++;
  }
  let text = `${yearText}-${twoDigits(m)}-${twoDigits(d + 1)}`;
  if (withTime) {
    const h = Math.floor(outSeconds / 3600);
    const mi = Math.floor((outSeconds % 3600) / 60);
    text += ` ${twoDigits(h)}:${twoDigits(mi)}:${twoDigits(outSeconds % 60)}${outFraction}${zone}`;
  }
  return text + era;
}

/**
 * `anonymize`: a keyed pseudonym of the same type and shape.
 * - text: ASCII letters → letters (case kept), digits → digits, other characters
 *   (punctuation, spaces, non-ASCII letters) kept; same length.
 * - integer: sign and digit count kept, within the column type's range.
 * - numeric: every mantissa digit re-drawn, sign, point, scale and exponent kept.
 * - uuid: a uuid, version nibble (and RFC 4122 variant bits) kept.
 * - date / timestamp: a keyed date (and time) in the same year.
 * Uniqueness: values are grouped by shape (the kept characters and each slot's
 * class); within a shape whose domain has at most 2^60 values the mapping is a
 * keyed permutation (no collisions at all), larger domains are re-drawn from
 * PRF bits of the whole value over more than 2^60 outputs. Distinct shapes never collide. So distinct
 * inputs give distinct outputs except with probability below 2^-60 per pair.
 * Values it cannot parse for their type ("infinity", "NaN") are kept.
 */
export const anonymizeFactory: FakeFactory = (_options, prf, columnType) => {
  const family = typeFamily(columnType) ?? "text";
  return (value) => {
    switch (family) {
      case "integer":
        return anonymizeInteger(prf, value, columnType) ?? pseudonym(prf, textShape(value));
      case "numeric":
        return pseudonym(prf, numericShape(value));
      case "uuid": {
        const shape = uuidShape(value);
        if (shape === undefined) throw invalid("transformer anonymize: the value is not a uuid");
        return pseudonym(prf, shape);
      }
      case "date":
      case "timestamp": {
        if (value === "infinity" || value === "-infinity") return value;
        const out = anonymizeDate(prf, value, family === "timestamp");
        if (out === undefined)
          throw invalid(
            `transformer anonymize: the ${family} is not in ISO form (YYYY-MM-DD…); set DateStyle to ISO on the source`,
          );
        return out;
      }
      default:
        return pseudonym(prf, textShape(value));
    }
  };
};

/** Every fake and anonymize, by catalogue name, in the brief's factory shape. */
export const FAKE_FACTORIES: Readonly<Record<string, FakeFactory>> = {
  ...Object.fromEntries(Object.entries(FAKES).map(([name, fake]) => [name, fakeFactory(name, fake)])),
  email: emailFactory,
  anonymize: anonymizeFactory,
};

/** Checks a fake's options without a key (for the registry's `validate`). */
export function validateFakeOptions(name: string, options: Record<string, unknown>): void {
  if (name === "email") validateEmailOptions(options);
  else if (name !== "anonymize") localeOption(name, options);
}
