/** The control plane's HTTP API. */
export type { ApiDeps, ApiEnv } from "./api-env.js";
export { API_BASE_PATH, createApiApp, OPENAPI_INFO, OPENAPI_PATH } from "./create-api-app.js";
export {
  createErrorHandler,
  type ErrorBody,
  errorResponse,
  notFoundHandler,
  validationHook,
} from "./errors.js";
export { createRouter } from "./router.js";
