/** Start-up bootstrap of the system-admin token. */
import type { Logger } from "@dray/common";
import { and, eq, isNull, ne, sql } from "drizzle-orm";
import { newId } from "../store/ids.js";
import type { Db } from "../store/open-store.js";
import { apiTokens } from "../store/schema.js";
import { displayPrefixOf, generateApiToken, hashToken } from "./tokens.js";

/** Name of the token kept in sync with DRAY_ADMIN_TOKEN. */
export const BOOTSTRAP_TOKEN_NAME = "bootstrap (DRAY_ADMIN_TOKEN)";
/** Name of a token generated because none was configured. */
export const GENERATED_TOKEN_NAME = "bootstrap (generated)";
/** Transaction-level advisory lock key serialising bootstraps of several replicas. */
const BOOTSTRAP_LOCK_KEY = 7_272_002;

/**
 * Makes sure the system admin can log in.
 * - `configuredToken` set (DRAY_ADMIN_TOKEN): its hash is stored as an active
 *   `system` token; an earlier DRAY_ADMIN_TOKEN (rotation) is revoked.
 * - not set, and no active system token exists: generates one and returns it in
 *   `generated` so main.ts prints it once. It is never logged here.
 * - otherwise: nothing.
 *
 * @example
 * const { generated } = await ensureSystemAdminToken(store.db, config.adminToken, logger);
 * if (generated) process.stdout.write(`system-admin token (shown once): ${generated}\n`);
 */
export async function ensureSystemAdminToken(
  db: Db,
  configuredToken: string | undefined,
  logger: Logger,
): Promise<{ generated?: string }> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${BOOTSTRAP_LOCK_KEY})`);
    if (configuredToken) {
      const tokenHash = hashToken(configuredToken);
      await tx
        .insert(apiTokens)
        .values({
          id: newId(),
          organisationId: null,
          name: BOOTSTRAP_TOKEN_NAME,
          role: "system",
          tokenHash,
          tokenPrefix: displayPrefixOf(configuredToken),
        })
        .onConflictDoUpdate({
          target: apiTokens.tokenHash,
          set: {
            role: "system",
            organisationId: null,
            name: BOOTSTRAP_TOKEN_NAME,
            revokedAt: null,
            expiresAt: null,
            tokenPrefix: displayPrefixOf(configuredToken),
          },
        });
      const rotated = await tx
        .update(apiTokens)
        .set({ revokedAt: new Date() })
        .where(
          and(
            eq(apiTokens.name, BOOTSTRAP_TOKEN_NAME),
            eq(apiTokens.role, "system"),
            isNull(apiTokens.revokedAt),
            ne(apiTokens.tokenHash, tokenHash),
          ),
        )
        .returning({ id: apiTokens.id });
      if (rotated.length > 0)
        logger.info("revoked the previous DRAY_ADMIN_TOKEN", { tokens: rotated.length });
      return {};
    }
    const [active] = await tx
      .select({ id: apiTokens.id })
      .from(apiTokens)
      .where(and(eq(apiTokens.role, "system"), isNull(apiTokens.revokedAt)))
      .limit(1);
    if (active) return {};
    const generated = generateApiToken();
    await tx.insert(apiTokens).values({
      id: newId(),
      organisationId: null,
      name: GENERATED_TOKEN_NAME,
      role: "system",
      tokenHash: hashToken(generated),
      tokenPrefix: displayPrefixOf(generated),
    });
    logger.warn(
      "no system-admin token existed: generated one (printed once on stdout; set DRAY_ADMIN_TOKEN to choose it)",
    );
    return { generated };
  });
}
