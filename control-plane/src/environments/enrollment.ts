/**
 * Enrollment tokens: one-time secrets an agent trades for its credential.
 * Stored as SHA-256 hashes with an expiry; a token works once. Issuing a new
 * token for an environment (re-pairing) expires its older unused ones.
 */
import { and, eq, gt, isNull } from "drizzle-orm";
import { generateEnrollmentToken, hashToken } from "../auth/tokens.js";
import { newId } from "../store/ids.js";
import type { Db } from "../store/open-store.js";
import { enrollmentTokens } from "../store/schema.js";

/** A freshly issued enrollment token; the secret is shown once. */
export interface IssuedEnrollmentToken {
  enrollmentToken: string;
  expiresAt: Date;
}

/**
 * Issues an enrollment token for an environment, valid `ttlMs` from `now`, and
 * expires the environment's earlier unused tokens. Pass a transaction to make it
 * part of a larger write.
 */
export async function issueEnrollmentToken(
  db: Pick<Db, "insert" | "update">,
  environmentId: string,
  ttlMs: number,
  now: Date,
): Promise<IssuedEnrollmentToken> {
  const enrollmentToken = generateEnrollmentToken();
  const expiresAt = new Date(now.getTime() + ttlMs);
  await db
    .update(enrollmentTokens)
    .set({ expiresAt: now })
    .where(
      and(
        eq(enrollmentTokens.environmentId, environmentId),
        isNull(enrollmentTokens.usedAt),
        gt(enrollmentTokens.expiresAt, now),
      ),
    );
  await db.insert(enrollmentTokens).values({
    id: newId(),
    environmentId,
    tokenHash: hashToken(enrollmentToken),
    expiresAt,
    createdAt: now,
  });
  return { enrollmentToken, expiresAt };
}
