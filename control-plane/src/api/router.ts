/** A sub-app for one resource, with the API's validation hook. */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { ApiEnv } from "./api-env.js";
import { validationHook } from "./errors.js";

/** A new OpenAPIHono router whose zod failures answer 400 `invalid_argument`. */
export function createRouter(): OpenAPIHono<ApiEnv> {
  return new OpenAPIHono<ApiEnv>({ defaultHook: validationHook });
}
