/** GET /api/v1/usage: the organisation's records used this month against its monthly limit. */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { requireOrganisationRole } from "../auth/roles.js";
import { usageView } from "../executions/usage-view.js";
import type { ApiEnv, RouteDeps } from "./api-env.js";
import { Usage } from "./execution-schemas.js";
import { createRouter } from "./router.js";
import { bearerSecurity, errorResponses, jsonResponse } from "./schemas.js";

const usageRoute = createRoute({
  method: "get",
  path: "/usage",
  operationId: "getUsage",
  summary: "Records used and reserved this UTC month, the monthly limit and what remains",
  tags: ["organisations"],
  security: bearerSecurity,
  responses: { 200: jsonResponse(Usage, "This month's usage"), ...errorResponses(401, 403) },
});

/** The usage route. */
export function usageRoutes(deps: RouteDeps): OpenAPIHono<ApiEnv> {
  const app = createRouter();
  app.openapi(usageRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "viewer");
    return c.json(await usageView(deps.db, organisationId, deps.now()), 200);
  });
  return app;
}
