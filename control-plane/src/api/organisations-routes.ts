/** /api/v1/organisations: tenants, managed by the system admin. */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { requireSystem } from "../auth/roles.js";
import {
  createOrganisation,
  getOrganisationFor,
  updateOrganisation,
} from "../organisations/organisations-service.js";
import type { ApiEnv, RouteDeps } from "./api-env.js";
import { createRouter } from "./router.js";
import { bearerSecurity, errorResponses, IdParams, jsonBody, jsonResponse, Timestamp } from "./schemas.js";

const Organisation = z
  .object({
    id: z.string().openapi({ format: "uuid" }),
    name: z.string(),
    monthlyRecordLimit: z.number().int(),
    createdAt: Timestamp,
    updatedAt: Timestamp,
  })
  .openapi("Organisation");

const name = z.string().trim().min(1).max(200);
const monthlyRecordLimit = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

const CreateOrganisation = z
  .strictObject({ name, monthlyRecordLimit: monthlyRecordLimit.optional() })
  .openapi("CreateOrganisation");
const UpdateOrganisation = z
  .strictObject({ name: name.optional(), monthlyRecordLimit: monthlyRecordLimit.optional() })
  .openapi("UpdateOrganisation");

const tags = ["organisations"];

const createOrganisationRoute = createRoute({
  method: "post",
  path: "/organisations",
  operationId: "createOrganisation",
  summary: "Create an organisation (system admin)",
  tags,
  security: bearerSecurity,
  request: { body: jsonBody(CreateOrganisation) },
  responses: {
    201: jsonResponse(Organisation, "The new organisation"),
    ...errorResponses(400, 401, 403),
  },
});

const getOrganisationRoute = createRoute({
  method: "get",
  path: "/organisations/{id}",
  operationId: "getOrganisation",
  summary: "Read an organisation (system admin, or a token of that organisation)",
  tags,
  security: bearerSecurity,
  request: { params: IdParams },
  responses: { 200: jsonResponse(Organisation, "The organisation"), ...errorResponses(401, 404) },
});

const updateOrganisationRoute = createRoute({
  method: "patch",
  path: "/organisations/{id}",
  operationId: "updateOrganisation",
  summary: "Rename an organisation or change its monthly record limit (system admin)",
  tags,
  security: bearerSecurity,
  request: { params: IdParams, body: jsonBody(UpdateOrganisation) },
  responses: {
    200: jsonResponse(Organisation, "The updated organisation"),
    ...errorResponses(400, 401, 403, 404),
  },
});

/** Routes of organisations. */
export function organisationsRoutes(deps: RouteDeps): OpenAPIHono<ApiEnv> {
  const app = createRouter();

  app.openapi(createOrganisationRoute, async (c) => {
    requireSystem(c.get("principal"));
    const body = c.req.valid("json");
    const organisation = await createOrganisation(
      deps.db,
      {
        name: body.name,
        monthlyRecordLimit: body.monthlyRecordLimit ?? deps.config.defaultMonthlyRecordLimit,
      },
      deps.now(),
    );
    deps.logger.info("organisation created", { organisationId: organisation.id });
    return c.json(organisation, 201);
  });

  app.openapi(getOrganisationRoute, async (c) => {
    const organisation = await getOrganisationFor(deps.db, c.get("principal"), c.req.valid("param").id);
    return c.json(organisation, 200);
  });

  app.openapi(updateOrganisationRoute, async (c) => {
    requireSystem(c.get("principal"));
    const organisation = await updateOrganisation(
      deps.db,
      c.req.valid("param").id,
      c.req.valid("json"),
      deps.now(),
    );
    return c.json(organisation, 200);
  });

  return app;
}
