/**
 * Cursors of transformed key fields hold raw key values, which must not leave
 * the source agent: they travel sealed (AES-256-GCM under a key derived from
 * the transform key) as one opaque value, and are opened again when they come
 * back as `after` or `until`.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { DrayError } from "@dray/common";

const PREFIX = "sealed:";

function cursorKey(transformKey: Uint8Array): Buffer {
  return createHash("sha256").update("dray-cursor-seal\0").update(transformKey).digest();
}

/** `values` as one sealed value (`["sealed:<base64url>"]`). */
export function sealCursor(transformKey: Uint8Array, values: readonly string[]): string[] {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", cursorKey(transformKey), iv);
  const body = Buffer.concat([cipher.update(JSON.stringify(values), "utf8"), cipher.final()]);
  return [`${PREFIX}${Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64url")}`];
}

/** True when a cursor is sealed. */
export function isSealed(values: readonly string[] | null | undefined): boolean {
  return values?.length === 1 && values[0]!.startsWith(PREFIX);
}

/**
 * The values of a sealed cursor.
 *
 * @throws DrayError `invalid_argument` when it was not sealed by this key (another agent, a changed key).
 */
export function openCursor(transformKey: Uint8Array, values: readonly string[]): string[] {
  try {
    const raw = Buffer.from(values[0]!.slice(PREFIX.length), "base64url");
    const decipher = createDecipheriv("aes-256-gcm", cursorKey(transformKey), raw.subarray(0, 12));
    decipher.setAuthTag(raw.subarray(12, 28));
    const text = Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString("utf8");
    const parsed = JSON.parse(text) as unknown;
    if (Array.isArray(parsed) && parsed.every((v) => typeof v === "string")) return parsed;
  } catch {
    // Falls through to the error below.
  }
  throw new DrayError(
    "invalid_argument",
    "a sealed cursor could not be opened: it was sealed under another transform key (the agent's key changed, " +
      "or another agent read this table); run the pipeline again from the start",
  );
}
