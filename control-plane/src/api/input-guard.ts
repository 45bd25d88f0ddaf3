/**
 * Checks every request's query parameters and JSON body before any route
 * sees them, so that no field of any operation can carry a NUL character
 * (Postgres refuses them) or a query value long enough to cost real work.
 * The answers have the shape and wording of the validation hook's:
 * `invalid query parameters: search: must not contain NUL characters (\u0000)`.
 *
 * Every check is a linear scan; nothing here uses a regular expression.
 */
import { DrayError } from "@dray/common";
import type { MiddlewareHandler } from "hono";
import type { ApiEnv } from "./api-env.js";
import type { ValidationIssue } from "./errors.js";

/** Longest accepted query parameter value (every real value is far shorter). */
export const MAX_QUERY_VALUE_LENGTH = 2048;

/** The message of a text field that holds a NUL character. */
export const NUL_MESSAGE = "must not contain NUL characters (\\u0000)";

const BODY_METHODS: ReadonlySet<string> = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** A field name as shown in a message: at most 64 characters, NULs written out. */
function label(name: string): string {
  const short = name.length > 64 ? `${name.slice(0, 64)}…` : name;
  return short.replaceAll("\0", "\\u0000");
}

function rejected(where: string, issue: ValidationIssue): DrayError {
  return new DrayError("invalid_argument", `invalid ${where}: ${issue.path || "(root)"}: ${issue.message}`, {
    details: { issues: [issue] },
  });
}

/** Longest accepted request path, as sent (ids are UUIDs; no real path comes near it). */
export const MAX_PATH_LENGTH = 2048;

/**
 * The 400 answer for a URL whose path is longer than {@link MAX_PATH_LENGTH}
 * or whose query has a parameter that is too long or holds a NUL; undefined
 * for a fine URL. Works on the raw URL text before any decoding or routing,
 * in time linear in its length.
 */
export function urlGuard(url: string): Response | undefined {
  const scheme = url.indexOf("://");
  const pathStart = url.indexOf("/", scheme < 0 ? 0 : scheme + 3);
  if (pathStart >= 0) {
    let pathEnd = url.indexOf("?", pathStart);
    if (pathEnd < 0) pathEnd = url.indexOf("#", pathStart);
    if (pathEnd < 0) pathEnd = url.length;
    if (pathEnd - pathStart > MAX_PATH_LENGTH)
      return errorAnswer(`invalid path: must be at most ${MAX_PATH_LENGTH} characters`, []);
  }
  const issue = queryIssue(url);
  if (issue) return errorAnswer(`invalid query parameters: ${issue.path}: ${issue.message}`, [issue]);
  return undefined;
}

function errorAnswer(message: string, issues: ValidationIssue[]): Response {
  const error =
    issues.length > 0
      ? { code: "invalid_argument", message, details: { issues } }
      : { code: "invalid_argument", message };
  return Response.json({ error }, { status: 400 });
}

/** Decodes a query component like URLSearchParams (`+` is a space); undecodable text stays as is. */
function decodeComponent(raw: string): string {
  const text = raw.includes("+") ? raw.replaceAll("+", " ") : raw;
  if (!text.includes("%")) return text;
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * The first problem of a URL's query string, or undefined: a value over
 * {@link MAX_QUERY_VALUE_LENGTH} characters, or a NUL in a name or value.
 * Scans the raw text once; a value too long even before decoding is refused
 * without being decoded.
 *
 * @example
 * queryIssue("http://h/p?search=a%00b") // { path: "search", message: "must not contain NUL…" }
 */
export function queryIssue(url: string): ValidationIssue | undefined {
  const start = url.indexOf("?");
  if (start < 0) return undefined;
  const hash = url.indexOf("#", start);
  const end = hash < 0 ? url.length : hash;
  let at = start + 1;
  // The next "=" at or after `at`, kept between parameters so that the scan stays linear.
  let eq = -1;
  while (at < end) {
    let amp = url.indexOf("&", at);
    if (amp < 0 || amp > end) amp = end;
    if (eq !== Number.POSITIVE_INFINITY && eq < at) {
      eq = url.indexOf("=", at);
      if (eq < 0) eq = Number.POSITIVE_INFINITY;
    }
    const nameEnd = Math.min(eq, amp);
    const rawName = url.slice(at, Math.min(nameEnd, at + 3 * 256));
    const decodedName = decodeComponent(rawName);
    const name = label(decodedName);
    if (nameEnd - at > 3 * MAX_QUERY_VALUE_LENGTH)
      return { path: name, message: `parameter name must be at most ${MAX_QUERY_VALUE_LENGTH} characters` };
    if (decodedName.includes("\0")) return { path: name, message: `parameter name ${NUL_MESSAGE}` };
    const valueLength = nameEnd < amp ? amp - nameEnd - 1 : 0;
    const tooLong = { path: name, message: `must be at most ${MAX_QUERY_VALUE_LENGTH} characters` };
    // Percent-encoding at most triples the length: past that, the value is too long whatever it holds.
    if (valueLength > 3 * MAX_QUERY_VALUE_LENGTH) return tooLong;
    if (valueLength > 0) {
      const value = decodeComponent(url.slice(nameEnd + 1, amp));
      if (value.length > MAX_QUERY_VALUE_LENGTH) return tooLong;
      if (value.includes("\0")) return { path: name, message: NUL_MESSAGE };
    }
    at = amp + 1;
  }
  return undefined;
}

/**
 * The first string (value or key) of a parsed JSON body that holds a NUL, as
 * an issue at its path (`entities.0`, `name`), or undefined. Iterative, so a
 * deeply nested body cannot overflow the stack.
 */
export function nulIssueInJson(body: unknown): ValidationIssue | undefined {
  const root: JsonNode = { value: body, key: "" };
  if (typeof body === "string") return body.includes("\0") ? { path: "", message: NUL_MESSAGE } : undefined;
  // Only containers are pushed; strings are checked where they are met, so a long array costs no allocations.
  const stack: JsonNode[] = [root];
  const visit = (parent: JsonNode, key: string, child: unknown): ValidationIssue | undefined => {
    if (typeof child === "string") {
      if (child.includes("\0")) return { path: pathOf({ value: child, key, parent }), message: NUL_MESSAGE };
    } else if (child !== null && typeof child === "object") {
      stack.push({ value: child, key, parent });
    }
    return undefined;
  };
  while (stack.length > 0) {
    const node = stack.pop()!;
    const { value } = node;
    if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) {
        const issue = visit(node, String(i), value[i]);
        if (issue) return issue;
      }
    } else {
      const entries = Object.entries(value as object);
      for (let i = entries.length - 1; i >= 0; i--) {
        const [key, child] = entries[i]!;
        if (key.includes("\0"))
          return { path: pathOf({ value: child, key, parent: node }), message: `field name ${NUL_MESSAGE}` };
        const issue = visit(node, key, child);
        if (issue) return issue;
      }
    }
  }
  return undefined;
}

/** Deepest nesting of arrays and objects a JSON body may have (the API's bodies need 3). */
export const MAX_JSON_DEPTH = 32;

/** What one pass over a JSON text found. */
export interface JsonTextScan {
  /** Arrays and objects nest deeper than the given maximum. */
  tooDeep: boolean;
  /** A string holds the escape `\u0000` (a raw NUL is not valid JSON anyway). */
  nul: boolean;
}

/**
 * Scans a JSON text once, skipping string contents: how deep it nests (it
 * stops past `maxDepth`) and whether any string holds a NUL. Runs before
 * parsing, because parsing and walking a body nested a million levels deep
 * takes seconds, and parsing twice costs time on every request.
 */
export function scanJsonText(text: string, maxDepth: number): JsonTextScan {
  let depth = 0;
  let inString = false;
  let nul = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) {
        if (
          text.charCodeAt(i + 1) === 117 /* u */ &&
          text.charCodeAt(i + 2) === 48 &&
          text.charCodeAt(i + 3) === 48 &&
          text.charCodeAt(i + 4) === 48 &&
          text.charCodeAt(i + 5) === 48
        )
          nul = true;
        i++;
      } else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 /* [ */ || c === 123 /* { */) {
      if (++depth > maxDepth) return { tooDeep: true, nul };
    } else if (c === 93 /* ] */ || c === 125 /* } */) depth--;
  }
  return { tooDeep: false, nul };
}

/** A value met while walking a JSON body; its path is built only when it is reported. */
interface JsonNode {
  value: unknown;
  key: string;
  parent?: JsonNode;
}

/** Longest dotted path shown in a message (a deeper one keeps its last part). */
const MAX_SHOWN_PATH_LENGTH = 200;

/** The dotted path of a node (`entities.0.table`), cut to its last part when very deep. */
function pathOf(node: JsonNode): string {
  const keys: string[] = [];
  let length = 0;
  let truncated = false;
  for (let at: JsonNode | undefined = node; at?.parent; at = at.parent) {
    if (length > MAX_SHOWN_PATH_LENGTH) {
      truncated = true;
      break;
    }
    const key = label(at.key);
    keys.push(key);
    length += key.length + 1;
  }
  const path = keys.reverse().join(".");
  return truncated ? `….${path}` : path;
}

function isJson(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const type = contentType.split(";", 1)[0]!.trim().toLowerCase();
  return type === "application/json" || (type.startsWith("application/") && type.endsWith("+json"));
}

/**
 * Middleware answering 400 `invalid_argument` for a JSON body nested deeper
 * than {@link MAX_JSON_DEPTH} levels or with a NUL in any string (the URL is
 * checked by {@link urlGuard} before routing). A
 * body that is not valid JSON is left to the route's validator (same answer
 * as before). Mount it after the body limit and before any route.
 */
export function inputGuard(): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    if (BODY_METHODS.has(c.req.method) && c.req.raw.body && isJson(c.req.header("content-type"))) {
      let text: string;
      try {
        // Hono caches the text: the route's validator parses it from there.
        text = await c.req.text();
      } catch {
        return next(); // An unreadable body: the validator answers for it.
      }
      const scan = scanJsonText(text, MAX_JSON_DEPTH);
      if (scan.tooDeep) {
        throw rejected("request body", {
          path: "",
          message: `must not nest arrays and objects more than ${MAX_JSON_DEPTH} levels deep`,
        });
      }
      let issue: ValidationIssue | undefined;
      if (scan.nul) {
        try {
          issue = nulIssueInJson(JSON.parse(text));
        } catch {
          // Not JSON: the validator answers "request body is not valid JSON".
        }
      }
      if (issue) throw rejected("request body", issue);
    }
    await next();
  };
}
