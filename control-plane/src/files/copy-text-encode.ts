/**
 * PostgreSQL COPY text (the text format, as the server's COPY TO writes it):
 * values escaped, rows built as tab-separated lines with `\N` for NULL. A value
 * holding a NUL character cannot be written: PostgreSQL text cannot store it.
 */
import { shown } from "./message-names.js";

/** COPY escape letters for control characters (as the server's COPY TO writes them). */
const ESCAPE_LETTER: Record<number, string> = { 8: "b", 9: "t", 10: "n", 11: "v", 12: "f", 13: "r" };

/**
 * A value escaped for COPY text (`\\`, `\t`, `\n`, `\r`, `\b`, `\f`, `\v`), or
 * `null` when it holds a NUL character, which PostgreSQL text cannot store.
 *
 * @example
 * escapeCopyValue("a\tb\\c") // "a\\tb\\\\c"
 */
export function escapeCopyValue(value: string): string | null {
  const length = value.length;
  let i = 0;
  while (i < length) {
    const code = value.charCodeAt(i);
    if (code < 0x20 || code === 0x5c) break;
    i++;
  }
  if (i === length) return value;
  let out = "";
  let from = 0;
  for (; i < length; i++) {
    const code = value.charCodeAt(i);
    if (code >= 0x20 && code !== 0x5c) continue;
    if (code === 0) return null;
    const letter = code === 0x5c ? "\\" : ESCAPE_LETTER[code];
    if (letter === undefined) continue; // other control characters are written raw, as COPY TO does
    out += value.slice(from, i) + "\\" + letter;
    from = i + 1;
  }
  return out + value.slice(from);
}

/**
 * The COPY line of a row (values tab-separated, `\N` for null or undefined,
 * ending in `\n`), or the index of the first value holding a NUL.
 *
 * @example
 * copyLineOf(["1", null, "a\tb"]) // "1\t\\N\ta\\tb\n"
 */
export function copyLineOf(values: readonly (string | null | undefined)[]): string | number {
  let line = "";
  for (let i = 0; i < values.length; i++) {
    if (i > 0) line += "\t";
    const value = values[i];
    if (value === null || value === undefined) {
      line += "\\N";
      continue;
    }
    const escaped = escapeCopyValue(value);
    if (escaped === null) return i;
    line += escaped;
  }
  return line + "\n";
}

/**
 * Why a row is rejected when {@link copyLineOf} finds a NUL in the value for
 * `field`; `where` names the row's lines ("line 3", "lines 3-4").
 */
export function nulReject(where: string, field: string): string {
  return `${where}: the value for field ${shown(field)} holds a NUL character, which PostgreSQL text cannot store`;
}
