/**
 * Secrets Dray hands out: API tokens (`dray_…`) and agent enrollment tokens
 * (`dray_enr_…`). Only their SHA-256 hashes are stored; a token is verified by
 * looking its hash up, so no constant-time comparison is needed. Never log a token.
 */
import { createHash, randomBytes } from "node:crypto";

/** Prefix of every API token. */
export const API_TOKEN_PREFIX = "dray_";
/** Prefix of every enrollment token (an agent trades it once for its credential). */
export const ENROLLMENT_TOKEN_PREFIX = "dray_enr_";
/** Characters of a generated token's secret part kept in the clear (`token_prefix`), after {@link API_TOKEN_PREFIX}. */
export const DISPLAY_SECRET_CHARACTERS = 4;
/** What `token_prefix` holds for a token the operator chose (DRAY_ADMIN_TOKEN): none of its characters. */
export const CHOSEN_TOKEN_LABEL = "(chosen)";
/** Base62 characters after the prefix: 43 × log2(62) ≈ 256 bits of entropy (32 random bytes). */
export const SECRET_LENGTH = 43;

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/**
 * `length` uniformly random base62 characters (rejection sampling, no modulo bias).
 *
 * @example
 * randomBase62(8) // "q3ZbX0aK"
 */
export function randomBase62(length: number): string {
  let out = "";
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      // 248 = 4 × 62: bytes at or above it would favour the first characters.
      if (byte < 248) out += BASE62[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

/** A new API token, e.g. `dray_7Gk…` (48 characters). */
export function generateApiToken(): string {
  return API_TOKEN_PREFIX + randomBase62(SECRET_LENGTH);
}

/** A new enrollment token, e.g. `dray_enr_x9…` (52 characters). */
export function generateEnrollmentToken(): string {
  return ENROLLMENT_TOKEN_PREFIX + randomBase62(SECRET_LENGTH);
}

/**
 * The stored form of a token: SHA-256, lowercase hex.
 *
 * @example
 * hashToken("dray_abc") // "5c0e…" (64 hex characters)
 */
export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/**
 * A short, one-way fingerprint of a secret (half of its SHA-256), for
 * in-memory bookkeeping such as the failed-authentication limiter.
 */
export function credentialFingerprint(secret: string): string {
  return hashToken(secret).slice(0, 32);
}

/** True for a token of the form Dray generates: `dray_` and 43 base62 characters. */
export function isGeneratedApiToken(token: string): boolean {
  if (token.length !== API_TOKEN_PREFIX.length + SECRET_LENGTH || !token.startsWith(API_TOKEN_PREFIX))
    return false;
  for (let i = API_TOKEN_PREFIX.length; i < token.length; i++) if (!BASE62.includes(token[i]!)) return false;
  return true;
}

/**
 * The part of a token safe to store and show, to tell tokens apart: the `dray_`
 * marker and the next {@link DISPLAY_SECRET_CHARACTERS} characters of a generated
 * token (about 24 of its 256 random bits), and {@link CHOSEN_TOKEN_LABEL} for any
 * other token, whose strength is unknown, so none of it is kept.
 *
 * @example
 * displayPrefixOf("dray_AbCdEf…") // "dray_AbCd"
 * displayPrefixOf("my-own-admin-token-of-24-chars") // "(chosen)"
 */
export function displayPrefixOf(token: string): string {
  return isGeneratedApiToken(token)
    ? token.slice(0, API_TOKEN_PREFIX.length + DISPLAY_SECRET_CHARACTERS)
    : CHOSEN_TOKEN_LABEL;
}
