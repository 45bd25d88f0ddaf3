/** The API's JSON view of an environment. */
import type { environments } from "../store/schema.js";

type EnvironmentRow = typeof environments.$inferSelect;

/** An environment as the API shows it; timestamps are ISO strings or null. */
export interface EnvironmentView {
  id: string;
  organisationId: string;
  name: string;
  platform: "postgres" | "mysql";
  application: string | null;
  url: string | null;
  protected: boolean;
  health: "healthy" | "unhealthy" | "unknown";
  healthReason: string | null;
  healthChangedAt: string | null;
  lastHeartbeatAt: string | null;
  agent: {
    /** True while an agent of the environment holds a live session with this replica's gateway. */
    connected: boolean;
    version: string | null;
    databaseReachable: boolean | null;
    databaseLatencyMs: number | null;
  };
  lastTestAt: string | null;
  lastTestLatencyMs: number | null;
  schemaCapturedAt: string | null;
  createdAt: string;
  updatedAt: string;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/**
 * The API view of a stored environment.
 *
 * @example
 * toEnvironmentView(row, agents.isConnected(row.id))
 */
export function toEnvironmentView(row: EnvironmentRow, agentConnected: boolean): EnvironmentView {
  return {
    id: row.id,
    organisationId: row.organisationId,
    name: row.name,
    platform: row.platform,
    application: row.application,
    url: row.url,
    protected: row.protected,
    health: row.health,
    healthReason: row.healthReason,
    healthChangedAt: iso(row.healthChangedAt),
    lastHeartbeatAt: iso(row.lastHeartbeatAt),
    agent: {
      connected: agentConnected,
      version: row.agentVersion,
      databaseReachable: row.databaseReachable,
      databaseLatencyMs: row.databaseLatencyMs,
    },
    lastTestAt: iso(row.lastTestAt),
    lastTestLatencyMs: row.lastTestLatencyMs,
    schemaCapturedAt: iso(row.schemaCapturedAt),
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}
