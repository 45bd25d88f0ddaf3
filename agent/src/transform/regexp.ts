/**
 * regexp_replace: replaces every match of an RE2 pattern, on re2js (a linear-time
 * engine, so no pattern can hang on any input). Patterns over 1,000 characters,
 * with backreferences or with lookaround are refused when validated, i.e. when
 * the pipeline is saved. Importing this module registers the transformer.
 */
import { DrayError } from "@dray/common";
import { RE2JS } from "re2js";
import { registerTransformer, type TransformOptions, type ValueTransform } from "./registry.js";

/** The longest pattern accepted, in characters. */
export const MAX_PATTERN_LENGTH = 1000;

/**
 * The largest compiled program accepted (RE2's measure of cost): matching is
 * linear in the input but proportional to this, so `[a-z]{1000}` repeated many
 * times is refused rather than slowing every value down.
 */
export const MAX_PROGRAM_SIZE = 5_000;

const FLAG_BITS: Readonly<Record<string, number>> = {
  i: RE2JS.CASE_INSENSITIVE,
  m: RE2JS.MULTILINE,
  s: RE2JS.DOTALL,
};

function invalid(message: string): DrayError {
  return new DrayError("invalid_argument", `transformer regexp_replace: ${message}`);
}

const LOOKAROUND: readonly [string, string][] = [
  ["(?=", "lookahead (?=…)"],
  ["(?!", "negative lookahead (?!…)"],
  ["(?<=", "lookbehind (?<=…)"],
  ["(?<!", "negative lookbehind (?<!…)"],
];

/**
 * Scans `pattern` for the constructs RE2 cannot run in linear time
 * (backreferences, lookaround) and throws a message saying what to do instead.
 * Skips escapes, character classes and \Q…\E literals.
 */
function refuseNonRegular(pattern: string): void {
  let inClass = false;
  let classStart = -1;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === "\\") {
      const next = pattern[i + 1] ?? "";
      if (next === "Q") {
        const end = pattern.indexOf("\\E", i + 2);
        i = end === -1 ? pattern.length : end + 1;
        continue;
      }
      if (
        !inClass &&
        ((next >= "1" && next <= "9") || (next === "k" && (pattern[i + 2] === "<" || pattern[i + 2] === "{")))
      )
        throw invalid(
          `option pattern has a backreference (\\${next}…) at character ${i + 1}, which a linear-time engine cannot match; capture the group and use $1… in the replacement instead`,
        );
      i++;
      continue;
    }
    if (inClass) {
      if (ch === "]" && i > classStart + 1 && !(i === classStart + 2 && pattern[classStart + 1] === "^"))
        inClass = false;
      continue;
    }
    if (ch === "[") {
      inClass = true;
      classStart = i;
      continue;
    }
    if (ch === "(") {
      for (const [prefix, what] of LOOKAROUND)
        if (pattern.startsWith(prefix, i))
          throw invalid(
            `option pattern has a ${what} at character ${i + 1}, which RE2 does not support; match the surrounding text in a group and put it back with $1… in the replacement`,
          );
    }
  }
}

function flagBits(flags: string): number {
  let bits = 0;
  for (const f of flags) {
    const bit = FLAG_BITS[f];
    if (bit === undefined)
      throw invalid(
        `option flags has unknown flag ${JSON.stringify(f)}; use i (case-insensitive), m (multi-line) or s (dot matches newline) — every match is always replaced`,
      );
    if ((bits & bit) !== 0) throw invalid(`option flags repeats ${f}`);
    bits |= bit;
  }
  return bits;
}

function compilePattern(options: TransformOptions): RE2JS {
  const pattern = options.pattern as string;
  if (pattern.length > MAX_PATTERN_LENGTH)
    throw invalid(
      `option pattern is ${pattern.length} characters, over the limit of ${MAX_PATTERN_LENGTH}; shorten it or split it into several rules`,
    );
  if (pattern.length === 0) throw invalid("option pattern is empty; give the text to match");
  refuseNonRegular(pattern);
  const bits = flagBits((options.flags as string | undefined) ?? "");
  let re: RE2JS;
  try {
    re = RE2JS.compile(pattern, bits);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw invalid(
      `option pattern is not a valid RE2 pattern (${reason}); see https://github.com/google/re2/wiki/Syntax`,
    );
  }
  if (re.programSize() > MAX_PROGRAM_SIZE)
    throw invalid(
      `option pattern is too complex (program size ${re.programSize()}, limit ${MAX_PROGRAM_SIZE}); use smaller repeat counts such as {1,20} instead of {1000}`,
    );
  return re;
}

/** Refuses $n in the replacement that names a group the pattern does not have. */
function checkReplacement(replacement: string, groups: number): void {
  for (let i = 0; i < replacement.length; i++) {
    if (replacement[i] !== "$") continue;
    const next = replacement[i + 1] ?? "";
    if (next === "$") {
      i++;
      continue;
    }
    if (next >= "1" && next <= "9" && Number(next) > groups)
      throw invalid(
        `option replacement refers to group $${next} but the pattern has ${groups} group(s); write $$ for a literal $`,
      );
  }
}

function validateRegexp(options: TransformOptions): void {
  const re = compilePattern(options);
  checkReplacement(options.replacement as string, re.groupCount());
}

/** The value function: every match replaced, $1… expanded (ECMAScript rules). */
function regexpReplace(options: TransformOptions): ValueTransform {
  const re = compilePattern(options);
  const replacement = options.replacement as string;
  checkReplacement(replacement, re.groupCount());
  return (value) => (re.test(value) ? re.matcher(value).replaceAll(replacement) : value);
}

registerTransformer("regexp_replace", { factory: regexpReplace, validate: validateRegexp });
