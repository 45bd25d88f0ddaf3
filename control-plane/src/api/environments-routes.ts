/** /api/v1/environments: the organisation's environments (create, list, read, update, delete). */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { requireOrganisationRole } from "../auth/roles.js";
import { toEnvironmentView } from "../environments/environment-view.js";
import {
  createEnvironment,
  deleteEnvironment,
  getEnvironment,
  listEnvironments,
  updateEnvironment,
} from "../environments/environments-service.js";
import type { ApiEnv, RouteDeps } from "./api-env.js";
import {
  CreatedEnvironment,
  CreateEnvironment,
  Environment,
  ListEnvironmentsQuery,
  UpdateEnvironment,
} from "./environment-schemas.js";
import { nextField, pageQuery } from "./pagination.js";
import { createRouter } from "./router.js";
import { bearerSecurity, errorResponses, IdParams, jsonBody, jsonResponse } from "./schemas.js";

const tags = ["environments"];

const createEnvironmentRoute = createRoute({
  method: "post",
  path: "/environments",
  operationId: "createEnvironment",
  summary: "Create an environment and its first enrollment token (operator)",
  tags,
  security: bearerSecurity,
  request: { body: jsonBody(CreateEnvironment) },
  responses: {
    201: jsonResponse(CreatedEnvironment, "The environment and a single-use enrollment token for its agent"),
    ...errorResponses(400, 401, 403, 409),
  },
});

const listEnvironmentsRoute = createRoute({
  method: "get",
  path: "/environments",
  operationId: "listEnvironments",
  summary: "List the organisation's environments, optionally searched and sorted, a page at a time",
  description:
    "Pages of `limit` environments (default 50, at most 200). When `next` is not null, pass it as `cursor` " +
    "(with the same `search` and `sort`) to get the next page.",
  tags,
  security: bearerSecurity,
  request: { query: ListEnvironmentsQuery.extend(pageQuery) },
  responses: {
    200: jsonResponse(
      z.object({ environments: z.array(Environment), ...nextField }).openapi("EnvironmentPage"),
      "A page of environments",
    ),
    ...errorResponses(400, 401, 403),
  },
});

const getEnvironmentRoute = createRoute({
  method: "get",
  path: "/environments/{id}",
  operationId: "getEnvironment",
  summary: "Read an environment",
  tags,
  security: bearerSecurity,
  request: { params: IdParams },
  responses: { 200: jsonResponse(Environment, "The environment"), ...errorResponses(401, 403, 404) },
});

const updateEnvironmentRoute = createRoute({
  method: "patch",
  path: "/environments/{id}",
  operationId: "updateEnvironment",
  summary: "Update an environment's name, application, url or protection (operator)",
  tags,
  security: bearerSecurity,
  request: { params: IdParams, body: jsonBody(UpdateEnvironment) },
  responses: {
    200: jsonResponse(Environment, "The updated environment"),
    ...errorResponses(400, 401, 403, 404, 409),
  },
});

const deleteEnvironmentRoute = createRoute({
  method: "delete",
  path: "/environments/{id}",
  operationId: "deleteEnvironment",
  summary: "Delete an environment (admin)",
  tags,
  security: bearerSecurity,
  request: { params: IdParams },
  responses: { 204: { description: "Deleted" }, ...errorResponses(401, 403, 404) },
});

/** CRUD routes of environments. */
export function environmentsRoutes(deps: RouteDeps): OpenAPIHono<ApiEnv> {
  const app = createRouter();
  const view = (row: Parameters<typeof toEnvironmentView>[0]) =>
    toEnvironmentView(row, deps.agents.isConnected(row.id));

  app.openapi(createEnvironmentRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "operator");
    const { environment, enrollment } = await createEnvironment(
      deps.db,
      organisationId,
      c.req.valid("json"),
      {
        enrollmentTokenTtlMs: deps.config.enrollmentTokenTtlMs,
        now: deps.now(),
      },
    );
    deps.logger.info("environment created", {
      organisationId,
      environmentId: environment.id,
      name: environment.name,
    });
    return c.json(
      {
        environment: view(environment),
        enrollmentToken: enrollment.enrollmentToken,
        enrollmentTokenExpiresAt: enrollment.expiresAt.toISOString(),
      },
      201,
    );
  });

  app.openapi(listEnvironmentsRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "viewer");
    const { limit, cursor, ...query } = c.req.valid("query");
    const page = await listEnvironments(deps.db, organisationId, query, { limit, cursor });
    return c.json({ environments: page.environments.map(view), next: page.next }, 200);
  });

  app.openapi(getEnvironmentRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "viewer");
    return c.json(view(await getEnvironment(deps.db, organisationId, c.req.valid("param").id)), 200);
  });

  app.openapi(updateEnvironmentRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "operator");
    const row = await updateEnvironment(
      deps.db,
      organisationId,
      c.req.valid("param").id,
      c.req.valid("json"),
      deps.now(),
    );
    return c.json(view(row), 200);
  });

  app.openapi(deleteEnvironmentRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "admin");
    const id = c.req.valid("param").id;
    await deleteEnvironment(deps.db, organisationId, id);
    deps.logger.info("environment deleted", { organisationId, environmentId: id });
    return c.body(null, 204);
  });

  return app;
}
