import { describe, expect, it } from "vitest";
import { clientErrorAnswer, clientErrorResponse } from "./http-server-options.js";
import {
  MAX_JSON_DEPTH,
  MAX_PATH_LENGTH,
  MAX_QUERY_VALUE_LENGTH,
  NUL_MESSAGE,
  nulIssueInJson,
  queryIssue,
  scanJsonText,
  urlGuard,
} from "./input-guard.js";

const MiB = 1024 * 1024;

describe("queryIssue", () => {
  it("accepts ordinary queries", () => {
    expect(queryIssue("http://h/api/v1/environments")).toBeUndefined();
    expect(queryIssue("http://h/p?search=a+b&sort=name&flag&empty=#frag")).toBeUndefined();
    expect(queryIssue(`http://h/p?search=${"x".repeat(MAX_QUERY_VALUE_LENGTH)}`)).toBeUndefined();
  });

  it("names a parameter whose value holds a NUL, encoded or as +/%-text", () => {
    expect(queryIssue("http://h/p?sort=name&search=a%00b")).toEqual({ path: "search", message: NUL_MESSAGE });
    expect(queryIssue("http://h/p?pipeline%74oken=%00")).toEqual({
      path: "pipelinetoken",
      message: NUL_MESSAGE,
    });
    expect(queryIssue("http://h/p?a%00=1")).toEqual({
      path: "a\\u0000",
      message: `parameter name ${NUL_MESSAGE}`,
    });
  });

  it("refuses a value over the limit, decoded or not", () => {
    const tooLong = { path: "search", message: `must be at most ${MAX_QUERY_VALUE_LENGTH} characters` };
    expect(queryIssue(`http://h/p?search=${"x".repeat(MAX_QUERY_VALUE_LENGTH + 1)}`)).toEqual(tooLong);
    expect(queryIssue(`http://h/p?search=${"%0A".repeat(MiB)}`)).toEqual(tooLong);
    // Encoded text that decodes under the limit is fine.
    expect(queryIssue(`http://h/p?search=${"%0A".repeat(MAX_QUERY_VALUE_LENGTH)}`)).toBeUndefined();
  });

  it("keeps bad percent-encoding as text instead of throwing", () => {
    expect(queryIssue(`http://h/p?search=${"%".repeat(100)}`)).toBeUndefined();
    expect(queryIssue(`http://h/p?search=${"%".repeat(MiB)}`)?.path).toBe("search");
  });

  it("scans a megabyte of separators without going quadratic", () => {
    // 512k parameters without "=": a rescan per parameter would take minutes.
    const started = performance.now();
    expect(queryIssue(`http://h/p?${"a&".repeat(MiB / 2)}x=%00`)).toEqual({
      path: "x",
      message: NUL_MESSAGE,
    });
    expect(queryIssue(`http://h/p?${"=".repeat(MiB)}`)?.message).toContain("must be at most");
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});

describe("urlGuard", () => {
  it("passes ordinary URLs", () => {
    expect(urlGuard("http://localhost/api/v1/pipelines?search=a")).toBeUndefined();
  });

  it("answers 400 for an over-long path before any decoding", async () => {
    const res = urlGuard(`http://localhost/api/v1/pipelines/${"%0A".repeat(MiB)}`)!;
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      error: {
        code: "invalid_argument",
        message: `invalid path: must be at most ${MAX_PATH_LENGTH} characters`,
      },
    });
  });

  it("answers 400 naming the query parameter, in the validation hook's shape", async () => {
    const res = urlGuard("http://localhost/api/v1/environments?search=%00")!;
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      error: {
        code: "invalid_argument",
        message: `invalid query parameters: search: ${NUL_MESSAGE}`,
        details: { issues: [{ path: "search", message: NUL_MESSAGE }] },
      },
    });
  });
});

describe("nulIssueInJson", () => {
  it("finds a NUL in nested values and keys, at its dotted path", () => {
    expect(nulIssueInJson({ name: "ok", entities: ["a.b", { schema: "s", table: "t\0" }] })).toEqual({
      path: "entities.1.table",
      message: NUL_MESSAGE,
    });
    expect(nulIssueInJson({ "k\0": 1 })).toEqual({
      path: "k\\u0000",
      message: `field name ${NUL_MESSAGE}`,
    });
    expect(nulIssueInJson("\0")).toEqual({ path: "", message: NUL_MESSAGE });
    expect(nulIssueInJson({ a: [1, true, null, { b: "fine" }] })).toBeUndefined();
  });

  it("walks a deeply nested body without overflowing the stack", () => {
    const deep = JSON.parse(`${"[".repeat(200_000)}"\\u0000"${"]".repeat(200_000)}`);
    expect(nulIssueInJson(deep)?.message).toBe(NUL_MESSAGE);
  });
});

describe("client errors", () => {
  it("answers an oversized head with 400 in the API's error shape", () => {
    const text = clientErrorResponse(clientErrorAnswer("HPE_HEADER_OVERFLOW"));
    expect(text.startsWith("HTTP/1.1 400 Bad Request\r\n")).toBe(true);
    const body = text.slice(text.indexOf("\r\n\r\n") + 4);
    expect(JSON.parse(body)).toEqual({
      error: { code: "invalid_argument", message: "request line and headers are larger than 4 MiB" },
    });
    expect(text).toContain(`Content-Length: ${Buffer.byteLength(body)}\r\n`);
  });

  it("answers a slow request with 408 and anything else with 400", () => {
    expect(clientErrorAnswer("ERR_HTTP_REQUEST_TIMEOUT").status).toBe(408);
    expect(clientErrorAnswer("HPE_INVALID_METHOD")).toEqual({
      status: 400,
      code: "invalid_argument",
      message: "malformed HTTP request",
    });
  });
});

describe("nulIssueInJson paths", () => {
  it("shows only the last part of a very deep path", () => {
    const deep = JSON.parse(`${'{"a":'.repeat(10_000)}"\\u0000"${"}".repeat(10_000)}`);
    const issue = nulIssueInJson(deep)!;
    expect(issue.path.startsWith("….a.a")).toBe(true);
    expect(issue.path.length).toBeLessThan(300);
  });
});

describe("scanJsonText", () => {
  it("finds the NUL escape in strings, not an escaped backslash before u0000", () => {
    expect(scanJsonText('{"a":"x\\u0000"}', 8)).toEqual({ tooDeep: false, nul: true });
    expect(scanJsonText('{"a\\u0000":1}', 8).nul).toBe(true);
    expect(scanJsonText('{"a":"x\\\\u0000"}', 8).nul).toBe(false);
    expect(scanJsonText('{"a":"\\"[[[["}', 2)).toEqual({ tooDeep: false, nul: false });
  });

  it("stops at the first level past the maximum", () => {
    expect(
      scanJsonText(`${"[".repeat(MAX_JSON_DEPTH)}${"]".repeat(MAX_JSON_DEPTH)}`, MAX_JSON_DEPTH).tooDeep,
    ).toBe(false);
    expect(scanJsonText("[".repeat(MiB), MAX_JSON_DEPTH).tooDeep).toBe(true);
    expect(scanJsonText('{"entities":[{"schema":"s","table":"t"}]}', 3).tooDeep).toBe(false);
  });
});
