/**
 * The catalogue of field transformers: what each one is called, what it does
 * to keys, which column types it fits and which options it takes. Shared by
 * the control plane (validation, plans) and the source agent (which runs
 * them). Implementations live in the agent (agent/src/transform).
 */

/**
 * What a transformer does to distinct values: `bijective` maps distinct values
 * to distinct values (safe on keys); `unique` gives distinct values except with
 * negligible probability (at least 60 bits of the keyed hash); `lossy` may map
 * distinct values to one (never on a primary, unique or referenced key).
 */
export type TransformerKind = "bijective" | "unique" | "lossy";

/** The column type families a transformer can fit. */
export type TypeFamily =
  | "text"
  | "integer"
  | "numeric"
  | "date"
  | "timestamp"
  | "uuid"
  | "json"
  | "array"
  | "any";

/** One option of a transformer. */
export interface TransformerOption {
  name: string;
  type: "string" | "integer" | "number" | "boolean" | "string[]" | "transformer";
  required: boolean;
  description: string;
}

/** A transformer as the catalogue describes it. */
export interface TransformerInfo {
  name: string;
  kind: TransformerKind;
  families: readonly TypeFamily[];
  options: readonly TransformerOption[];
  description: string;
  /** An example: options and one input → an output of the shape it gives (the real one depends on the key). */
  example: { options: Record<string, unknown>; input: string; output: string };
}

const opt = (
  name: string,
  type: TransformerOption["type"],
  required: boolean,
  description: string,
): TransformerOption => ({ name, type, required, description });

const LOCALE = opt("locale", "string", false, "en (default), fr or de");

/** Every transformer Dray knows, by name. */
export const TRANSFORMERS: readonly TransformerInfo[] = [
  {
    name: "null",
    kind: "lossy",
    families: ["any"],
    options: [],
    description: "Replaces every value with NULL (the column must be nullable).",
    example: { options: {}, input: "Ada", output: "NULL" },
  },
  {
    name: "constant",
    kind: "lossy",
    families: ["any"],
    options: [opt("value", "string", true, "the text form of the value written instead")],
    description: "Replaces every non-NULL value with one constant.",
    example: { options: { value: "redacted" }, input: "Ada", output: "redacted" },
  },
  {
    name: "mask",
    kind: "lossy",
    families: ["text"],
    options: [
      opt("keepFirst", "integer", false, "characters kept at the start (default 0)"),
      opt("keepLast", "integer", false, "characters kept at the end (default 0)"),
      opt("char", "string", false, "the mask character (default *)"),
    ],
    description: "Masks every character but the first and last N.",
    example: { options: { keepLast: 4 }, input: "4111111111111111", output: "************1111" },
  },
  {
    name: "hash",
    kind: "unique",
    families: ["text"],
    options: [
      opt("encoding", "string", false, "hex (default) or base32"),
      opt("length", "integer", false, "characters kept, at least 16 (default: all)"),
    ],
    description:
      "Keyed HMAC-SHA256 of the value, truncated; unique while at least 16 hex characters are kept.",
    example: { options: { length: 16 }, input: "ada@example.com", output: "9f2c4e0b7d1a3c5e" },
  },
  {
    name: "char_scramble",
    kind: "lossy",
    families: ["text"],
    options: [],
    description: "Letters to keyed letters, digits to keyed digits; case, length and punctuation kept.",
    example: { options: {}, input: "AB-1234", output: "QF-8071" },
  },
  {
    name: "regexp_replace",
    kind: "lossy",
    families: ["text"],
    options: [
      opt(
        "pattern",
        "string",
        true,
        "an RE2 pattern (no backreferences or lookaround; at most 1,000 characters)",
      ),
      opt("replacement", "string", true, "the replacement; $1… refer to groups"),
      opt(
        "flags",
        "string",
        false,
        "i (case-insensitive), m (multi-line), s (dot matches newline); all matches are replaced",
      ),
    ],
    description: "Replaces every match of an RE2 pattern, in linear time.",
    example: {
      options: { pattern: "\\d{3}$", replacement: "000" },
      input: "+44 20 7946 0958",
      output: "+44 20 7946 0000",
    },
  },
  {
    name: "choice",
    kind: "lossy",
    families: ["any"],
    options: [opt("values", "string[]", true, "the values picked from (keyed by the input)")],
    description: "Picks one of a list, the same one for the same input.",
    example: { options: { values: ["red", "green", "blue"] }, input: "Ada", output: "green" },
  },
  {
    name: "noise_date",
    kind: "lossy",
    families: ["date", "timestamp"],
    options: [opt("days", "integer", true, "the largest shift in days, either way")],
    description: "Shifts a date or timestamp by a keyed number of days within ± days.",
    example: { options: { days: 30 }, input: "1990-05-17", output: "1990-06-02" },
  },
  {
    name: "noise_number",
    kind: "lossy",
    families: ["integer", "numeric"],
    options: [opt("percent", "number", true, "the largest change in percent, either way")],
    description: "Moves a number by a keyed amount within ± percent, keeping its scale.",
    example: { options: { percent: 10 }, input: "1200.00", output: "1164.51" },
  },
  ...(
    [
      ["first_name", "a first name", "Ada", "Maren"],
      ["last_name", "a last name", "Lovelace", "Okafor"],
      ["full_name", "a first and last name", "Ada Lovelace", "Maren Okafor"],
      ["phone", "an E.164 phone number", "+1 415 555 0132", "+12025550187"],
      ["street_address", "a street address", "12 Baker Street", "48 Mill Lane"],
      ["city", "a city", "Boston", "Portland"],
      ["postcode", "a postcode", "02118", "97205"],
      ["country", "a country", "United Kingdom", "Portugal"],
      ["company", "a company name", "Analytical Engines Ltd", "Okafor & Sons"],
    ] as const
  ).map(
    ([name, what, input, output]): TransformerInfo => ({
      name,
      kind: "lossy",
      families: ["text"],
      options: [LOCALE],
      description: `A realistic fake: ${what}, the same one for the same input.`,
      example: { options: {}, input, output },
    }),
  ),
  {
    name: "email",
    kind: "unique",
    families: ["text"],
    options: [LOCALE, opt("domain", "string", false, "the domain of every address (default example.com)")],
    description: "A realistic fake email address with a keyed 60-bit tag, so distinct inputs stay distinct.",
    example: { options: {}, input: "ada@lovelace.org", output: "maren.okafor.k3v9q2m7x1d4@example.com" },
  },
  {
    name: "anonymize",
    kind: "unique",
    families: ["text", "integer", "numeric", "date", "timestamp", "uuid"],
    options: [],
    description:
      "A keyed pseudonym of the same type and shape: letters for letters, digits for digits, same length.",
    example: { options: {}, input: "AB-1234", output: "KX-5093" },
  },
  {
    name: "ff1",
    kind: "bijective",
    families: ["text", "integer"],
    options: [opt("alphabet", "string", false, "digits (default) or alphanumeric")],
    description:
      "Format-preserving encryption (NIST FF1): same length and alphabet, reversible with the key.",
    example: { options: {}, input: "4111111111111111", output: "6930211452819074" },
  },
  {
    name: "permute",
    kind: "bijective",
    families: ["integer", "uuid"],
    options: [],
    description: "A keyed permutation of the integer range of the column's type, or of UUIDs.",
    example: { options: {}, input: "42", output: "1837462910" },
  },
  {
    name: "json_path",
    kind: "lossy",
    families: ["json"],
    options: [
      opt("path", "string", true, "a path like $.contact.email or $.items[*].name"),
      opt("transformer", "transformer", true, "the transformer applied at the path ({ name, options })"),
    ],
    description: "Applies a transformer to the values at a path inside json or jsonb.",
    example: {
      options: { path: "$.email", transformer: { name: "email" } },
      input: '{"email":"ada@lovelace.org"}',
      output: '{"email":"maren.okafor.k3v9q2m7x1d4@example.com"}',
    },
  },
  {
    name: "array_each",
    kind: "lossy",
    families: ["array"],
    options: [opt("transformer", "transformer", true, "the transformer applied to each element")],
    description: "Applies a transformer to every element of an array.",
    example: { options: { transformer: { name: "city" } }, input: "{London,Paris}", output: "{Leeds,Lyon}" },
  },
  {
    name: "template",
    kind: "lossy",
    families: ["text"],
    options: [
      opt(
        "template",
        "string",
        true,
        "text with {field} placeholders, filled with the row's transformed fields",
      ),
    ],
    description: "Builds a value from other (transformed) fields of the row.",
    example: {
      options: { template: "{first_name}.{last_name}@example.com" },
      input: "ada@lovelace.org",
      output: "maren.okafor@example.com",
    },
  },
];

const BY_NAME = new Map(TRANSFORMERS.map((t) => [t.name, t]));

/** The catalogue entry of a transformer, or undefined. */
export function transformerInfo(name: string): TransformerInfo | undefined {
  return BY_NAME.get(name);
}

/**
 * The type family of a Postgres column type as the catalog formats it
 * (`format_type`), e.g. `character varying(80)` → text, `bigint` → integer,
 * `text[]` → array.
 */
export function typeFamily(type: string): TypeFamily | undefined {
  const t = type.toLowerCase();
  if (t.endsWith("[]")) return "array";
  if (t === "text" || t.startsWith("character") || t === "citext" || t === "name" || t === "bpchar")
    return "text";
  if (t === "smallint" || t === "integer" || t === "bigint") return "integer";
  if (t.startsWith("numeric") || t === "real" || t === "double precision") return "numeric";
  if (t === "date") return "date";
  if (t.startsWith("timestamp")) return "timestamp";
  if (t === "uuid") return "uuid";
  if (t === "json" || t === "jsonb") return "json";
  return undefined;
}

/** True when transformer `info` fits a column of `type`. */
export function fitsType(info: TransformerInfo, type: string): boolean {
  if (info.families.includes("any")) return true;
  const family = typeFamily(type);
  return family !== undefined && info.families.includes(family);
}
