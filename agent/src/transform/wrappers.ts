/**
 * Wrapper transformers: `json_path` (a transformer at a path inside json or
 * jsonb), `array_each` (a transformer on every element of a Postgres array) and
 * `template` (a value built from the row's transformed fields). Paths,
 * arrays and templates are parsed by hand: no regular expressions on user input.
 */
import { DrayError } from "@dray/common";
import type { FakeFactory, ValueFn } from "./fakes.js";

function invalid(message: string): DrayError {
  return new DrayError("invalid_argument", message);
}

/** The nested `{ name, options }` of a wrapper. */
function nested(wrapper: string, options: Record<string, unknown>): { name: string; options: unknown } {
  const t = options.transformer as { name?: unknown; options?: unknown } | undefined;
  if (typeof t !== "object" || t === null || typeof t.name !== "string")
    throw invalid(`transformer ${wrapper}: option transformer must be { name, options }`);
  return { name: t.name, options: t.options ?? {} };
}

// --- json_path -------------------------------------------------------------------

/** One step of a JSON path: a member name, an array index, or every element (`[*]`). */
export type PathStep = { key: string } | { index: number } | { all: true };

function isNameChar(c: string): boolean {
  return c !== "." && c !== "[" && c !== "]" && c !== " " && c !== "'" && c !== '"';
}

/**
 * Parses `$`, `$.a.b`, `$.a[*].b`, `$.a[0]`, `$['a b']`, `$["a"]`.
 *
 * @throws DrayError `invalid_argument` saying where the path is wrong.
 */
export function parseJsonPath(path: string): PathStep[] {
  const fail = (at: number, what: string) =>
    invalid(
      `transformer json_path: option path ${JSON.stringify(path)} is invalid at character ${at + 1}: ${what}; ` +
        "write paths like $.contact.email, $.items[*].name or $.items[0]",
    );
  if (path[0] !== "$") throw fail(0, "it must start with $");
  const steps: PathStep[] = [];
  let i = 1;
  while (i < path.length) {
    const c = path[i]!;
    if (c === ".") {
      let j = i + 1;
      while (j < path.length && isNameChar(path[j]!)) j++;
      if (j === i + 1) throw fail(i, "a member name must follow the dot");
      steps.push({ key: path.slice(i + 1, j) });
      i = j;
    } else if (c === "[") {
      const q = path[i + 1];
      if (q === "*") {
        if (path[i + 2] !== "]") throw fail(i + 2, "expected ] after [*");
        steps.push({ all: true });
        i += 3;
      } else if (q === "'" || q === '"') {
        const close = path.indexOf(q, i + 2);
        if (close === -1 || path[close + 1] !== "]") throw fail(i, "an unterminated quoted member name");
        steps.push({ key: path.slice(i + 2, close) });
        i = close + 2;
      } else {
        let j = i + 1;
        while (j < path.length && path[j]! >= "0" && path[j]! <= "9") j++;
        if (j === i + 1 || path[j] !== "]" || j - i > 10)
          throw fail(i + 1, "expected [*], [<index>] or ['name']");
        steps.push({ index: Number(path.slice(i + 1, j)) });
        i = j + 1;
      }
    } else {
      throw fail(i, `unexpected ${JSON.stringify(c)}`);
    }
  }
  return steps;
}

function isJsonNumberText(text: string): boolean {
  // JSON number grammar: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?
  let i = 0;
  const digit = () => i < text.length && text[i]! >= "0" && text[i]! <= "9";
  if (text[i] === "-") i++;
  if (text[i] === "0") i++;
  else if (digit()) while (digit()) i++;
  else return false;
  if (text[i] === ".") {
    i++;
    if (!digit()) return false;
    while (digit()) i++;
  }
  if (text[i] === "e" || text[i] === "E") {
    i++;
    if (text[i] === "+" || text[i] === "-") i++;
    if (!digit()) return false;
    while (digit()) i++;
  }
  return i === text.length && Number.isFinite(Number(text));
}

function applyLeaf(leaf: unknown, inner: ValueFn): unknown {
  if (typeof leaf === "string") return inner(leaf);
  if (typeof leaf === "number") {
    const out = inner(String(leaf));
    if (out === null) return null;
    return isJsonNumberText(out) ? Number(out) : out;
  }
  return leaf; // objects, arrays, booleans and null are left alone
}

function walk(node: unknown, steps: readonly PathStep[], at: number, inner: ValueFn): unknown {
  if (at === steps.length) return applyLeaf(node, inner);
  const step = steps[at]!;
  if ("all" in step) {
    if (Array.isArray(node)) return node.map((child) => walk(child, steps, at + 1, inner));
    return node;
  }
  if ("index" in step) {
    if (Array.isArray(node) && step.index < node.length) {
      const copy = node.slice();
      copy[step.index] = walk(node[step.index], steps, at + 1, inner);
      return copy;
    }
    return node;
  }
  if (node !== null && typeof node === "object" && !Array.isArray(node) && Object.hasOwn(node, step.key)) {
    const record = node as Record<string, unknown>;
    return { ...record, [step.key]: walk(record[step.key], steps, at + 1, inner) };
  }
  return node;
}

/**
 * `json_path`: parses the JSON text, applies the nested transformer to the
 * string and number leaves at the path (a number stays a number when the
 * result is a JSON number), and serialises with JSON.stringify. Missing paths
 * leave the document as it is (re-serialised). Note: JSON.parse reads numbers
 * as doubles, so integers beyond 2^53 elsewhere in the document lose precision.
 *
 * @throws DrayError `invalid_argument` for a bad path (at compile time) or a value that is not JSON.
 */
export const jsonPathFactory: FakeFactory = (options, _prf, _columnType, resolve) => {
  if (typeof options.path !== "string") throw invalid("transformer json_path: option path is required");
  const steps = parseJsonPath(options.path);
  const t = nested("json_path", options);
  const inner = resolve(t.name, t.options);
  return (value) => {
    let document: unknown;
    try {
      document = JSON.parse(value);
    } catch {
      throw invalid("transformer json_path: the value is not valid JSON");
    }
    return JSON.stringify(walk(document, steps, 0, inner));
  };
};

// --- array_each ----------------------------------------------------------------------

/** A parsed Postgres array: elements (null for NULL) or nested arrays. */
export type PgArray = Array<string | null | PgArray>;

function isSpace(c: string | undefined): boolean {
  return c === " " || c === "\t" || c === "\n" || c === "\r" || c === "\v" || c === "\f";
}

/**
 * Parses a Postgres array's text form (`{a,"b c",NULL,{d}}`, with an optional
 * `[1:2]=` dimension prefix, which is returned as `prefix`).
 *
 * @throws DrayError `invalid_argument` when the text is not an array literal.
 */
export function parsePgArray(text: string, delimiter = ","): { prefix: string; items: PgArray } {
  const fail = (what: string) =>
    invalid(`transformer array_each: the value is not a Postgres array: ${what}`);
  let i = 0;
  let prefix = "";
  if (text[0] === "[") {
    const eq = text.indexOf("=");
    if (eq === -1) throw fail("a dimension prefix without =");
    prefix = text.slice(0, eq + 1);
    i = eq + 1;
  }
  const parseArray = (depth: number): PgArray => {
    if (depth > 6) throw fail("more than 6 dimensions");
    if (text[i] !== "{") throw fail(`expected { at character ${i + 1}`);
    i++;
    const items: PgArray = [];
    while (isSpace(text[i])) i++;
    if (text[i] === "}") {
      i++;
      return items;
    }
    for (;;) {
      while (isSpace(text[i])) i++;
      const c = text[i];
      if (c === undefined) throw fail("it ends inside the array");
      if (c === "{") items.push(parseArray(depth + 1));
      else if (c === '"') {
        i++;
        let out = "";
        for (;;) {
          const d = text[i];
          if (d === undefined) throw fail("an unterminated quoted element");
          if (d === "\\") {
            if (i + 1 >= text.length) throw fail("a backslash at the end");
            out += text[i + 1];
            i += 2;
          } else if (d === '"') {
            i++;
            break;
          } else {
            out += d;
            i++;
          }
        }
        items.push(out);
      } else {
        let out = "";
        let escaped = false;
        let trailing = 0; // unescaped trailing white space, trimmed
        for (;;) {
          const d = text[i];
          if (d === undefined) throw fail("it ends inside an element");
          if (d === delimiter || d === "}") break;
          if (d === "{" || d === '"') throw fail(`unexpected ${d} inside an unquoted element`);
          if (d === "\\") {
            if (i + 1 >= text.length) throw fail("a backslash at the end");
            out += text[i + 1];
            escaped = true;
            trailing = 0;
            i += 2;
            continue;
          }
          out += d;
          trailing = isSpace(d) ? trailing + 1 : 0;
          i++;
        }
        out = out.slice(0, out.length - trailing);
        if (out === "") throw fail("an empty unquoted element");
        items.push(!escaped && out.toUpperCase() === "NULL" ? null : out);
      }
      while (isSpace(text[i])) i++;
      if (text[i] === delimiter) {
        i++;
        continue;
      }
      if (text[i] === "}") {
        i++;
        return items;
      }
      throw fail(`expected ${delimiter} or } at character ${i + 1}`);
    }
  };
  const items = parseArray(0);
  while (isSpace(text[i])) i++;
  if (i !== text.length) throw fail("text after the closing }");
  return { prefix, items };
}

function needsQuotes(value: string, delimiter: string): boolean {
  if (value === "" || value.toUpperCase() === "NULL") return true;
  for (const c of value)
    if (c === '"' || c === "\\" || c === "{" || c === "}" || c === delimiter || isSpace(c)) return true;
  return false;
}

/** A Postgres array's text form, elements quoted and escaped where needed (as array_out does). */
export function formatPgArray(items: PgArray, prefix = "", delimiter = ","): string {
  const element = (item: string | null | PgArray): string => {
    if (item === null) return "NULL";
    if (Array.isArray(item)) return `{${item.map(element).join(delimiter)}}`;
    if (!needsQuotes(item, delimiter)) return item;
    let out = '"';
    for (const c of item) out += c === '"' || c === "\\" ? `\\${c}` : c;
    return `${out}"`;
  };
  return prefix + element(items);
}

function mapArray(items: PgArray, inner: ValueFn): PgArray {
  return items.map((item) =>
    item === null ? null : Array.isArray(item) ? mapArray(item, inner) : inner(item),
  );
}

/** The element type of an array column type (`text[]` → `text`). */
export function elementType(columnType: string): string {
  return columnType.endsWith("[]") ? columnType.slice(0, -2) : columnType;
}

/**
 * `array_each`: applies the nested transformer to every non-NULL element of a
 * Postgres array (any number of dimensions); NULL elements stay NULL, a NULL
 * result writes NULL. The caller's `resolve` should compile the nested
 * transformer for {@link elementType} of the column.
 *
 * @throws DrayError `invalid_argument` when the value is not an array literal.
 */
export const arrayEachFactory: FakeFactory = (options, _prf, _columnType, resolve) => {
  const t = nested("array_each", options);
  const inner = resolve(t.name, t.options);
  return (value) => {
    const { prefix, items } = parsePgArray(value);
    return formatPgArray(mapArray(items, inner), prefix);
  };
};

// --- template ------------------------------------------------------------------------

/** `template`'s factory: compiled against the row's field names, then filled per row. */
export type TemplateFactory = (
  options: Record<string, unknown>,
  fields: string[],
) => (row: (field: string) => string | null) => string;

type Part = { text: string } | { field: string };

/**
 * Parses a template: `{field}` placeholders, `{{` and `}}` for literal braces.
 *
 * @throws DrayError `invalid_argument` for an unclosed or empty placeholder or an unknown field.
 */
export function parseTemplate(template: string, fields: readonly string[]): Part[] {
  const parts: Part[] = [];
  let text = "";
  for (let i = 0; i < template.length; i++) {
    const c = template[i]!;
    if (c === "{" && template[i + 1] === "{") {
      text += "{";
      i++;
    } else if (c === "}" && template[i + 1] === "}") {
      text += "}";
      i++;
    } else if (c === "{") {
      const close = template.indexOf("}", i + 1);
      if (close === -1)
        throw invalid(
          `transformer template: a placeholder at character ${i + 1} is not closed; write {field}, or {{ for a brace`,
        );
      const field = template.slice(i + 1, close);
      if (field === "") throw invalid(`transformer template: an empty placeholder at character ${i + 1}`);
      if (!fields.includes(field))
        throw invalid(
          `transformer template: placeholder {${field}} names no field of the entity; fields: ${fields.join(", ")}`,
        );
      if (text !== "") parts.push({ text });
      text = "";
      parts.push({ field });
      i = close;
    } else if (c === "}") {
      throw invalid(`transformer template: a lone } at character ${i + 1}; write }} for a brace`);
    } else text += c;
  }
  if (text !== "") parts.push({ text });
  return parts;
}

/**
 * `template`: fills `{field}` placeholders with the row's transformed values
 * (`row(field)`); a NULL field fills in as the empty string.
 */
export const templateFactory: TemplateFactory = (options, fields) => {
  if (typeof options.template !== "string")
    throw invalid("transformer template: option template is required");
  const parts = parseTemplate(options.template, fields);
  return (row) => {
    let out = "";
    for (const part of parts) out += "text" in part ? part.text : (row(part.field) ?? "");
    return out;
  };
};

/** The wrappers that fit the registry's value-transform shape. */
export const WRAPPER_FACTORIES: Readonly<Record<string, FakeFactory>> = {
  json_path: jsonPathFactory,
  array_each: arrayEachFactory,
};
