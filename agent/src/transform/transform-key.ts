/**
 * The agent's transform key: 32 bytes that key every transformation (and seal
 * cursors of transformed keys). It lives only on the source agent — given by
 * DRAY_AGENT_TRANSFORM_KEY, else kept in the state directory (created at the
 * first start, mode 0600) — and never leaves it: executions record its id, a
 * hash prefix.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { DrayError } from "@dray/common";

/** The file in the agent's state directory that holds the key (base64). */
export const TRANSFORM_KEY_FILE = "transform.key";

/** A transform key and its public id. */
export interface TransformKey {
  key: Uint8Array;
  /** First 16 hex characters of a SHA-256 of the key: names it, reveals nothing. */
  id: string;
}

/** The id of a key (see {@link TransformKey.id}). */
export function transformKeyId(key: Uint8Array): string {
  return createHash("sha256").update("dray-transform-key-id\0").update(key).digest("hex").slice(0, 16);
}

/**
 * Parses a key given as 64 hex characters or as base64 of 32 bytes.
 *
 * @throws DrayError `invalid_argument` saying what a key looks like.
 */
export function parseTransformKey(text: string): Uint8Array {
  const value = text.trim();
  let isHex = value.length === 64;
  for (let i = 0; isHex && i < value.length; i++) {
    const c = value.charCodeAt(i);
    isHex = (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
  }
  const key = isHex ? Buffer.from(value, "hex") : Buffer.from(value, "base64");
  if (key.length !== 32)
    throw new DrayError(
      "invalid_argument",
      "DRAY_AGENT_TRANSFORM_KEY must be 32 bytes, as 64 hex characters or base64 (e.g. `openssl rand -hex 32`)",
    );
  return new Uint8Array(key);
}

/**
 * The agent's transform key: `fromEnv` when given, else the one in
 * `stateDir`, created there (random, mode 0600) when it does not exist yet.
 */
export async function loadTransformKey(stateDir: string, fromEnv?: string): Promise<TransformKey> {
  if (fromEnv) {
    const key = parseTransformKey(fromEnv);
    return { key, id: transformKeyId(key) };
  }
  const file = join(stateDir, TRANSFORM_KEY_FILE);
  const existing = await readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return undefined;
    throw error;
  });
  if (existing !== undefined) {
    const key = parseTransformKey(existing);
    return { key, id: transformKeyId(key) };
  }
  const key = new Uint8Array(randomBytes(32));
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  // `wx`: two agents starting on one state directory keep the first key.
  await writeFile(file, `${Buffer.from(key).toString("base64")}\n`, { mode: 0o600, flag: "wx" }).catch(
    async (error: NodeJS.ErrnoException) => {
      if (error.code !== "EEXIST") throw error;
    },
  );
  const stored = parseTransformKey(await readFile(file, "utf8"));
  return { key: stored, id: transformKeyId(stored) };
}
