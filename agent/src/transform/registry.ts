/**
 * The registry of transformer implementations, and option validation against
 * the catalogue (@dray/common's TRANSFORMERS). Implementation modules (simple,
 * regexp, noise, fakes, wrappers, keyed) call {@link registerTransformer} when
 * imported; this module imports none of them.
 */
import {
  DrayError,
  fitsType,
  type TransformerInfo,
  type TransformerOption,
  transformerInfo,
  typeFamily,
} from "@dray/common";
import type { Prf } from "./prf.js";

/** A compiled transformer: the text form of a non-NULL value in, the text form (or NULL) out. */
export type ValueTransform = (value: string) => string | null;

/** Validated options of a transformer (defaults not filled in). */
export type TransformOptions = Readonly<Record<string, unknown>>;

/** What a factory gets besides its options. */
export interface TransformContext {
  /** The transformer's name, as registered. */
  readonly name: string;
  /** The keyed PRF of the source agent. */
  readonly prf: Prf;
  /** The column's type as `format_type` prints it, e.g. `character varying(80)`. */
  readonly columnType: string;
}

/** Builds the value function of a transformer from validated options. */
export type TransformerFactory = (options: TransformOptions, context: TransformContext) => ValueTransform;

/** A registered transformer implementation. */
export interface TransformerImplementation {
  factory: TransformerFactory;
  /**
   * Checks beyond the catalogue's option types (ranges, patterns), without a
   * key; throws DrayError("invalid_argument", …) naming the transformer and option.
   */
  validate?: (options: TransformOptions) => void;
}

/** Every registered implementation, by transformer name. */
export const TRANSFORMER_REGISTRY: Map<string, TransformerImplementation> = new Map();

/**
 * Registers the implementation of a catalogue transformer. `factory` may be a
 * bare factory or `{ factory, validate }`. Throws when the name is not in the
 * catalogue or is registered twice.
 */
export function registerTransformer(
  name: string,
  implementation: TransformerFactory | TransformerImplementation,
): void {
  if (transformerInfo(name) === undefined)
    throw new DrayError(
      "internal",
      `transformer ${name} is not in the catalogue (common/src/transformers.ts)`,
    );
  if (TRANSFORMER_REGISTRY.has(name))
    throw new DrayError("internal", `transformer ${name} is registered twice`);
  TRANSFORMER_REGISTRY.set(
    name,
    typeof implementation === "function" ? { factory: implementation } : implementation,
  );
}

function invalid(message: string): DrayError {
  return new DrayError("invalid_argument", message);
}

function describeType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return `a ${typeof value}`;
}

function checkOption(transformer: string, option: TransformerOption, value: unknown): void {
  const where = `transformer ${transformer}: option ${option.name}`;
  switch (option.type) {
    case "string":
      if (typeof value !== "string") throw invalid(`${where} must be a string, got ${describeType(value)}`);
      return;
    case "integer":
      if (typeof value !== "number" || !Number.isSafeInteger(value))
        throw invalid(`${where} must be an integer, got ${describeType(value)}`);
      return;
    case "number":
      if (typeof value !== "number" || !Number.isFinite(value))
        throw invalid(`${where} must be a finite number, got ${describeType(value)}`);
      return;
    case "boolean":
      if (typeof value !== "boolean")
        throw invalid(`${where} must be true or false, got ${describeType(value)}`);
      return;
    case "string[]":
      if (!Array.isArray(value) || !value.every((v) => typeof v === "string"))
        throw invalid(`${where} must be a list of strings`);
      return;
    case "transformer": {
      if (typeof value !== "object" || value === null || Array.isArray(value))
        throw invalid(`${where} must be an object { name, options }`);
      const nested = value as { name?: unknown; options?: unknown };
      const extra = Object.keys(nested).filter((k) => k !== "name" && k !== "options");
      if (extra.length > 0)
        throw invalid(`${where} has unknown key ${extra[0]}; give only { name, options }`);
      if (typeof nested.name !== "string") throw invalid(`${where} must name a transformer in name`);
      try {
        validateTransformOptions(nested.name, nested.options);
      } catch (error) {
        if (error instanceof DrayError) throw invalid(`${where}: ${error.message}`);
        throw error;
      }
      return;
    }
  }
}

function catalogueEntry(name: string): TransformerInfo {
  const info = transformerInfo(name);
  if (info === undefined)
    throw invalid(
      `unknown transformer ${JSON.stringify(name)}; see the catalogue of transformers for the names`,
    );
  return info;
}

/**
 * Validates `options` of transformer `name` against the catalogue (unknown
 * transformer, unknown, missing or ill-typed option) and the implementation's
 * own checks when it is registered. Needs no key: the control plane calls it
 * when a pipeline is saved. Returns the options (an empty object for undefined).
 * Throws DrayError("invalid_argument") naming the transformer and the option.
 */
export function validateTransformOptions(name: string, options: unknown): TransformOptions {
  const info = catalogueEntry(name);
  const given = options ?? {};
  if (typeof given !== "object" || Array.isArray(given))
    throw invalid(`transformer ${name}: options must be an object`);
  const record = given as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!info.options.some((o) => o.name === key)) {
      const known = info.options.map((o) => o.name).join(", ");
      throw invalid(
        `transformer ${name}: unknown option ${key}; ${known === "" ? "it takes no options" : `it takes ${known}`}`,
      );
    }
  }
  for (const option of info.options) {
    const value = record[option.name];
    if (value === undefined) {
      if (option.required)
        throw invalid(`transformer ${name}: option ${option.name} is required (${option.description})`);
      continue;
    }
    checkOption(name, option, value);
  }
  TRANSFORMER_REGISTRY.get(name)?.validate?.(record);
  return record;
}

/**
 * Compiles transformer `name` with `options` for a column of `columnType`:
 * validates the options, checks the transformer fits the column's type family
 * (when the type is one Dray knows) and returns its value function.
 */
export function compileTransform(
  name: string,
  options: unknown,
  prf: Prf,
  columnType: string,
): ValueTransform {
  const valid = validateTransformOptions(name, options);
  const info = catalogueEntry(name);
  if (typeFamily(columnType) !== undefined && !fitsType(info, columnType))
    throw invalid(
      `transformer ${name} does not fit a column of type ${columnType}; it fits ${info.families.join(", ")}`,
    );
  const implementation = TRANSFORMER_REGISTRY.get(name);
  if (implementation === undefined)
    throw new DrayError("unimplemented", `transformer ${name} is not implemented by this agent`);
  return implementation.factory(valid, { name, prf, columnType });
}

/**
 * Wraps a value function with a bounded cache of its outputs, for columns whose
 * values repeat (foreign keys): outputs depend only on the value, so caching
 * changes nothing but speed. The cache is emptied when it holds `maxEntries`
 * values, so memory stays bounded. Not worth it for cheap keyless transformers (mask).
 */
export function memoizeTransform(fn: ValueTransform, maxEntries = 10_000): ValueTransform {
  const cache = new Map<string, string | null>();
  return (value) => {
    const hit = cache.get(value);
    if (hit !== undefined || cache.has(value)) return hit as string | null;
    const out = fn(value);
    if (cache.size >= maxEntries) cache.clear();
    cache.set(value, out);
    return out;
  };
}
