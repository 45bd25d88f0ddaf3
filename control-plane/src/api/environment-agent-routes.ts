/**
 * /api/v1/environments/{id}/…: what goes through the environment's agent
 * (connection test, entity snapshot) and re-pairing it (new enrollment token).
 */

import { DrayError } from "@dray/common";
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { requireOrganisationRole } from "../auth/roles.js";
import { testEnvironmentConnection } from "../environments/connection-test.js";
import { ConnectionTestLimiter, type ConnectionTestLimits } from "../environments/connection-test-limiter.js";
import { getEntitySnapshot } from "../environments/entity-snapshots.js";
import { getEnvironment, renewEnrollmentToken } from "../environments/environments-service.js";
import type { ApiEnv, RouteDeps } from "./api-env.js";
import { ConnectionTestResult, EnrollmentToken, SchemaSnapshot } from "./environment-schemas.js";
import { createRouter } from "./router.js";
import { bearerSecurity, errorResponses, IdParams, jsonResponse } from "./schemas.js";
import { tooManyRequestsResponse, withRetryAfter } from "./too-many-requests.js";

const tags = ["environments"];

const EntitiesQuery = z.object({
  refresh: z
    .enum(["true", "false"])
    .optional()
    .openapi({ description: "true: fetch a fresh snapshot through the agent (operator)" }),
});

const testRoute = createRoute({
  method: "post",
  path: "/environments/{id}/test",
  operationId: "testEnvironmentConnection",
  summary: "Live round trip to the environment's database through its agent (operator)",
  description:
    "At most one test per environment runs at a time, and at most 6 start per minute; past that the answer " +
    "is 429 `resource_exhausted` with `Retry-After`.",
  tags,
  security: bearerSecurity,
  request: { params: IdParams },
  responses: {
    200: jsonResponse(ConnectionTestResult, "The connection works"),
    ...errorResponses(401, 403, 404, 503),
    ...tooManyRequestsResponse,
  },
});

const entitiesRoute = createRoute({
  method: "get",
  path: "/environments/{id}/entities",
  operationId: "listEnvironmentEntities",
  summary: "The environment's entities (cached snapshot; fetched through the agent when missing)",
  tags,
  security: bearerSecurity,
  request: { params: IdParams, query: EntitiesQuery },
  responses: {
    200: jsonResponse(SchemaSnapshot, "The entity snapshot"),
    ...errorResponses(400, 401, 403, 404, 503),
  },
});

const refreshRoute = createRoute({
  method: "post",
  path: "/environments/{id}/refresh",
  operationId: "refreshEnvironmentEntities",
  summary: "Fetch a fresh entity snapshot through the agent and cache it (operator)",
  tags,
  security: bearerSecurity,
  request: { params: IdParams },
  responses: {
    200: jsonResponse(SchemaSnapshot, "The fresh snapshot"),
    ...errorResponses(401, 403, 404, 503),
  },
});

const enrollmentTokenRoute = createRoute({
  method: "post",
  path: "/environments/{id}/enrollment-token",
  operationId: "createEnrollmentToken",
  summary: "Issue a new enrollment token to (re-)pair an agent; older unused ones expire (operator)",
  tags,
  security: bearerSecurity,
  request: { params: IdParams },
  responses: { 201: jsonResponse(EnrollmentToken, "The enrollment token"), ...errorResponses(401, 403, 404) },
});

/** Options of {@link environmentAgentRoutes}, for tests; production uses the defaults. */
export interface EnvironmentAgentRouteOptions {
  /** Connection tests per environment. @default one in flight, 6 per minute */
  connectionTests?: ConnectionTestLimits;
}

/** Agent-backed routes of environments. */
export function environmentAgentRoutes(
  deps: RouteDeps,
  options: EnvironmentAgentRouteOptions = {},
): OpenAPIHono<ApiEnv> {
  const app = createRouter();
  const connectionTests = new ConnectionTestLimiter(options.connectionTests);

  app.openapi(testRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "operator");
    const environment = await getEnvironment(deps.db, organisationId, c.req.valid("param").id);
    let done: () => void;
    try {
      done = connectionTests.admit(environment.id, deps.now().getTime());
    } catch (error) {
      throw withRetryAfter(c, DrayError.from(error));
    }
    try {
      const result = await testEnvironmentConnection(deps.db, deps.agents, environment, {
        now: deps.now,
        signal: c.req.raw.signal,
      });
      return c.json(result, 200);
    } finally {
      done();
    }
  });

  app.openapi(entitiesRoute, async (c) => {
    const refresh = c.req.valid("query").refresh === "true";
    const organisationId = requireOrganisationRole(c.get("principal"), refresh ? "operator" : "viewer");
    const environment = await getEnvironment(deps.db, organisationId, c.req.valid("param").id);
    const snapshot = await getEntitySnapshot(deps.db, deps.agents, environment, {
      refresh,
      now: deps.now,
      signal: c.req.raw.signal,
    });
    return c.json(snapshot, 200);
  });

  app.openapi(refreshRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "operator");
    const environment = await getEnvironment(deps.db, organisationId, c.req.valid("param").id);
    const snapshot = await getEntitySnapshot(deps.db, deps.agents, environment, {
      refresh: true,
      now: deps.now,
      signal: c.req.raw.signal,
    });
    return c.json(snapshot, 200);
  });

  app.openapi(enrollmentTokenRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "operator");
    const id = c.req.valid("param").id;
    const issued = await renewEnrollmentToken(deps.db, organisationId, id, {
      enrollmentTokenTtlMs: deps.config.enrollmentTokenTtlMs,
      now: deps.now(),
    });
    deps.logger.info("enrollment token issued", { organisationId, environmentId: id });
    return c.json(
      { enrollmentToken: issued.enrollmentToken, expiresAt: issued.expiresAt.toISOString() },
      201,
    );
  });

  return app;
}
