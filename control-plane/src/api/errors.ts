/**
 * The API's one error shape, `{ "error": { "code", "message", "details"? } }`,
 * with the HTTP status of the code (httpStatusOf). Every failure path ends here:
 * thrown DrayErrors, Hono's HTTPExceptions, validation failures and bugs.
 */
import {
  DrayError,
  type ErrorCode,
  HIDDEN_ERROR_CODES,
  httpStatusOf,
  isDrayError,
  type Logger,
} from "@dray/common";
import type { Hook } from "@hono/zod-openapi";
import type { Context, ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ApiEnv } from "./api-env.js";

/** The JSON body of every error answer. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: unknown };
}

/**
 * The error answer for a DrayError (adds `WWW-Authenticate: Bearer` to 401s).
 * `status` overrides the code's usual HTTP status (e.g. 413 for a body over the limit).
 */
export function errorResponse(c: Context, error: DrayError, status?: ContentfulStatusCode): Response {
  status ??= httpStatusOf(error.code) as ContentfulStatusCode;
  const body: ErrorBody = { error: { code: error.code, message: error.message } };
  if (error.details !== undefined) body.error.details = error.details;
  if (error.code === "unauthenticated") c.header("WWW-Authenticate", 'Bearer realm="dray"');
  return c.json(body, status);
}

const CODE_OF_HTTP_STATUS: Record<number, ErrorCode> = {
  400: "invalid_argument",
  401: "unauthenticated",
  403: "permission_denied",
  404: "not_found",
  405: "unimplemented",
  408: "deadline_exceeded",
  409: "already_exists",
  413: "invalid_argument",
  415: "invalid_argument",
  429: "resource_exhausted",
  503: "unavailable",
};

/** Hono's HTTPExceptions (malformed JSON, wrong content type, …) as DrayErrors. */
function fromHttpException(e: HTTPException): DrayError {
  if (e.status === 400 && /json/i.test(e.message))
    return new DrayError("invalid_argument", "request body is not valid JSON");
  if (e.status === 415) {
    return new DrayError(
      "invalid_argument",
      "request body must be JSON: send the header `Content-Type: application/json`",
    );
  }
  const code = CODE_OF_HTTP_STATUS[e.status] ?? (e.status >= 500 ? "internal" : "invalid_argument");
  return new DrayError(code, e.message || code.replaceAll("_", " "));
}

/**
 * The app's `onError`: answers with the error shape, logs unexpected errors
 * with the request id, and never puts a stack trace or internal message in the body.
 */
export function createErrorHandler(logger: Logger): ErrorHandler<ApiEnv> {
  return (err, c) => {
    const requestId = c.get("requestId");
    let error: DrayError;
    if (isDrayError(err)) error = err;
    else if (err instanceof HTTPException) error = fromHttpException(err);
    else error = DrayError.from(err);
    if (HIDDEN_ERROR_CODES.has(error.code)) {
      logger.error("request failed", {
        requestId,
        method: c.req.method,
        path: c.req.path,
        code: error.code,
        error:
          err instanceof Error ? { name: err.name, message: err.message, stack: err.stack } : String(err),
      });
      error = new DrayError(
        error.code,
        `internal error (request id ${requestId ?? "unknown"}); the details are in the control plane's log`,
      );
    } else if (error.code === "unavailable") {
      logger.warn("request could not be served", { requestId, path: c.req.path, message: error.message });
    }
    return errorResponse(c, error);
  };
}

/** The app's `notFound`: 404 `not_found` naming the route. */
export const notFoundHandler: NotFoundHandler<ApiEnv> = (c) => {
  const path = c.req.path.length > 200 ? `${c.req.path.slice(0, 200)}…` : c.req.path;
  return errorResponse(c, new DrayError("not_found", `no route for ${c.req.method} ${path}`));
};

const TARGET_NAMES: Record<string, string> = {
  json: "request body",
  query: "query parameters",
  param: "path parameters",
  header: "headers",
  cookie: "cookies",
  form: "form body",
};

/** One zod issue as reported in `details.issues`. */
export interface ValidationIssue {
  path: string;
  message: string;
}

/**
 * The `defaultHook` of every router: a zod failure becomes `invalid_argument`
 * with a message naming the offending fields and the issues in `details.issues`.
 */
export const validationHook: Hook<unknown, ApiEnv, string, undefined> = (result) => {
  if (result.success) return undefined;
  const issues: ValidationIssue[] = result.error.issues.flatMap((issue) => {
    const path = issue.path.map(String);
    // An unknown field is reported at its own path, so the message names it.
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => ({ path: [...path, key].join("."), message: "unknown field" }));
    }
    return [{ path: path.join("."), message: issue.message }];
  });
  const where = TARGET_NAMES[result.target] ?? result.target;
  const summary = issues.map((i) => `${i.path || "(root)"}: ${i.message}`).join("; ");
  throw new DrayError("invalid_argument", `invalid ${where}: ${summary}`, { details: { issues } });
};
