/** Ids of stored rows: random UUIDs. */
import { randomUUID } from "node:crypto";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A new row id. */
export function newId(): string {
  return randomUUID();
}

/**
 * True for a syntactically valid UUID. Check ids from requests with it before
 * querying: Postgres rejects a malformed uuid with an error, not an empty result.
 */
export function isUuid(value: string): boolean {
  return UUID.test(value);
}
