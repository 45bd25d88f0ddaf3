/**
 * Issue 9, security 1 and 2: no request blocks the event loop, and NUL bytes
 * are refused. Every operation of the OpenAPI document the app serves gets a
 * pathological ~1 MiB value in each string field of its JSON body (nested
 * fields and array items included), each query parameter and each path
 * parameter, and a short value with a NUL; each answer must be a 400 (404 for
 * a path id that is not a UUID) in the error shape, produced by the app in
 * under 100 ms and seen by the client in under 1 s. Everything goes through a
 * real listening server with the production server options; a burst of such
 * requests must not stop /healthz answering.
 */

import { randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  API_SERVER_OPTIONS,
  answerClientErrors,
  MAX_REQUEST_HEAD_BYTES,
} from "../src/api/http-server-options.js";
import { type ApiHarness, createTestDatabase, openApiHarness } from "./api-test-harness.js";

const MiB = 1024 * 1024;
/**
 * The issue's bound on answering one request, applied to the app's own work:
 * the CPU time the process spends from the server handing the app the request
 * to the app's answer. CPU time, not wall time, so that other processes on a
 * busy shared machine do not count; a blocking pattern (88 s) is far past it.
 */
const BOUND_MS = 100;
/**
 * The issue's bound seen from the client ("no request over 1 s"): it also
 * covers Node reading a request head of up to 3 MiB over loopback, which the
 * app does not control and which a busy shared machine slows down.
 */
const CLIENT_BOUND_MS = 1000;

/** Pathological values of about 1 MiB. */
const HUGE: Record<string, string> = {
  "dots and a newline": `${".".repeat(MiB)}\n`,
  newlines: "\n".repeat(MiB),
  "repeated separators": "a.".repeat(MiB / 2),
  "percent signs and quotes": `%"'`.repeat(MiB / 3),
  "quoted dots": `"${'."'.repeat(MiB / 2)}`,
};
const NUL = "bad\u0000value";

let rotation = 0;
/**
 * The values each field gets: the one from the issue (dots and a newline) and
 * the next of the others in turn, so every field meets two values and every
 * value meets many fields without sending each field all five (~1-3 MiB each).
 */
function variantsForNextField(): Array<[string, string]> {
  const entries = Object.entries(HUGE);
  const other = entries[1 + (rotation++ % (entries.length - 1))]!;
  return [entries[0]!, other];
}

type Json = Record<string, any>;
interface Operation {
  method: string;
  path: string;
  operationId: string;
  query: string[];
  pathParams: string[];
  /** Dotted paths of the body's string fields (`entities.0`, `name`). */
  bodyStrings: string[];
}

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let h: ApiHarness;
let tokens: string[];
let operations: Operation[];
/** The API served on a real port, with the production server options. */
let server: ReturnType<typeof serve>;
let port: number;

/** The schema a `$ref` points at, or the schema itself. */
function resolve(doc: Json, schema: Json | undefined): Json | undefined {
  if (!schema?.$ref) return schema;
  const name = String(schema.$ref).split("/").pop()!;
  return doc.components.schemas[name];
}

/** Dotted paths of every string in a JSON schema (object properties, array items, anyOf/oneOf branches). */
function stringPaths(doc: Json, schema: Json | undefined, prefix: string, depth = 0): string[] {
  const s = resolve(doc, schema);
  if (!s || depth > 8) return [];
  const branches = [...(s.anyOf ?? []), ...(s.oneOf ?? []), ...(s.allOf ?? [])];
  const out = branches.flatMap((b: Json) => stringPaths(doc, b, prefix, depth + 1));
  const types = Array.isArray(s.type) ? s.type : [s.type];
  if (types.includes("string")) out.push(prefix);
  if (types.includes("object") && s.properties) {
    for (const [key, child] of Object.entries(s.properties))
      out.push(...stringPaths(doc, child as Json, prefix ? `${prefix}.${key}` : key, depth + 1));
  }
  if (types.includes("array") && s.items) out.push(...stringPaths(doc, s.items, `${prefix}.0`, depth + 1));
  return [...new Set(out)];
}

/** A body holding `value` at a dotted path, objects and arrays made as needed. */
function bodyWith(path: string, value: string): unknown {
  const keys = path.split(".");
  const root: any = /^\d+$/.test(keys[0]!) ? [] : {};
  let at = root;
  keys.forEach((key, i) => {
    const last = i === keys.length - 1;
    const next = last ? value : /^\d+$/.test(keys[i + 1]!) ? [] : {};
    at[/^\d+$/.test(key) ? Number(key) : key] = next;
    at = next;
  });
  return root;
}

function operationsOf(doc: Json): Operation[] {
  const out: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths as Json)) {
    for (const [method, op] of Object.entries(item as Json)) {
      if (!["get", "post", "put", "patch", "delete"].includes(method)) continue;
      const params: Json[] = (op.parameters ?? []).map((p: Json) => resolve(doc, p));
      const body = op.requestBody?.content?.["application/json"]?.schema;
      out.push({
        method: method.toUpperCase(),
        path,
        operationId: op.operationId ?? `${method} ${path}`,
        query: params.filter((p) => p.in === "query").map((p) => p.name),
        pathParams: params.filter((p) => p.in === "path").map((p) => p.name),
        bodyStrings: body ? stringPaths(doc, body, "") : [],
      });
    }
  }
  return out;
}

function urlOf(op: Operation, pathValues: Record<string, string> = {}, query?: [string, string]): string {
  let url = op.path.startsWith("/api/v1/") ? op.path : `/api/v1${op.path}`;
  for (const name of op.pathParams)
    url = url.replace(`{${name}}`, encodeURIComponent(pathValues[name] ?? randomUUID()));
  if (query) url += `?${encodeURIComponent(query[0])}=${encodeURIComponent(query[1])}`;
  return url;
}

interface Answer {
  status: number;
  body: any;
  /** Seen by the client: first byte sent to last byte received. */
  ms: number;
  /** The app's own work: CPU time from the server handing it the request to its answer. */
  appMs: number;
  /** The same span in wall time (reported, not asserted). */
  appWallMs: number;
}

/** What the app spent on the last request it answered (requests are sent one at a time). */
let lastApp = { cpuMs: 0, wallMs: 0 };

/**
 * Sends once with a token to the listening server, with node:http so that the
 * client does not re-parse a 3 MiB URL; the time runs from the first byte
 * sent to the last byte of the answer.
 */
function sendOnce(token: string, method: string, url: string, body?: string): Promise<Answer> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    headers["content-length"] = String(Buffer.byteLength(body));
  }
  return new Promise((resolve, reject) => {
    let answered = false;
    const started = performance.now();
    const req = http.request({ host: "127.0.0.1", port, method, path: url, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        const ms = performance.now() - started;
        answered = true;
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({
          status: res.statusCode ?? 0,
          body: text ? JSON.parse(text) : undefined,
          ms,
          appMs: lastApp.cpuMs,
          appWallMs: lastApp.wallMs,
        });
      });
      res.on("error", reject);
    });
    // A server may answer before it has read the whole request (413, an oversized head) and close:
    // the client's late EPIPE then does not matter once the answer is in.
    req.on("error", (error) => {
      if (!answered) reject(error);
    });
    req.end(body);
  });
}

/** The slowest answer time seen (best of up to three tries each), for the report. */
let slowest = 0;
let slowestClient = 0;
let slowestWall = 0;
let slowestOf = { what: "", appMs: 0 };

/**
 * Sends with the lowest role that gets past role checks (viewer, then admin,
 * then the system admin). An answer over the bound is tried twice more and the
 * fastest counts: a request that blocks the event loop is slow every time,
 * while a busy shared machine is slow only now and then.
 */
async function send(method: string, url: string, json?: unknown): Promise<Answer> {
  const body = json === undefined ? undefined : JSON.stringify(json);
  let answer: Answer | undefined;
  for (const token of tokens) {
    answer = await sendOnce(token, method, url, body);
    for (let retry = 0; retry < 2 && (answer.appMs >= BOUND_MS || answer.ms >= CLIENT_BOUND_MS); retry++) {
      await new Promise((r) => setTimeout(r, 20));
      const again = await sendOnce(token, method, url, body);
      if (again.appMs + again.ms / 10 < answer.appMs + answer.ms / 10) answer = again;
    }
    if (answer.status !== 403) break;
  }
  slowest = Math.max(slowest, answer!.appMs);
  slowestWall = Math.max(slowestWall, answer!.appWallMs);
  slowestClient = Math.max(slowestClient, answer!.ms);
  return answer!;
}

/** Sends a raw JSON text with the viewer's token (best of up to three tries, like {@link send}). */
async function sendRaw(method: string, url: string, raw: string): Promise<Answer> {
  let answer = await sendOnce(tokens[0]!, method, url, raw);
  for (let retry = 0; retry < 2 && (answer.appMs >= BOUND_MS || answer.ms >= CLIENT_BOUND_MS); retry++) {
    const again = await sendOnce(tokens[0]!, method, url, raw);
    if (again.appMs < answer.appMs) answer = again;
  }
  return answer;
}

/** Asserts a 400 (or one of `also`) in the error shape within the bound. */
function expectRefused(what: string, answer: Answer, also: number[] = []): void {
  if (answer.appMs >= slowestOf.appMs) slowestOf = { what, appMs: answer.appMs };
  expect([400, ...also], `${what}: ${answer.status} ${JSON.stringify(answer.body)?.slice(0, 300)}`).toContain(
    answer.status,
  );
  expect(answer.body?.error?.code, what).toBe(answer.status === 404 ? "not_found" : "invalid_argument");
  expect(typeof answer.body.error.message, what).toBe("string");
  expect(answer.body.error.message.length, `${what}: message echoes the value`).toBeLessThan(2000);
  expect(answer.appMs, `${what}: the app took ${answer.appMs.toFixed(1)} ms of CPU`).toBeLessThan(BOUND_MS);
  expect(answer.ms, `${what}: the client waited ${answer.ms.toFixed(1)} ms`).toBeLessThan(CLIENT_BOUND_MS);
}

/** The issue paths of a validation answer. */
const issuePaths = (answer: Answer): string[] =>
  ((answer.body?.error?.details?.issues ?? []) as { path: string }[]).map((i) => i.path);

beforeAll(async () => {
  database = await createTestDatabase();
  h = await openApiHarness(database.url);
  const org = await h.tenant("pathological");
  tokens = [org.viewer, org.admin, h.systemToken];
  server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const s = serve(
      {
        fetch: async (request, env) => {
          const started = performance.now();
          const cpu = process.cpuUsage();
          const response = await h.app.fetch(request, env);
          const used = process.cpuUsage(cpu);
          lastApp = { cpuMs: (used.user + used.system) / 1000, wallMs: performance.now() - started };
          return response;
        },
        port: 0,
        hostname: "127.0.0.1",
        serverOptions: { ...API_SERVER_OPTIONS },
      },
      () => resolve(s),
    );
  });
  answerClientErrors(server);
  port = (server.address() as AddressInfo).port;
  const res = await h.app.request("/api/v1/openapi.json");
  operations = operationsOf((await res.json()) as Json);
  // Warm up the code paths once, so the first measured request does not pay for compilation.
  for (const op of operations)
    await send(op.method, urlOf(op, {}, ["warm", "up"]), op.bodyStrings.length ? {} : undefined);
});
afterAll(async () => {
  console.log(
    `slowest pathological answer (best of up to 3): app CPU ${slowest.toFixed(1)} ms, ` +
      `app wall ${slowestWall.toFixed(1)} ms, client ${slowestClient.toFixed(1)} ms; most CPU: ${slowestOf.what}`,
  );
  if (server) await new Promise((resolve) => server.close(resolve));
  await h?.close();
  await database?.drop();
});

describe("the OpenAPI document", () => {
  it("lists the operations and fields this suite covers", () => {
    const ids = operations.map((o) => o.operationId);
    expect(ids).toEqual(expect.arrayContaining(["createPipeline", "updatePipeline", "listPipelines"]));
    const create = operations.find((o) => o.operationId === "createPipeline")!;
    expect(create.bodyStrings).toEqual(expect.arrayContaining(["name", "entities.0", "entities.0.schema"]));
    expect(operations.flatMap((o) => o.query)).toEqual(
      expect.arrayContaining(["search", "pipelinetoken", "pipelinename", "status", "from", "to"]),
    );
  });
});

describe("pathological 1 MiB values", () => {
  it("answer 400 within the bound in every string field of every JSON body", async () => {
    let checked = 0;
    for (const op of operations) {
      for (const field of op.bodyStrings) {
        for (const [variant, value] of variantsForNextField()) {
          const answer = await send(op.method, urlOf(op), bodyWith(field, value));
          const what = `${op.operationId} body ${field} (${variant})`;
          expectRefused(what, answer, op.pathParams.length ? [404] : []);
          if (answer.status === 400) expect(issuePaths(answer).join(" "), what).not.toBe("");
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(20);
  });

  it("answer 400 within the bound in every query parameter of every operation", async () => {
    let checked = 0;
    for (const op of operations) {
      for (const name of op.query) {
        for (const [variant, value] of variantsForNextField()) {
          const answer = await send(op.method, urlOf(op, {}, [name, value]));
          const what = `${op.operationId} ?${name} (${variant})`;
          expectRefused(what, answer);
          expect(issuePaths(answer), what).toContain(name);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(20);
  });

  it("answer 400 or 404 within the bound in every path parameter", async () => {
    // One value per path parameter, alternating between the issue's value and the others in turn.
    let n = 0;
    for (const op of operations) {
      for (const name of op.pathParams) {
        const [issues, other] = variantsForNextField();
        const [variant, value] = n++ % 2 === 0 ? issues! : other!;
        const answer = await send(op.method, urlOf(op, { [name]: value }));
        expectRefused(`${op.operationId} {${name}} (${variant})`, answer, [404]);
      }
    }
  });

  it("refuses the entity name that used to take 88 s, for a viewer too, within the bound", async () => {
    const entities = [`${".".repeat(200_000)}\n`];
    for (const [method, url] of [
      ["POST", "/api/v1/pipelines"],
      ["PATCH", `/api/v1/pipelines/${randomUUID()}`],
    ] as const) {
      const answer = await send(method, url, { entities });
      expectRefused(`${method} ${url}`, answer);
      expect(answer.body.error.message).toContain("entities.0: entity name is longer than 300 characters");
    }
  });

  it("answers a deeply nested body with 400 within the bound", async () => {
    for (const raw of [
      `${"[".repeat(MiB)}${"]".repeat(MiB)}`,
      `${'{"a":'.repeat(MiB / 5)}1${"}".repeat(MiB / 5)}`,
    ]) {
      const answer = await sendRaw("POST", "/api/v1/pipelines", raw);
      expectRefused("deeply nested body", answer);
      expect(answer.body.error.message).toBe(
        "invalid request body: (root): must not nest arrays and objects more than 32 levels deep",
      );
    }
  });

  it("answers a body over the limit with 413, and a 1 MiB string in a body with 400 from validation", async () => {
    // In-process: over a socket the answer races the client's upload (the server stops reading at the limit).
    const res = await h.app.request("/api/v1/environments", {
      method: "POST",
      headers: { authorization: `Bearer ${tokens[0]}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "x", application: "y".repeat(5 * MiB) }),
    });
    expect(res.status).toBe(413);
    expect(((await res.json()) as Json).error).toEqual({
      code: "invalid_argument",
      message: "request body is larger than 4 MiB",
    });
    const mib = await send("POST", "/api/v1/environments", { name: "x", application: "y".repeat(MiB) });
    expect(mib.status).toBe(400);
    expect(issuePaths(mib)).toEqual(["application"]);
  });
});

describe("NUL characters", () => {
  it("answer 400 naming the field in every string field of every JSON body", async () => {
    for (const op of operations) {
      for (const field of op.bodyStrings) {
        const answer = await send(op.method, urlOf(op), bodyWith(field, NUL));
        const what = `${op.operationId} body ${field}`;
        expectRefused(what, answer);
        expect(answer.body.error.message, what).toBe(
          `invalid request body: ${field}: must not contain NUL characters (\\u0000)`,
        );
        expect(issuePaths(answer), what).toEqual([field]);
      }
    }
  });

  it("answer 400 naming the parameter in every query parameter of every operation", async () => {
    for (const op of operations) {
      for (const name of op.query) {
        const answer = await send(op.method, urlOf(op, {}, [name, NUL]));
        const what = `${op.operationId} ?${name}`;
        expectRefused(what, answer);
        expect(answer.body.error.message, what).toBe(
          `invalid query parameters: ${name}: must not contain NUL characters (\\u0000)`,
        );
      }
    }
  });

  it("answer 404 for a path id with a NUL (ids that are not UUIDs are unknown ones)", async () => {
    for (const op of operations.filter((o) => o.pathParams.length > 0 && o.method === "GET")) {
      const answer = await send(op.method, urlOf(op, { id: NUL }));
      expectRefused(`${op.operationId} {id}`, answer, [404]);
    }
  });

  it("are refused in the names that used to give 500 (search, pipelinetoken, a name)", async () => {
    const search = await send("GET", `/api/v1/environments?search=${encodeURIComponent(NUL)}`);
    expect(search.status).toBe(400);
    const token = await send("GET", `/api/v1/pipeline/status?pipelinetoken=${encodeURIComponent(NUL)}`);
    expect(token.status).toBe(400);
    const created = await send("POST", "/api/v1/environments", { name: `qa${NUL}` });
    expect(created.status).toBe(400);
    expect(created.body.error.message).toBe(
      "invalid request body: name: must not contain NUL characters (\\u0000)",
    );
    const nested = await send("POST", "/api/v1/pipelines", { entities: [{ schema: "s", table: NUL }] });
    expect(nested.status).toBe(400);
    expect(issuePaths(nested)).toEqual(["entities.0.table"]);
  });
});

describe("a real listening server", () => {
  it("answers a 1 MiB query value (3 MiB percent-encoded) with 400 naming the parameter, not 431", async () => {
    for (const value of [HUGE["dots and a newline"]!, HUGE.newlines!]) {
      const answer = await sendOnce(
        tokens[0]!,
        "GET",
        `/api/v1/environments?search=${encodeURIComponent(value)}`,
      );
      expect(answer.status).toBe(400);
      expect(answer.body.error.message).toBe(
        "invalid query parameters: search: must be at most 2048 characters",
      );
    }
  });

  it("answers a request head over the limit with 400 in the error shape", async () => {
    const answer = await sendOnce(
      tokens[0]!,
      "GET",
      `/api/v1/environments?search=${"a".repeat(MAX_REQUEST_HEAD_BYTES + 1024)}`,
    );
    expect(answer.status).toBe(400);
    expect(answer.body).toEqual({
      error: { code: "invalid_argument", message: "request line and headers are larger than 4 MiB" },
    });
  });

  it("keeps /healthz answering while a burst of pathological requests runs", async () => {
    const healthz: number[] = [];
    let duringBurst = 0;
    let bursting = true;
    const probe = (async () => {
      while (bursting) {
        const answer = await sendOnce(tokens[0]!, "GET", "/healthz");
        expect(answer.status).toBe(200);
        healthz.push(answer.ms);
        if (bursting) duringBurst++;
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const create = operations.find((o) => o.operationId === "createPipeline")!;
    const burst = Array.from({ length: 24 }, async (_, i) => {
      const value = Object.values(HUGE)[i % Object.keys(HUGE).length]!;
      const answer =
        i % 2 === 0
          ? await sendOnce(tokens[0]!, "POST", urlOf(create), JSON.stringify({ entities: [value] }))
          : await sendOnce(tokens[0]!, "GET", `/api/v1/pipelines?search=${encodeURIComponent(value)}`);
      return answer.status;
    });
    const statuses = await Promise.all(burst);
    bursting = false;
    await probe;
    expect(new Set(statuses)).toEqual(new Set([400]));
    // /healthz kept answering between the requests of the burst (one blocking request held it for 88 s).
    expect(duringBurst).toBeGreaterThanOrEqual(3);
    // Not a speed test: the bound leaves room for a busy machine (3.3 s was seen while three test files
    // ran at once on 2 cores, 0.5 s alone), far below a blocked event loop (88 s).
    expect(Math.max(...healthz)).toBeLessThan(10_000);
    console.log(
      `healthz during a burst of 24: ${healthz.length} answers, slowest ${Math.max(...healthz).toFixed(0)} ms`,
    );
  });
});
