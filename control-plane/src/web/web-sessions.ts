/**
 * Browser sessions of the web UI. Signing in trades an API token (checked
 * like a bearer token) for a session secret kept in an HttpOnly cookie; the
 * session acts with the token's role and organisation, so revoking the token
 * ends its sessions too. Only SHA-256 hashes of secrets and sign-in codes are
 * stored, and nothing here logs one.
 */
import { DrayError } from "@dray/common";
import { and, eq, gt, isNull } from "drizzle-orm";
import { authenticateToken } from "../auth/authenticate.js";
import type { Principal } from "../auth/roles.js";
import { hashToken, randomBase62 } from "../auth/tokens.js";
import { newId } from "../store/ids.js";
import type { Db } from "../store/open-store.js";
import { apiTokens, webSessions, webSignInLinks } from "../store/schema.js";

/** Name of the session cookie (HttpOnly, SameSite=Strict). */
export const SESSION_COOKIE = "dray_session";

/** How long a session lasts from sign-in. */
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
/** How long a one-time sign-in link stays usable. */
export const SIGN_IN_LINK_TTL_MS = 15 * 60 * 1000;
/** Characters of a session secret or sign-in code (base62, about 256 bits). */
const SECRET_LENGTH = 43;

/** A signed-in browser: who it acts as, and its session's anti-CSRF token. */
export interface WebSession {
  id: string;
  principal: Principal;
  csrfToken: string;
}

/** The error of a sign-in with a token that is not valid. */
function badToken(): DrayError {
  return new DrayError(
    "unauthenticated",
    "that API token is not valid, has been revoked or has expired: paste a token of your organisation (dray_…)",
  );
}

/** Opens a session for the API token `tokenId`; returns the secret for the cookie (shown nowhere else). */
async function openSession(db: Db, tokenId: string, now: Date): Promise<{ secret: string }> {
  const secret = randomBase62(SECRET_LENGTH);
  await db.insert(webSessions).values({
    id: newId(),
    secretHash: hashToken(secret),
    tokenId,
    csrfToken: randomBase62(SECRET_LENGTH),
    createdAt: now,
    expiresAt: new Date(now.getTime() + SESSION_TTL_MS),
  });
  return { secret };
}

/**
 * Signs in with an API token of an organisation. Throws `unauthenticated` for
 * a token that is not valid, and `permission_denied` for the system-admin
 * token (the UI shows one organisation).
 */
export async function signInWithToken(db: Db, token: string, now: Date): Promise<{ secret: string }> {
  let principal: Principal | undefined;
  try {
    principal = await authenticateToken(db, token.trim(), now);
  } catch {
    throw badToken();
  }
  if (!principal) throw badToken();
  if (principal.organisationId === null)
    throw new DrayError(
      "permission_denied",
      "the system-admin token has no organisation to show: sign in with a token of an organisation",
    );
  return openSession(db, principal.tokenId, now);
}

/**
 * Creates a one-time sign-in link code for the API token `tokenId` (the demo
 * prints one): usable once within {@link SIGN_IN_LINK_TTL_MS}.
 */
export async function createSignInLink(db: Db, tokenId: string, now: Date): Promise<string> {
  const code = randomBase62(SECRET_LENGTH);
  await db.insert(webSignInLinks).values({
    id: newId(),
    codeHash: hashToken(code),
    tokenId,
    createdAt: now,
    expiresAt: new Date(now.getTime() + SIGN_IN_LINK_TTL_MS),
  });
  return code;
}

/** Trades a one-time link code for a session; `unauthenticated` for a used, expired or unknown code. */
export async function signInWithLink(db: Db, code: string, now: Date): Promise<{ secret: string }> {
  if (code.length !== SECRET_LENGTH) throw usedLink();
  const [link] = await db
    .update(webSignInLinks)
    .set({ usedAt: now })
    .where(
      and(
        eq(webSignInLinks.codeHash, hashToken(code)),
        isNull(webSignInLinks.usedAt),
        gt(webSignInLinks.expiresAt, now),
      ),
    )
    .returning({ tokenId: webSignInLinks.tokenId });
  if (!link) throw usedLink();
  return openSession(db, link.tokenId, now);
}

function usedLink(): DrayError {
  return new DrayError(
    "unauthenticated",
    "this sign-in link was already used or has expired: sign in with an API token instead",
  );
}

/**
 * The session of a cookie secret, or undefined when there is none, it
 * expired, was signed out, or its token was revoked or expired.
 */
export async function sessionOf(
  db: Db,
  secret: string | undefined,
  now: Date,
): Promise<WebSession | undefined> {
  if (!secret || secret.length !== SECRET_LENGTH) return undefined;
  const [row] = await db
    .select({
      id: webSessions.id,
      csrfToken: webSessions.csrfToken,
      expiresAt: webSessions.expiresAt,
      revokedAt: webSessions.revokedAt,
      tokenId: apiTokens.id,
      role: apiTokens.role,
      organisationId: apiTokens.organisationId,
      tokenRevokedAt: apiTokens.revokedAt,
      tokenExpiresAt: apiTokens.expiresAt,
    })
    .from(webSessions)
    .innerJoin(apiTokens, eq(apiTokens.id, webSessions.tokenId))
    .where(eq(webSessions.secretHash, hashToken(secret)))
    .limit(1);
  if (!row || row.revokedAt !== null || row.expiresAt.getTime() <= now.getTime()) return undefined;
  if (row.tokenRevokedAt !== null) return undefined;
  if (row.tokenExpiresAt !== null && row.tokenExpiresAt.getTime() <= now.getTime()) return undefined;
  return {
    id: row.id,
    csrfToken: row.csrfToken,
    principal: { tokenId: row.tokenId, role: row.role, organisationId: row.organisationId },
  };
}

/** Signs a session out: its cookie no longer opens anything. */
export async function signOut(db: Db, sessionId: string, now: Date): Promise<void> {
  await db.update(webSessions).set({ revokedAt: now }).where(eq(webSessions.id, sessionId));
}
