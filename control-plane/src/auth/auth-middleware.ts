/** Hono middleware that authenticates API requests by bearer token. */
import { DrayError, isDrayError } from "@dray/common";
import { getConnInfo } from "@hono/node-server/conninfo";
import type { Context, MiddlewareHandler } from "hono";
import type { Db } from "../store/open-store.js";
import { authenticateToken, bearerTokenOf, unauthenticated } from "./authenticate.js";
import { type FailedAuthLimiter, sharedFailedAuthLimiter } from "./failed-auth-limiter.js";
import type { Principal } from "./roles.js";
import { credentialFingerprint } from "./tokens.js";

/** Context variables set by {@link createAuthMiddleware}. */
export interface AuthVariables {
  principal: Principal;
}

/** Options of {@link createAuthMiddleware}. */
export interface AuthMiddlewareOptions {
  db: Db;
  now?: () => Date;
  /** Failed authentications per client address. @default the process's {@link sharedFailedAuthLimiter} */
  failedAuthLimiter?: FailedAuthLimiter;
}

/**
 * The client's address: the socket's remote address under `@hono/node-server`,
 * undefined when there is no socket (e.g. `app.request()` in tests, which is
 * then not rate-limited). Proxy headers are not trusted.
 */
export function clientAddressOf(c: Context): string | undefined {
  try {
    return getConnInfo(c).remote.address || undefined;
  } catch {
    return undefined;
  }
}

/** The `resource_exhausted` error of an address with too many failed authentications. */
export function tooManyFailedAuthentications(retryAfterSeconds: number): DrayError {
  return new DrayError(
    "resource_exhausted",
    `too many failed authentications from this address: retry in ${retryAfterSeconds} s with a valid token`,
    { details: { retryAfterSeconds } },
  );
}

/**
 * Authenticates `token` (already taken from the request) for the request `c`,
 * with the failed-authentication limit of the client's address: a limited
 * address gets `resource_exhausted` (and `Retry-After`) without a lookup,
 * unless the token already succeeded from that address; a
 * missing token `unauthenticated` (not counted); an invalid, revoked or expired
 * one `unauthenticated` (counted). For routes that read the token elsewhere
 * (e.g. the SSE route's `?token=`).
 *
 * @example
 * const principal = await authenticateRequest(c, token, { db, now: new Date() });
 */
export async function authenticateRequest(
  c: Context,
  token: string | undefined,
  options: { db: Db; now: Date; failedAuthLimiter?: FailedAuthLimiter | undefined },
): Promise<Principal> {
  const limiter = options.failedAuthLimiter ?? sharedFailedAuthLimiter();
  const address = clientAddressOf(c);
  const fingerprint = token ? credentialFingerprint(token) : undefined;
  if (address !== undefined) {
    const retryAfter = limiter.retryAfterSeconds(address, Date.now(), fingerprint);
    if (retryAfter > 0) {
      c.header("Retry-After", String(retryAfter));
      throw tooManyFailedAuthentications(retryAfter);
    }
  }
  if (!token) throw unauthenticated("missing");
  let principal: Principal | undefined;
  try {
    principal = await authenticateToken(options.db, token, options.now);
  } catch (error) {
    if (address !== undefined && isDrayError(error) && error.code === "unauthenticated")
      limiter.recordFailure(address, Date.now());
    throw error;
  }
  if (!principal) {
    if (address !== undefined) limiter.recordFailure(address, Date.now());
    throw unauthenticated("invalid");
  }
  if (address !== undefined && fingerprint !== undefined) limiter.recordSuccess(address, fingerprint);
  return principal;
}

/**
 * Requires `Authorization: Bearer <token>` of an active API token and sets
 * `c.get("principal")`. On failure it throws an `unauthenticated` DrayError;
 * the API's error handler answers 401 with `WWW-Authenticate: Bearer`. A client
 * address with too many invalid tokens gets 429 `resource_exhausted` with
 * `Retry-After` (no token lookup) until its window ends (see {@link authenticateRequest}).
 *
 * @example
 * app.use("/api/v1/*", createAuthMiddleware({ db }));
 */
export function createAuthMiddleware<E extends { Variables: AuthVariables } = { Variables: AuthVariables }>(
  options: AuthMiddlewareOptions,
): MiddlewareHandler<E> {
  const now = options.now ?? (() => new Date());
  return async (c, next) => {
    const principal = await authenticateRequest(c, bearerTokenOf(c.req.header("authorization")), {
      db: options.db,
      now: now(),
      failedAuthLimiter: options.failedAuthLimiter,
    });
    (c as unknown as Context<{ Variables: AuthVariables }>).set("principal", principal);
    await next();
  };
}
