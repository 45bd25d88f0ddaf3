import { DrayError, formatEntityName } from "@dray/common";
import type { EntityName } from "../../connector.js";

/** PostgreSQL truncates identifiers longer than this many bytes (NAMEDATALEN - 1). */
export const MAX_IDENTIFIER_BYTES = 63;

/** The schema that holds the batch ledger; never described, read or written as user data. */
export const LEDGER_SCHEMA = "dray";

/**
 * Checks a user-supplied schema, table or field name: a non-empty string of at
 * most 63 UTF-8 bytes without NUL. Any other character is allowed, because the
 * name is always double-quoted with {@link quoteIdentifier}. A longer name is
 * rejected rather than silently truncated by the server to a different name.
 *
 * @throws DrayError `invalid_argument` naming `kind` and the offending value.
 */
export function validateIdentifier(kind: string, value: unknown): string {
  if (typeof value !== "string") throw new DrayError("invalid_argument", `${kind} name must be a string`);
  if (value.length === 0) throw new DrayError("invalid_argument", `${kind} name must not be empty`);
  if (value.includes("\0"))
    throw new DrayError("invalid_argument", `${kind} name ${JSON.stringify(value)} contains NUL`);
  if (Buffer.byteLength(value, "utf8") > MAX_IDENTIFIER_BYTES)
    throw new DrayError(
      "invalid_argument",
      `${kind} name ${JSON.stringify(value)} is longer than ${MAX_IDENTIFIER_BYTES} bytes`,
    );
  return value;
}

/**
 * Double-quotes an identifier, doubling embedded double quotes, so that any
 * validated name is read by the server as exactly that name.
 *
 * @example
 * quoteIdentifier('x"; drop table y; --') // "\"x\"\"; drop table y; --\""
 */
export function quoteIdentifier(name: string): string {
  return `"${validateIdentifier("identifier", name).replaceAll('"', '""')}"`;
}

/** `"schema"."name"` for a validated entity. */
export function qualifiedName(entity: EntityName): string {
  return `${quoteIdentifier(entity.schema)}.${quoteIdentifier(entity.name)}`;
}

/**
 * The canonical entity name for messages and the ledger (not for SQL):
 * `schema.name`, with a part that holds `.` or `"` double-quoted, so that two
 * tables never share a name.
 *
 * @example
 * displayName({ schema: "sch.ema", name: "t" }) // '"sch.ema".t'
 */
export function displayName(entity: EntityName): string {
  return formatEntityName({ schema: entity.schema, table: entity.name });
}

/**
 * Validates an entity name from a request and refuses the ledger schema.
 *
 * @throws DrayError `invalid_argument`
 */
export function validateEntityName(entity: EntityName): EntityName {
  if (entity === null || typeof entity !== "object")
    throw new DrayError("invalid_argument", "entity is required");
  const schema = validateIdentifier("schema", entity.schema);
  const name = validateIdentifier("table", entity.name);
  if (schema === LEDGER_SCHEMA)
    throw new DrayError("invalid_argument", `schema ${LEDGER_SCHEMA} is reserved for the Dray batch ledger`);
  return { schema, name };
}

/**
 * Validates a list of field names: each a valid identifier, no duplicates.
 *
 * @throws DrayError `invalid_argument`
 */
export function validateFieldList(kind: string, fields: readonly string[]): string[] {
  if (!Array.isArray(fields))
    throw new DrayError("invalid_argument", `${kind} must be a list of field names`);
  const seen = new Set<string>();
  for (const field of fields) {
    validateIdentifier("field", field);
    if (seen.has(field))
      throw new DrayError("invalid_argument", `${kind} names field ${JSON.stringify(field)} twice`);
    seen.add(field);
  }
  return [...fields];
}
