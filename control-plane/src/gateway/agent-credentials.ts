import { randomBytes, timingSafeEqual } from "node:crypto";
import { hashToken } from "../auth/tokens.js";
import { isUuid } from "../store/ids.js";

/** Longer authorization values are refused before any parsing. */
const MAX_AUTHORIZATION_LENGTH = 256;
/** Length bounds of the secret part (newAgentCredential makes 43 characters). */
const SECRET_LENGTH = { min: 20, max: 128 } as const;
const SECRET_CHARACTER = /^[A-Za-z0-9_-]$/;

/** A new agent credential `<agentId>.<secret>` (256 random bits). */
export function newAgentCredential(agentId: string): { credential: string; hash: string } {
  const secret = randomBytes(32).toString("base64url");
  return { credential: `${agentId}.${secret}`, hash: hashToken(secret) };
}

/**
 * Splits `Bearer <agentId>.<secret>`; undefined when malformed: too long, not
 * the Bearer scheme, an agent id that is not a UUID, or a secret that is not
 * 20–128 base64url characters. Only well-formed values reach the store.
 */
export function parseAgentCredential(
  authorization: string | undefined,
): { agentId: string; secret: string } | undefined {
  if (!authorization || authorization.length > MAX_AUTHORIZATION_LENGTH) return undefined;
  const value = authorization.trim();
  if (!value.startsWith("Bearer ")) return undefined;
  const credential = value.slice("Bearer ".length);
  const dot = credential.indexOf(".");
  if (dot < 0) return undefined;
  const agentId = credential.slice(0, dot);
  const secret = credential.slice(dot + 1);
  if (!isUuid(agentId)) return undefined;
  if (secret.length < SECRET_LENGTH.min || secret.length > SECRET_LENGTH.max) return undefined;
  for (const ch of secret) if (!SECRET_CHARACTER.test(ch)) return undefined;
  return { agentId: agentId.toLowerCase(), secret };
}

/** Constant-time comparison of a presented secret with a stored hash. */
export function secretMatches(secret: string, storedHash: string): boolean {
  const a = Buffer.from(hashToken(secret), "hex");
  const b = Buffer.from(storedHash, "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}
