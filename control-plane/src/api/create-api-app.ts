/**
 * The control plane's HTTP API: Hono + zod-openapi under /api/v1, the OpenAPI
 * 3.1 document at /api/v1/openapi.json, /healthz, /readyz, and the web UI on
 * every other path (web/web-routes.tsx).
 */
import { DrayError } from "@dray/common";
import { OpenAPIHono } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import { requestId } from "hono/request-id";
import { createAuthMiddleware } from "../auth/auth-middleware.js";
import { requestMetrics } from "../metrics/http-metrics.js";
import { metricsAccess } from "../metrics/metrics-auth.js";
import type { OpenApiDocument } from "../web/pages/docs-page.js";
import { isWebPath, webRoutes } from "../web/web-routes.js";
import type { ApiDeps, ApiEnv, RouteDeps } from "./api-env.js";
import { environmentAgentRoutes } from "./environment-agent-routes.js";
import { environmentsRoutes } from "./environments-routes.js";
import { createErrorHandler, errorResponse, notFoundHandler, validationHook } from "./errors.js";
import { executionEventsRoutes, executionsRoutes } from "./executions-routes.js";
import { filesRoutes, UPLOAD_PATH } from "./files-routes.js";
import { healthRoutes } from "./health-routes.js";
import { inputGuard, urlGuard } from "./input-guard.js";
import { organisationsRoutes } from "./organisations-routes.js";
import { pipelinesRoutes } from "./pipelines-routes.js";
import { signInLinkRoutes } from "./sign-in-link-routes.js";
import { statusRoutes } from "./status-routes.js";
import { tokensRoutes } from "./tokens-routes.js";
import { usageRoutes } from "./usage-routes.js";

/** Base path of the API. */
export const API_BASE_PATH = "/api/v1";
/** Path of the OpenAPI 3.1 document (served without authentication). */
export const OPENAPI_PATH = `${API_BASE_PATH}/openapi.json`;

/**
 * Largest accepted request body (413 past it). Large enough that a body with
 * a 1 MiB string, even one JSON escapes to twice its size, reaches validation
 * and gets a 400 naming the field.
 */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;

/**
 * The OpenAPI document's metadata: `info` (with its licence), `servers` and the descriptions of the
 * tags the routes use. test/openapi-lint.test.ts lints the generated document (sdk/openapi.json).
 */
export const OPENAPI_INFO = {
  openapi: "3.1.0",
  info: {
    title: "Dray control plane API",
    version: "1.0.0",
    description:
      "Copies entity records between database environments through agents. Every /api/v1 route takes " +
      "`Authorization: Bearer <token>`. Errors: `{ error: { code, message, details } }` with gRPC-style snake_case codes.",
    // The repository grants no licence yet; change this with the repository's LICENSE file.
    license: { name: "UNLICENSED" },
  },
  servers: [
    { url: "/", description: "The control plane that serves this document (paths start with /api/v1)" },
    {
      url: "http://127.0.0.1:8080",
      description: "A control plane on this machine with the default DRAY_HTTP_PORT",
    },
  ],
  tags: [
    {
      name: "organisations",
      description: "Organisations (tenants), their monthly record limit and usage, and web sign-in links",
    },
    { name: "tokens", description: "API tokens of an organisation" },
    {
      name: "environments",
      description:
        "Database environments, their agents' enrollment tokens, connection tests and entity snapshots",
    },
    { name: "pipelines", description: "Pipelines: what is copied from one environment to another, and how" },
    {
      name: "executions",
      description:
        "Runs of pipelines: start, follow (also as server-sent events), cancel, history, job status",
    },
  ],
};

/**
 * Builds the HTTP API. Serve it with `serve({ fetch: app.fetch })`, or call it
 * in tests with `app.request(path, init)`.
 *
 * @example
 * const app = createApiApp({ db: store.db, agents, logger, config });
 * const res = await app.request("/api/v1/environments", { headers: { authorization: `Bearer ${token}` } });
 */
export function createApiApp(deps: ApiDeps): OpenAPIHono<ApiEnv> {
  const routeDeps: RouteDeps = { ...deps, now: deps.now ?? (() => new Date()) };
  const app = new OpenAPIHono<ApiEnv>({ defaultHook: validationHook });
  app.onError(createErrorHandler(deps.logger));
  app.notFound(notFoundHandler);
  app.use("*", requestId());
  const metrics = deps.metrics;
  if (metrics) {
    app.use("*", requestMetrics(metrics));
    const mayRead = metricsAccess(deps.metricsToken);
    app.get("/metrics", async (c) => {
      const refused = mayRead(c.req.header("authorization"));
      if (refused) return errorResponse(c, refused);
      return c.body(await metrics.render(), 200, { "content-type": metrics.contentType });
    });
  }

  const limitBody = bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: (c) =>
      errorResponse(
        c,
        new DrayError("invalid_argument", `request body is larger than ${MAX_BODY_BYTES / 1024 / 1024} MiB`),
        413,
      ),
  });
  // File uploads are streamed into the store and bounded by DRAY_UPLOAD_MAX_BYTES instead (files-routes.ts).
  app.use(`${API_BASE_PATH}/*`, (c, next) =>
    c.req.path === `${API_BASE_PATH}${UPLOAD_PATH}` ? next() : limitBody(c, next),
  );
  // A NUL in a JSON body answers 400 before any route (the SSE route included) sees it.
  app.use(`${API_BASE_PATH}/*`, inputGuard());
  // The SSE route authenticates itself (bearer or ?token= for EventSource): mounted before the bearer middleware.
  app.route(API_BASE_PATH, executionEventsRoutes(routeDeps));
  const authenticate = createAuthMiddleware<ApiEnv>({ db: deps.db, now: routeDeps.now });
  app.use(`${API_BASE_PATH}/*`, async (c, next) =>
    c.req.path === OPENAPI_PATH ? next() : authenticate(c, next),
  );

  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    description: "An API token (`dray_…`) or the system-admin token",
  });
  app.route("/", healthRoutes(routeDeps));
  app.route(API_BASE_PATH, organisationsRoutes(routeDeps));
  app.route(API_BASE_PATH, tokensRoutes(routeDeps));
  app.route(API_BASE_PATH, environmentsRoutes(routeDeps));
  app.route(API_BASE_PATH, environmentAgentRoutes(routeDeps));
  app.route(API_BASE_PATH, pipelinesRoutes(routeDeps));
  app.route(API_BASE_PATH, executionsRoutes(routeDeps));
  app.route(API_BASE_PATH, statusRoutes(routeDeps));
  app.route(API_BASE_PATH, filesRoutes(routeDeps));
  app.route(API_BASE_PATH, usageRoutes(routeDeps));
  app.route(API_BASE_PATH, signInLinkRoutes(routeDeps));
  app.doc31(OPENAPI_PATH, OPENAPI_INFO);
  // The web UI answers every path the API, health and metrics routes do not serve.
  let document: OpenApiDocument | undefined;
  const web = webRoutes(routeDeps, {
    path: OPENAPI_PATH,
    document: () => {
      document ??= app.getOpenAPI31Document(OPENAPI_INFO) as unknown as OpenApiDocument;
      return document;
    },
  });
  // Over-long paths and query values, and NULs in the query, answer 400 before routing decodes the URL.
  const dispatch = app.fetch;
  app.fetch = (request, env, executionCtx) =>
    urlGuard(request.url) ??
    (isWebPath(new URL(request.url).pathname)
      ? web.fetch(request, env, executionCtx)
      : dispatch(request, env, executionCtx));
  return app;
}
