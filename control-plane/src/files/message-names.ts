/**
 * How the file readers name things in their messages: names shortened and
 * quoted, long lists cut, words made plural. Messages name columns, keys and
 * fields, never the data of a row.
 */

/**
 * `word`, or its plural when `count` is not 1.
 *
 * @example
 * plural(2, "column") // "columns"
 */
export function plural(count: number, word: string): string {
  return count === 1 ? word : `${word}s`;
}

/**
 * A short, printable rendering of a name for messages: JSON-quoted, cut at 64 characters.
 *
 * @example
 * shown("id") // "\"id\""
 */
export function shown(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
}

/**
 * Names for a message: at most 50, each {@link shown}; `(none)` for none.
 *
 * @example
 * listed(["id", "name"]) // "\"id\", \"name\""
 */
export function listed(names: readonly string[]): string {
  const shownNames = names.slice(0, 50).map(shown).join(", ");
  return names.length > 50 ? `${shownNames} and ${names.length - 50} more` : shownNames || "(none)";
}
