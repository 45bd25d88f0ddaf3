/**
 * Reading COPY text (the agents' row encoding) back into values, for the
 * little the control plane decodes itself: the keys a reconcile compares.
 */

/**
 * Decodes the lines of COPY text rows into their values (`\N` as null is not
 * expected for keys and decodes to an empty string).
 */
export function decodeCopyRows(data: Uint8Array): string[][] {
  const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("utf8");
  const rows: string[][] = [];
  for (const line of text.split("\n")) {
    if (line.length === 0) continue;
    rows.push(line.split("\t").map(unescapeCopyValue));
  }
  return rows;
}

const ESCAPES: Record<string, string> = { b: "\b", f: "\f", n: "\n", r: "\r", t: "\t", v: "\v", "\\": "\\" };

function unescapeCopyValue(value: string): string {
  if (value === "\\N") return "";
  if (!value.includes("\\")) return value;
  let out = "";
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c !== "\\" || i === value.length - 1) {
      out += c;
      continue;
    }
    const next = value[++i]!;
    out += ESCAPES[next] ?? next;
  }
  return out;
}
