/**
 * Entity names (`schema.table`) as Dray shows and accepts them, so that every
 * table can be named exactly and no name stands for two tables.
 *
 * The canonical form is `schema.table`; a part that contains `.` or `"`, is
 * empty, or starts or ends with white space is written double-quoted, with
 * embedded quotes doubled (`"sch.ema".t`, `sch."ema.t"`, `s."say ""hi"""`).
 * Unlike SQL, both forms are exact: an unquoted part is never case-folded.
 * An unquoted name with more than one dot is ambiguous and refused.
 *
 * Pure: no I/O, no regular expressions; parsing is one linear scan.
 */
import { DrayError } from "./dray-error.js";

/** An entity addressed by its parts. */
export interface EntityNameParts {
  schema: string;
  table: string;
}

/** Longest accepted entity name text (two quoted 63-byte identifiers fit with room to spare). */
export const MAX_ENTITY_NAME_LENGTH = 300;

/** Longest accepted schema or table part. */
export const MAX_ENTITY_PART_LENGTH = 128;

/** How many quoted alternatives an "ambiguous" message lists at most. */
const MAX_ALTERNATIVES = 4;

function isSpace(code: number): boolean {
  // ASCII white space and control characters, NBSP and the Unicode space separators used in practice.
  return (
    code <= 0x20 || code === 0x7f || code === 0xa0 || code === 0xfeff || (code >= 0x2000 && code <= 0x200b)
  );
}

/**
 * True when a schema or table part must be double-quoted in the canonical form.
 *
 * @example
 * partNeedsQuotes("public") // false
 * partNeedsQuotes("sch.ema") // true
 */
export function partNeedsQuotes(part: string): boolean {
  if (part.length === 0) return true;
  if (isSpace(part.charCodeAt(0)) || isSpace(part.charCodeAt(part.length - 1))) return true;
  return part.includes(".") || part.includes('"');
}

/**
 * One part as written in the canonical form.
 *
 * @example
 * formatEntityNamePart('a"b') // '"a""b"'
 */
export function formatEntityNamePart(part: string): string {
  return partNeedsQuotes(part) ? `"${part.replaceAll('"', '""')}"` : part;
}

/**
 * The canonical name of an entity.
 *
 * @example
 * formatEntityName({ schema: "public", table: "users" }) // "public.users"
 * formatEntityName({ schema: "sch.ema", table: "t" }) // '"sch.ema".t'
 */
export function formatEntityName(entity: EntityNameParts): string {
  return `${formatEntityNamePart(entity.schema)}.${formatEntityNamePart(entity.table)}`;
}

/** A short rendering of user text for messages (JSON-escaped when it holds control characters). */
function shown(text: string): string {
  const short = text.length > 80 ? `${text.slice(0, 80)}…` : text;
  for (let i = 0; i < short.length; i++) if (short.charCodeAt(i) < 0x20) return JSON.stringify(short);
  return short;
}

function invalid(text: string, why: string, details?: Record<string, unknown>): DrayError {
  return new DrayError("invalid_argument", `entity ${shown(text)} ${why}`, {
    details: { entity: shown(text), ...details },
  });
}

/** Checks a part taken from an object or a parsed name. */
function checkPart(text: string, kind: "schema" | "table", part: string): void {
  if (part.length === 0) throw invalid(text, `has an empty ${kind} name`);
  if (part.length > MAX_ENTITY_PART_LENGTH)
    throw invalid(text, `has a ${kind} name longer than ${MAX_ENTITY_PART_LENGTH} characters`);
  if (part.includes("\0")) throw invalid(text, `must not contain NUL characters (\\u0000)`);
}

/** Reads a quoted part starting at `start` (a `"`); returns the part and the index after the closing quote. */
function readQuoted(text: string, start: number): { part: string; end: number } | undefined {
  let part = "";
  let i = start + 1;
  let chunk = i;
  while (i < text.length) {
    const quote = text.indexOf('"', i);
    if (quote < 0) return undefined;
    if (text.charCodeAt(quote + 1) === 34 /* " */) {
      part += text.slice(chunk, quote + 1);
      i = quote + 2;
      chunk = i;
      continue;
    }
    part += text.slice(chunk, quote);
    return { part, end: quote + 1 };
  }
  return undefined;
}

/** The ways to split an unquoted name with several dots, canonically written. */
function alternatives(text: string): string[] {
  const out: string[] = [];
  let dot = text.indexOf(".");
  while (dot >= 0 && out.length < MAX_ALTERNATIVES) {
    out.push(formatEntityName({ schema: text.slice(0, dot), table: text.slice(dot + 1) }));
    dot = text.indexOf(".", dot + 1);
  }
  return out;
}

/**
 * Parses a name in the canonical or the fully quoted form (`"schema"."table"`);
 * any mix of quoted and unquoted parts is accepted.
 *
 * @throws DrayError `invalid_argument` naming the entity: too long, NUL, not
 * `schema.table`, an unterminated quote, or ambiguous (an unquoted name with
 * several dots; the message lists the quoted alternatives).
 *
 * @example
 * parseEntityName('"sch"."ema.t"') // { schema: "sch", table: "ema.t" }
 * parseEntityName("a.b.c") // throws: ambiguous, write "a.b".c or a."b.c"
 */
export function parseEntityName(text: string): EntityNameParts {
  if (typeof text !== "string") throw new DrayError("invalid_argument", "entity name must be a string");
  if (text.length > MAX_ENTITY_NAME_LENGTH)
    throw new DrayError(
      "invalid_argument",
      `entity name is longer than ${MAX_ENTITY_NAME_LENGTH} characters (${text.length})`,
    );
  if (text.includes("\0")) throw invalid(text, "must not contain NUL characters (\\u0000)");
  const parts: string[] = [];
  let i = 0;
  while (parts.length < 2) {
    if (text.charCodeAt(i) === 34 /* " */) {
      const quoted = readQuoted(text, i);
      if (!quoted) throw invalid(text, "has an unterminated double quote");
      parts.push(quoted.part);
      i = quoted.end;
    } else {
      const dot = parts.length === 0 ? text.indexOf(".", i) : text.length;
      const end = dot < 0 ? text.length : dot;
      const part = text.slice(i, end);
      if (part.includes('"'))
        throw invalid(
          text,
          'is not a valid name: a part with a double quote must be quoted, with the quote doubled (e.g. "a""b")',
        );
      if (parts.length === 1 && part.includes(".")) {
        if (text.charCodeAt(0) === 34 /* " */) {
          const fixed = `${text.slice(0, i)}${formatEntityNamePart(part)}`;
          throw invalid(text, `is not a valid name: quote the table name, which contains a dot (${fixed})`, {
            alternatives: [fixed],
          });
        }
        throw invalid(
          text,
          `is ambiguous: quote the part that contains a dot (${alternatives(text).join(" or ")})`,
          { alternatives: alternatives(text) },
        );
      }
      parts.push(part);
      i = end;
    }
    if (parts.length === 1) {
      if (i >= text.length) throw invalid(text, "must be schema.table");
      if (text.charCodeAt(i) !== 46 /* . */)
        throw invalid(text, "is not a valid name: a quoted part must be followed by a dot");
      i += 1;
    } else if (i < text.length) {
      throw invalid(text, "is not a valid name: nothing may follow the quoted table name");
    }
  }
  const [schema, table] = parts as [string, string];
  checkPart(text, "schema", schema);
  checkPart(text, "table", table);
  return { schema, table };
}

/**
 * The canonical name of an entity given as text (canonical or quoted form) or
 * as parts.
 *
 * @throws DrayError `invalid_argument` as {@link parseEntityName}.
 *
 * @example
 * normaliseEntityName('"public"."users"') // "public.users"
 * normaliseEntityName({ schema: "sch", table: "ema.t" }) // 'sch."ema.t"'
 */
export function normaliseEntityName(input: string | EntityNameParts): string {
  if (typeof input === "string") return formatEntityName(parseEntityName(input));
  if (
    input === null ||
    typeof input !== "object" ||
    typeof input.schema !== "string" ||
    typeof input.table !== "string"
  )
    throw new DrayError("invalid_argument", "entity must be a name or { schema, table }");
  const text = `${input.schema.slice(0, 80)}.${input.table.slice(0, 80)}`;
  checkPart(text, "schema", input.schema);
  checkPart(text, "table", input.table);
  return formatEntityName(input);
}
