/** The 429 answer of rate-limited and capped routes: its OpenAPI entry and its `Retry-After` header. */
import type { DrayError } from "@dray/common";
import type { Context } from "hono";
import { ErrorSchema } from "./schemas.js";

/** OpenAPI response entry for 429 `resource_exhausted` with `Retry-After`. */
export const tooManyRequestsResponse = {
  429: {
    description:
      "Too many at once or too often (`resource_exhausted`): the message says which limit; retry after `Retry-After` seconds",
    headers: {
      "Retry-After": { description: "Seconds to wait before retrying", schema: { type: "integer" as const } },
    },
    content: { "application/json": { schema: ErrorSchema } },
  },
};

/**
 * Sets `Retry-After` from the error's `details.retryAfterSeconds` (or `fallbackSeconds`)
 * on the answer the error handler will build, then returns the error to throw.
 *
 * @example
 * throw withRetryAfter(c, error);
 */
export function withRetryAfter(c: Context, error: DrayError, fallbackSeconds = 5): DrayError {
  const details = error.details as { retryAfterSeconds?: unknown } | undefined;
  const seconds =
    typeof details?.retryAfterSeconds === "number" ? details.retryAfterSeconds : fallbackSeconds;
  c.header("Retry-After", String(Math.max(1, Math.ceil(seconds))));
  return error;
}
