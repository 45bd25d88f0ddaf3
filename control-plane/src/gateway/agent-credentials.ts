import { randomBytes, timingSafeEqual } from "node:crypto";
import { hashToken } from "../auth/tokens.js";

/** A new agent credential `<agentId>.<secret>` (256 random bits). */
export function newAgentCredential(agentId: string): { credential: string; hash: string } {
  const secret = randomBytes(32).toString("base64url");
  return { credential: `${agentId}.${secret}`, hash: hashToken(secret) };
}

/** Splits `Bearer <agentId>.<secret>`; undefined when malformed. */
export function parseAgentCredential(
  authorization: string | undefined,
): { agentId: string; secret: string } | undefined {
  if (!authorization) return undefined;
  const match = /^Bearer ([0-9a-f-]{36})\.([A-Za-z0-9_-]{20,})$/.exec(authorization.trim());
  if (!match) return undefined;
  return { agentId: match[1]!, secret: match[2]! };
}

/** Constant-time comparison of a presented secret with a stored hash. */
export function secretMatches(secret: string, storedHash: string): boolean {
  const a = Buffer.from(hashToken(secret), "hex");
  const b = Buffer.from(storedHash, "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}
