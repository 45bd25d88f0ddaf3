import { DrayError } from "@dray/common";
import { and, eq, gt, isNull, sql } from "drizzle-orm";
import { hashToken } from "../auth/tokens.js";
import type { Db } from "../store/db.js";
import { isUuid } from "../store/ids.js";
import { agents, enrollmentTokens, environments } from "../store/schema.js";
import { newAgentCredential, secretMatches } from "./agent-credentials.js";

/** The agent behind a verified credential. */
export interface AuthenticatedAgent {
  agentId: string;
  environmentId: string;
  organisationId: string;
  environmentName: string;
}

/** What an agent says about itself when enrolling. */
export interface AgentDescription {
  name: string;
  hostname: string;
  version: string;
  platform: "postgres" | "mysql";
}

const CACHE_MS = 5_000;

const invalidCredential = () =>
  new DrayError(
    "unauthenticated",
    "this agent's credential is not valid (the agent was replaced, or its environment deleted): create a new enrollment token and restart the agent with DRAY_ENROLLMENT_TOKEN",
  );

/**
 * Enrollment and credential checks against the store. Verified credentials are
 * cached for a few seconds; a revoked agent is refused within that time.
 */
export function createAgentDirectory(db: Db) {
  const cache = new Map<string, { agent: AuthenticatedAgent; secretHash: string; until: number }>();

  return {
    /**
     * Trades a one-time enrollment token for a credential. The token is marked
     * used and any earlier agent of the environment is revoked, atomically.
     */
    async enroll(
      enrollmentToken: string,
      description: AgentDescription,
    ): Promise<AuthenticatedAgent & { credential: string }> {
      const tokenHash = hashToken(enrollmentToken);
      return db.transaction(async (tx) => {
        const [row] = await tx
          .update(enrollmentTokens)
          .set({ usedAt: sql`now()` })
          .where(
            and(
              eq(enrollmentTokens.tokenHash, tokenHash),
              isNull(enrollmentTokens.usedAt),
              gt(enrollmentTokens.expiresAt, sql`now()`),
            ),
          )
          .returning({ environmentId: enrollmentTokens.environmentId });
        if (!row) {
          throw new DrayError(
            "unauthenticated",
            "the enrollment token is invalid, expired or already used: create a new one with POST /api/v1/environments/<id>/enrollment-token",
          );
        }
        const [environment] = await tx
          .select({
            id: environments.id,
            organisationId: environments.organisationId,
            name: environments.name,
            platform: environments.platform,
          })
          .from(environments)
          .where(eq(environments.id, row.environmentId));
        if (!environment)
          throw new DrayError("not_found", "the environment of this enrollment token was deleted");
        if (environment.platform !== description.platform) {
          throw new DrayError(
            "failed_precondition",
            `environment "${environment.name}" is a ${environment.platform} environment but this agent serves ${description.platform}`,
          );
        }
        await tx
          .update(agents)
          .set({ revokedAt: sql`now()` })
          .where(and(eq(agents.environmentId, environment.id), isNull(agents.revokedAt)));
        const agentId = crypto.randomUUID();
        const { credential, hash } = newAgentCredential(agentId);
        await tx.insert(agents).values({
          id: agentId,
          environmentId: environment.id,
          name: description.name,
          hostname: description.hostname,
          version: description.version,
          platform: description.platform,
          credentialHash: hash,
        });
        return {
          agentId,
          environmentId: environment.id,
          organisationId: environment.organisationId,
          environmentName: environment.name,
          credential,
        };
      });
    },

    /** Verifies a credential; rejects `unauthenticated` with a message saying how to re-enroll. */
    async authenticate(agentId: string, secret: string): Promise<AuthenticatedAgent> {
      if (!isUuid(agentId)) throw invalidCredential();
      const cached = cache.get(agentId);
      if (cached && cached.until > Date.now() && secretMatches(secret, cached.secretHash))
        return cached.agent;
      const [row] = await db
        .select({
          agentId: agents.id,
          credentialHash: agents.credentialHash,
          revokedAt: agents.revokedAt,
          environmentId: environments.id,
          organisationId: environments.organisationId,
          environmentName: environments.name,
        })
        .from(agents)
        .innerJoin(environments, eq(environments.id, agents.environmentId))
        .where(eq(agents.id, agentId));
      if (!row || row.revokedAt || !secretMatches(secret, row.credentialHash)) {
        cache.delete(agentId);
        throw invalidCredential();
      }
      const agent = {
        agentId: row.agentId,
        environmentId: row.environmentId,
        organisationId: row.organisationId,
        environmentName: row.environmentName,
      };
      cache.set(agentId, { agent, secretHash: row.credentialHash, until: Date.now() + CACHE_MS });
      return agent;
    },

    /** Records that the agent was seen, with its reported version and name. */
    async touch(agentId: string, info: { version: string; name: string; draining?: boolean }): Promise<void> {
      await db
        .update(agents)
        .set({
          lastSeenAt: sql`now()`,
          ...(info.version ? { version: info.version } : {}),
          ...(info.name ? { name: info.name } : {}),
          draining: info.draining ?? false,
        })
        .where(eq(agents.id, agentId));
    },
  };
}

export type AgentDirectory = ReturnType<typeof createAgentDirectory>;
