/**
 * The members of a JSON object as source text: a linear scan over text the
 * NDJSON reader has already parsed as a JSON object, so that numbers keep the
 * digits they were written with and nested values their JSON text.
 */

/**
 * Keys and value source texts of the members of a JSON object, in order,
 * from text already known to be a valid JSON object (a linear scan).
 *
 * @example
 * topLevelMembers('{"a": 1.50, "b": {"c": [1]}}') // [["a", "1.50"], ["b", '{"c": [1]}']]
 */
export function topLevelMembers(text: string): [string, string][] {
  const members: [string, string][] = [];
  let i = skipSpace(text, 0) + 1;
  for (;;) {
    i = skipSpace(text, i);
    if (text.charCodeAt(i) !== 0x22) break; // "}"
    const keyEnd = stringEnd(text, i);
    const rawKey = text.slice(i, keyEnd);
    const key = rawKey.includes("\\") ? (JSON.parse(rawKey) as string) : rawKey.slice(1, -1);
    const valueStart = skipSpace(text, skipSpace(text, keyEnd) + 1);
    const valueEnd = valueEndOf(text, valueStart);
    members.push([key, text.slice(valueStart, valueEnd)]);
    i = skipSpace(text, valueEnd);
    if (text.charCodeAt(i) !== 0x2c) break; // no ","
    i++;
  }
  return members;
}

function skipSpace(text: string, from: number): number {
  let i = from;
  for (;;) {
    const code = text.charCodeAt(i);
    if (code !== 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d) return i;
    i++;
  }
}

/** Index just past the string starting at `from` (its opening quote). */
function stringEnd(text: string, from: number): number {
  let i = from + 1;
  for (;;) {
    const code = text.charCodeAt(i);
    if (code === 0x5c) i += 2;
    else if (code === 0x22) return i + 1;
    else i++;
  }
}

/** Index just past the value starting at `from`. */
function valueEndOf(text: string, from: number): number {
  const first = text.charCodeAt(from);
  if (first === 0x22) return stringEnd(text, from);
  if (first === 0x7b || first === 0x5b) {
    let depth = 0;
    let i = from;
    for (;;) {
      const code = text.charCodeAt(i);
      if (code === 0x22) {
        i = stringEnd(text, i);
        continue;
      }
      if (code === 0x7b || code === 0x5b) depth++;
      else if (code === 0x7d || code === 0x5d) {
        depth--;
        if (depth === 0) return i + 1;
      }
      i++;
    }
  }
  let i = from;
  for (;;) {
    const code = text.charCodeAt(i);
    if (Number.isNaN(code) || code === 0x2c || code === 0x7d || code === 0x5d) return i;
    if (code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d) return i;
    i++;
  }
}
