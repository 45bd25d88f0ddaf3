/** /api/v1/tokens: API tokens of an organisation (admins) or of any organisation (system admin). */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { ORGANISATION_ROLES } from "../auth/roles.js";
import { createToken, listTokens, revokeToken, TOKENS_PAGE } from "../tokens/tokens-service.js";
import type { ApiEnv, RouteDeps } from "./api-env.js";
import { createRouter } from "./router.js";
import { bearerSecurity, errorResponses, IdParams, jsonBody, jsonResponse, Timestamp } from "./schemas.js";

const Token = z
  .object({
    id: z.string().openapi({ format: "uuid" }),
    name: z.string(),
    role: z.enum(["system", ...ORGANISATION_ROLES]),
    organisationId: z.string().nullable(),
    tokenPrefix: z.string().openapi({
      description:
        "A non-secret label to tell tokens apart: `dray_` and the next 4 characters of a generated token, or `(chosen)` for a token the operator chose (DRAY_ADMIN_TOKEN), of which nothing is stored",
      example: "dray_AbCd",
    }),
    createdAt: Timestamp,
    lastUsedAt: Timestamp.nullable(),
    revokedAt: Timestamp.nullable(),
    expiresAt: Timestamp.nullable().openapi({ description: "When the token stops working; null: never" }),
  })
  .openapi("Token");

const CreatedToken = Token.extend({
  token: z.string().openapi({ description: "The secret; shown only in this answer" }),
}).openapi("CreatedToken");

const CreateToken = z
  .strictObject({
    name: z.string().trim().min(1).max(100),
    role: z.enum(ORGANISATION_ROLES),
    organisationId: z.string().optional().openapi({
      format: "uuid",
      description: "Required for the system admin; defaults to the caller's organisation",
    }),
    expiresAt: z
      .string()
      .max(40)
      // Length first: the date-time pattern runs only on short values.
      .pipe(
        z.iso.datetime({ offset: true, message: "must be an ISO 8601 date-time, e.g. 2027-01-31T00:00:00Z" }),
      )
      .optional()
      .openapi({
        type: "string",
        format: "date-time",
        description: "When the token stops working (in the future); omit for a token that does not expire",
      }),
  })
  .openapi("CreateToken");

const ListTokensQuery = z.object({
  organisationId: z
    .string()
    .optional()
    .openapi({ format: "uuid", description: "System admin only: list one organisation's tokens" }),
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(TOKENS_PAGE.max)
    .optional()
    .openapi({ description: `Tokens per page (default ${TOKENS_PAGE.default}, at most ${TOKENS_PAGE.max})` }),
  cursor: z
    .string()
    .max(128)
    .optional()
    .openapi({ description: "`next` of the previous page, to continue the list" }),
});

const tags = ["tokens"];

const createTokenRoute = createRoute({
  method: "post",
  path: "/tokens",
  operationId: "createToken",
  summary: "Issue an API token (organisation admin, or system admin naming the organisation)",
  tags,
  security: bearerSecurity,
  request: { body: jsonBody(CreateToken) },
  responses: {
    201: jsonResponse(CreatedToken, "The token, with its secret"),
    ...errorResponses(400, 401, 403, 404),
  },
});

const listTokensRoute = createRoute({
  method: "get",
  path: "/tokens",
  operationId: "listTokens",
  summary: "List API tokens (never their secrets)",
  tags,
  security: bearerSecurity,
  request: { query: ListTokensQuery },
  responses: {
    200: jsonResponse(
      z.object({
        tokens: z.array(Token),
        next: z
          .string()
          .nullable()
          .openapi({ description: "Cursor of the next page; null on the last page" }),
      }),
      "A page of tokens, oldest first, revoked ones included",
    ),
    ...errorResponses(400, 401, 403, 404),
  },
});

const revokeTokenRoute = createRoute({
  method: "delete",
  path: "/tokens/{id}",
  operationId: "revokeToken",
  summary: "Revoke an API token; requests with it then answer 401",
  tags,
  security: bearerSecurity,
  request: { params: IdParams },
  responses: { 204: { description: "Revoked" }, ...errorResponses(401, 403, 404) },
});

/** Routes of API tokens. */
export function tokensRoutes(deps: RouteDeps): OpenAPIHono<ApiEnv> {
  const app = createRouter();

  app.openapi(createTokenRoute, async (c) => {
    const created = await createToken(deps.db, c.get("principal"), c.req.valid("json"), deps.now());
    deps.logger.info("api token created", {
      tokenId: created.id,
      organisationId: created.organisationId,
      role: created.role,
      expiresAt: created.expiresAt,
      by: c.get("principal").tokenId,
    });
    return c.json(created, 201);
  });

  app.openapi(listTokensRoute, async (c) => {
    const page = await listTokens(deps.db, c.get("principal"), c.req.valid("query"));
    return c.json(page, 200);
  });

  app.openapi(revokeTokenRoute, async (c) => {
    const id = c.req.valid("param").id;
    await revokeToken(deps.db, c.get("principal"), id, deps.now());
    deps.logger.info("api token revoked", { tokenId: id, by: c.get("principal").tokenId });
    return c.body(null, 204);
  });

  return app;
}
