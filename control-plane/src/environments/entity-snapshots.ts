/**
 * The cached description of an environment's entities (tables): served from
 * `environments.schema_snapshot`, fetched through the agent when missing or
 * when a refresh is asked for.
 */
import { isDrayError } from "@dray/common";
import { and, eq } from "drizzle-orm";
import type { EnvironmentAgents } from "../gateway/environment-agents.js";
import type { Db } from "../store/open-store.js";
import { environments } from "../store/schema.js";
import type { EnvironmentRow } from "./environments-service.js";
import type { SchemaSnapshot } from "./schema-snapshot.js";

/** The snapshot cached on the row, or undefined when none was captured yet. */
export function cachedSnapshotOf(environment: EnvironmentRow): SchemaSnapshot | undefined {
  const stored = environment.schemaSnapshot as Partial<SchemaSnapshot> | null;
  if (!stored || !Array.isArray(stored.entities) || !environment.schemaCapturedAt) return undefined;
  return {
    capturedAt: environment.schemaCapturedAt.toISOString(),
    fingerprint: environment.schemaFingerprint ?? stored.fingerprint ?? "",
    entities: stored.entities,
  };
}

/**
 * The environment's entity snapshot: the cached one unless `refresh` is set or
 * none exists, otherwise a fresh one from the agent (then cached). Rejects with
 * the agent's DrayError, e.g. `unavailable` when no agent is connected.
 */
export async function getEntitySnapshot(
  db: Db,
  agents: EnvironmentAgents,
  environment: EnvironmentRow,
  options: { refresh: boolean; now: () => Date; signal?: AbortSignal | undefined },
): Promise<SchemaSnapshot> {
  const cached = options.refresh ? undefined : cachedSnapshotOf(environment);
  if (cached) return cached;
  const fresh = await agents.describeSchema(environment.id, options.signal);
  const parsed = Date.parse(fresh.capturedAt);
  const capturedAt = Number.isNaN(parsed) ? options.now() : new Date(parsed);
  const snapshot: SchemaSnapshot = { ...fresh, capturedAt: capturedAt.toISOString() };
  await db
    .update(environments)
    .set({ schemaSnapshot: snapshot, schemaCapturedAt: capturedAt, schemaFingerprint: snapshot.fingerprint })
    .where(
      and(eq(environments.id, environment.id), eq(environments.organisationId, environment.organisationId)),
    );
  return snapshot;
}

/**
 * The environment's snapshot for a check that needs one (pipeline validation,
 * plan): the cached one; else, when `agents` is given and the environment's
 * agent is connected, a fresh one fetched from it and cached; else undefined.
 * An agent that disconnects during the fetch (`unavailable`) also gives
 * undefined; other agent errors are thrown.
 *
 * @example
 * const snapshot = await ensureEntitySnapshot(db, agents, source, { now: () => new Date() });
 * if (!snapshot) throw noSnapshot(source);
 */
export async function ensureEntitySnapshot(
  db: Db,
  agents: EnvironmentAgents | undefined,
  environment: EnvironmentRow,
  options: { now: () => Date; signal?: AbortSignal | undefined },
): Promise<SchemaSnapshot | undefined> {
  const cached = cachedSnapshotOf(environment);
  if (cached || !agents?.isConnected(environment.id)) return cached;
  try {
    return await getEntitySnapshot(db, agents, environment, { ...options, refresh: true });
  } catch (error) {
    if (isDrayError(error) && error.code === "unavailable") return undefined;
    throw error;
  }
}
