/**
 * The read order of a continuous pipeline's entity: the cursor field, then
 * the row key's other fields (the row key alone when there is no cursor field
 * or it is the key's first field). Positions (checkpoints, ledger) are values
 * in this order, compared strictly, so rows sharing a cursor value are neither
 * read twice nor skipped.
 *
 * @example
 * cursorKeyOf("updated_at", ["id"]); // ["updated_at", "id"]
 * cursorKeyOf(null, ["id"]); // ["id"]
 */
export function cursorKeyOf(cursorField: string | null | undefined, keyFields: readonly string[]): string[] {
  if (!cursorField || cursorField === keyFields[0]) return [...keyFields];
  return [cursorField, ...keyFields.filter((f) => f !== cursorField)];
}
