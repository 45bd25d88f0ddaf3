/** Verifies API tokens against the stored hashes. */
import { DrayError } from "@dray/common";
import { eq } from "drizzle-orm";
import type { Db } from "../store/open-store.js";
import { apiTokens } from "../store/schema.js";
import type { Principal } from "./roles.js";
import { hashToken } from "./tokens.js";

/** `last_used_at` is written at most this often per token. */
export const LAST_USED_RESOLUTION_MS = 60_000;
/** Longer bearer values are rejected without hashing. */
const MAX_TOKEN_LENGTH = 512;

/**
 * The principal of an active (not revoked) API token, or undefined. Refreshes
 * the token's `last_used_at` when it is older than {@link LAST_USED_RESOLUTION_MS}.
 * Throws `unauthenticated` saying when a token expired (see {@link tokenExpired}).
 *
 * @example
 * const principal = await authenticateToken(db, bearer, new Date());
 */
export async function authenticateToken(db: Db, token: string, now: Date): Promise<Principal | undefined> {
  if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) return undefined;
  const [row] = await db
    .select({
      id: apiTokens.id,
      role: apiTokens.role,
      organisationId: apiTokens.organisationId,
      lastUsedAt: apiTokens.lastUsedAt,
      revokedAt: apiTokens.revokedAt,
      expiresAt: apiTokens.expiresAt,
    })
    .from(apiTokens)
    .where(eq(apiTokens.tokenHash, hashToken(token)))
    .limit(1);
  if (!row || row.revokedAt !== null) return undefined;
  if (row.expiresAt !== null && row.expiresAt.getTime() <= now.getTime()) throw tokenExpired(row.expiresAt);
  if (!row.lastUsedAt || now.getTime() - row.lastUsedAt.getTime() >= LAST_USED_RESOLUTION_MS) {
    await db.update(apiTokens).set({ lastUsedAt: now }).where(eq(apiTokens.id, row.id));
  }
  return { tokenId: row.id, role: row.role, organisationId: row.organisationId };
}

/**
 * The token of an `Authorization: Bearer <token>` header, or undefined when the
 * header is missing or uses another scheme.
 */
export function bearerTokenOf(header: string | undefined): string | undefined {
  if (!header) return undefined;
  // Length first: a value too long to be a token is not scanned, but still reported as an invalid token.
  if (header.length > MAX_TOKEN_LENGTH + 64)
    return header.slice(0, 7).toLowerCase() === "bearer " ? header.slice(7) : undefined;
  const match = /^Bearer[ ]+(\S+)[ ]*$/i.exec(header);
  return match?.[1];
}

/** The `unauthenticated` error for a token past its `expiresAt`. */
export function tokenExpired(expiresAt: Date): DrayError {
  return new DrayError(
    "unauthenticated",
    `the bearer token expired at ${expiresAt.toISOString()}: ask an organisation admin for a new token (POST /api/v1/tokens)`,
    { details: { expiresAt: expiresAt.toISOString() } },
  );
}

/** The `unauthenticated` error the API answers (401, `WWW-Authenticate: Bearer`). */
export function unauthenticated(reason: "missing" | "invalid"): DrayError {
  return new DrayError(
    "unauthenticated",
    reason === "missing"
      ? "missing bearer token: send the header `Authorization: Bearer <token>`"
      : "the bearer token is not valid or has been revoked",
  );
}
