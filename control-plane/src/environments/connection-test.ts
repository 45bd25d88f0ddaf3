/** "Test connection": a live round trip through the agent to the database. */
import { and, eq } from "drizzle-orm";
import type { EnvironmentAgents } from "../gateway/environment-agents.js";
import type { Db } from "../store/open-store.js";
import { environments } from "../store/schema.js";
import type { EnvironmentRow } from "./environments-service.js";

/** The outcome of a successful connection test, as the API answers it. */
export interface ConnectionTestResult {
  ok: true;
  roundTripMs: number;
  databaseLatencyMs: number;
  serverVersion: string;
  databaseName: string;
  testedAt: string;
}

/**
 * Tests the environment's connection through its agent and records when and
 * how fast (`last_test_at`, `last_test_latency_ms`). Rejects with the agent's
 * DrayError, e.g. `unavailable` when no agent is connected; nothing is recorded then.
 */
export async function testEnvironmentConnection(
  db: Db,
  agents: EnvironmentAgents,
  environment: EnvironmentRow,
  options: { now: () => Date; signal?: AbortSignal | undefined },
): Promise<ConnectionTestResult> {
  const test = await agents.testConnection(environment.id, options.signal);
  const testedAt = options.now();
  const roundTripMs = Math.max(0, Math.round(test.roundTripMs));
  await db
    .update(environments)
    .set({ lastTestAt: testedAt, lastTestLatencyMs: roundTripMs })
    .where(
      and(eq(environments.id, environment.id), eq(environments.organisationId, environment.organisationId)),
    );
  return {
    ok: true,
    roundTripMs,
    databaseLatencyMs: test.databaseLatencyMs,
    serverVersion: test.serverVersion,
    databaseName: test.databaseName,
    testedAt: testedAt.toISOString(),
  };
}
