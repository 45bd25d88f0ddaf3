/** Hono middleware that authenticates API requests by bearer token. */
import type { Context, MiddlewareHandler } from "hono";
import type { Db } from "../store/open-store.js";
import { authenticateToken, bearerTokenOf, unauthenticated } from "./authenticate.js";
import type { Principal } from "./roles.js";

/** Context variables set by {@link createAuthMiddleware}. */
export interface AuthVariables {
  principal: Principal;
}

/** Options of {@link createAuthMiddleware}. */
export interface AuthMiddlewareOptions {
  db: Db;
  now?: () => Date;
}

/**
 * Requires `Authorization: Bearer <token>` of an active API token and sets
 * `c.get("principal")`. On failure it throws an `unauthenticated` DrayError;
 * the API's error handler answers 401 with `WWW-Authenticate: Bearer`.
 *
 * @example
 * app.use("/api/v1/*", createAuthMiddleware({ db }));
 */
export function createAuthMiddleware<E extends { Variables: AuthVariables } = { Variables: AuthVariables }>(
  options: AuthMiddlewareOptions,
): MiddlewareHandler<E> {
  const now = options.now ?? (() => new Date());
  return async (c, next) => {
    const token = bearerTokenOf(c.req.header("authorization"));
    if (!token) throw unauthenticated("missing");
    const principal = await authenticateToken(options.db, token, now());
    if (!principal) throw unauthenticated("invalid");
    (c as unknown as Context<{ Variables: AuthVariables }>).set("principal", principal);
    await next();
  };
}
