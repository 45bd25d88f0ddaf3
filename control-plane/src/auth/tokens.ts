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
/** Characters of a token kept in the clear (`token_prefix`) so users can tell tokens apart. */
export const DISPLAY_PREFIX_LENGTH = 12;
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

/** The part of a token safe to store and show (its first {@link DISPLAY_PREFIX_LENGTH} characters). */
export function displayPrefixOf(token: string): string {
  return token.slice(0, DISPLAY_PREFIX_LENGTH);
}
