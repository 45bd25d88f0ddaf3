/**
 * POST /api/v1/sign-in-links: a one-time link that opens a web UI session for
 * the calling token (as `gh` or `flyctl` open the browser signed in). The
 * demo prints one; the link works once, within 15 minutes.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { requireOrganisationRole } from "../auth/roles.js";
import { createSignInLink, SIGN_IN_LINK_TTL_MS } from "../web/web-sessions.js";
import type { ApiEnv, RouteDeps } from "./api-env.js";
import { createRouter } from "./router.js";
import { bearerSecurity, errorResponses, jsonResponse, Timestamp } from "./schemas.js";

const SignInLink = z
  .object({
    path: z.string().openapi({
      description: "Path of the link on this control plane: open it in a browser once",
      example: "/sign-in/link/3Hk…",
    }),
    expiresAt: Timestamp,
  })
  .openapi("SignInLink");

const createRouteDef = createRoute({
  method: "post",
  path: "/sign-in-links",
  operationId: "createSignInLink",
  summary: "A one-time link that signs a browser in to the web UI as the calling token (viewer)",
  tags: ["organisations"],
  security: bearerSecurity,
  responses: { 201: jsonResponse(SignInLink, "The link, usable once"), ...errorResponses(401, 403) },
});

/** The sign-in link route. */
export function signInLinkRoutes(deps: RouteDeps): OpenAPIHono<ApiEnv> {
  const app = createRouter();
  app.openapi(createRouteDef, async (c) => {
    const principal = c.get("principal");
    requireOrganisationRole(principal, "viewer");
    const now = deps.now();
    const code = await createSignInLink(deps.db, principal.tokenId, now);
    return c.json(
      {
        path: `/sign-in/link/${code}`,
        expiresAt: new Date(now.getTime() + SIGN_IN_LINK_TTL_MS).toISOString(),
      },
      201,
    );
  });
  return app;
}
