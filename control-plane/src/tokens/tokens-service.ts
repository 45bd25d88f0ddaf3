/**
 * API tokens of organisations: issue, list, revoke. Only hashes are stored; the
 * secret is returned once, at creation.
 */
import { DrayError } from "@dray/common";
import { and, eq, isNull, type SQL, sql } from "drizzle-orm";
import {
  decodeCursor,
  type KeysetKey,
  keysetAfter,
  keysetColumns,
  keysetOrderBy,
  pageOf,
} from "../api/pagination.js";
import { type OrganisationRole, type Principal, type Role, requireOrganisationRole } from "../auth/roles.js";
import { displayPrefixOf, generateApiToken, hashToken } from "../auth/tokens.js";
import { findOrganisation, organisationNotFound } from "../organisations/organisations-service.js";
import { isUuid, newId } from "../store/ids.js";
import type { Db } from "../store/open-store.js";
import { apiTokens } from "../store/schema.js";

/** A token as the API lists it: never the hash or the secret. */
export interface TokenView {
  id: string;
  name: string;
  role: Role;
  organisationId: string | null;
  tokenPrefix: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
  /** When the token stops working; null: never. */
  expiresAt: string | null;
}

/** The order of {@link listTokens} (creation, microseconds included, then id), as keyset keys. */
const TOKEN_KEYS: KeysetKey[] = [
  { expr: sql`extract(epoch from ${apiTokens.createdAt})`, dir: "asc", kind: "number" },
  { expr: sql`${apiTokens.id}`, dir: "asc", kind: "uuid" },
];
const TOKEN_LIST = "tokens";

/** Default and largest page of {@link listTokens}. */
export const TOKENS_PAGE = { default: 50, max: 200 } as const;

type TokenRow = typeof apiTokens.$inferSelect;

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** The API view of a stored token. */
export function toTokenView(row: TokenRow): TokenView {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    organisationId: row.organisationId,
    tokenPrefix: row.tokenPrefix,
    createdAt: row.createdAt.toISOString(),
    lastUsedAt: iso(row.lastUsedAt),
    revokedAt: iso(row.revokedAt),
    expiresAt: iso(row.expiresAt),
  };
}

const tokenNotFound = (id: string) => new DrayError("not_found", `token ${id} was not found`);

/**
 * The organisation a token-management request acts on. The system admin names
 * it (`invalid_argument` when missing); an organisation admin acts on its own
 * (another organisation is `not_found`, like a missing one); lower roles are denied.
 */
async function targetOrganisation(
  db: Db,
  principal: Principal,
  requested: string | undefined,
): Promise<string> {
  if (principal.role === "system") {
    if (!requested) {
      throw new DrayError(
        "invalid_argument",
        "organisationId is required when the system admin creates a token",
        {
          details: { issues: [{ path: "organisationId", message: "required for the system-admin token" }] },
        },
      );
    }
    if (!(await findOrganisation(db, requested))) throw organisationNotFound(requested);
    return requested;
  }
  const own = requireOrganisationRole(principal, "admin");
  if (requested !== undefined && requested !== own) throw organisationNotFound(requested);
  return own;
}

/**
 * Issues a token in an organisation. Returns its view and the secret, which is
 * shown once and stored only as a SHA-256 hash.
 */
export async function createToken(
  db: Db,
  principal: Principal,
  input: {
    name: string;
    role: OrganisationRole;
    organisationId?: string | undefined;
    expiresAt?: string | undefined;
  },
  now: Date,
): Promise<TokenView & { token: string }> {
  const expiresAt = input.expiresAt === undefined ? null : new Date(input.expiresAt);
  if (expiresAt !== null && !(expiresAt.getTime() > now.getTime())) {
    throw new DrayError("invalid_argument", "invalid request body: expiresAt: must be in the future", {
      details: { issues: [{ path: "expiresAt", message: "must be in the future" }] },
    });
  }
  const organisationId = await targetOrganisation(db, principal, input.organisationId);
  const token = generateApiToken();
  const [row] = await db
    .insert(apiTokens)
    .values({
      id: newId(),
      organisationId,
      name: input.name,
      role: input.role,
      tokenHash: hashToken(token),
      tokenPrefix: displayPrefixOf(token),
      createdAt: now,
      expiresAt,
    })
    .returning();
  return { ...toTokenView(row!), token };
}

/** One page of {@link listTokens}; `next` continues it, null on the last page. */
export interface TokensPage {
  tokens: TokenView[];
  next: string | null;
}

/**
 * Tokens the caller manages, oldest first (by creation, then id), revoked ones
 * included, one keyset page at a time: an organisation admin sees its
 * organisation's; the system admin sees every token, or one organisation's with
 * `organisationId`.
 */
export async function listTokens(
  db: Db,
  principal: Principal,
  query: {
    organisationId?: string | undefined;
    limit?: number | undefined;
    cursor?: string | undefined;
  } = {},
): Promise<TokensPage> {
  const { organisationId } = query;
  const limit = Math.min(Math.max(1, query.limit ?? TOKENS_PAGE.default), TOKENS_PAGE.max);
  const after =
    query.cursor === undefined
      ? undefined
      : keysetAfter(TOKEN_KEYS, decodeCursor(query.cursor, TOKEN_LIST, TOKEN_KEYS.length));
  let scope: SQL | undefined;
  if (principal.role === "system") {
    if (organisationId !== undefined && !isUuid(organisationId)) return { tokens: [], next: null };
    scope = organisationId === undefined ? undefined : eq(apiTokens.organisationId, organisationId);
  } else {
    const own = requireOrganisationRole(principal, "admin");
    if (organisationId !== undefined && organisationId !== own) throw organisationNotFound(organisationId);
    scope = eq(apiTokens.organisationId, own);
  }
  const rows = await db
    .select({ row: apiTokens, position: keysetColumns(TOKEN_KEYS) })
    .from(apiTokens)
    .where(and(scope, after))
    .orderBy(...keysetOrderBy(TOKEN_KEYS))
    .limit(limit + 1);
  const { items, next } = pageOf(rows, limit, TOKEN_LIST, (r) => r.position);
  return { tokens: items.map((r) => toTokenView(r.row)), next };
}

/**
 * Revokes a token; requests with it then get 401. Revoking twice is harmless.
 * An organisation admin may revoke only its organisation's tokens.
 */
export async function revokeToken(db: Db, principal: Principal, id: string, now: Date): Promise<void> {
  const scope =
    principal.role === "system"
      ? undefined
      : eq(apiTokens.organisationId, requireOrganisationRole(principal, "admin"));
  if (!isUuid(id)) throw tokenNotFound(id);
  const [row] = await db
    .select({ id: apiTokens.id, revokedAt: apiTokens.revokedAt })
    .from(apiTokens)
    .where(and(eq(apiTokens.id, id), scope))
    .limit(1);
  if (!row) throw tokenNotFound(id);
  await db
    .update(apiTokens)
    .set({ revokedAt: now })
    .where(and(eq(apiTokens.id, id), isNull(apiTokens.revokedAt)));
}
