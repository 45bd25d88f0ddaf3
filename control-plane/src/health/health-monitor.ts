import type { Logger } from "@dray/common";
import { and, eq, lt, sql } from "drizzle-orm";
import type { EventBus } from "../events/event-bus.js";
import { subjects } from "../events/subjects.js";
import type { Db } from "../store/db.js";
import { environments } from "../store/schema.js";
import {
  type Health,
  type HeartbeatReport,
  healthAfterHeartbeat,
  silenceReason,
  staleAfterMs,
  sweepEveryMs,
} from "./health-rules.js";

/** A heartbeat as the gateway hands it to the monitor. */
export interface HeartbeatInput extends HeartbeatReport {
  environmentId: string;
  agentVersion: string;
  databaseLatencyMs: number;
  schemaFingerprint: string;
  tasksInFlight: number;
}

/** Options of {@link createHealthMonitor}. */
export interface HealthMonitorOptions {
  db: Db;
  bus: EventBus;
  logger: Logger;
  heartbeatIntervalMs: number;
}

/** Records heartbeats and sweeps for silent agents. See {@link createHealthMonitor}. */
export interface HealthMonitor {
  recordHeartbeat(input: HeartbeatInput): Promise<void>;
  /** Marks an environment unhealthy because its agent announced a drain. */
  recordDrain(environmentId: string): Promise<void>;
  /** One sweep: environments whose agent fell silent turn unhealthy. Returns how many changed. */
  sweep(): Promise<number>;
  start(): void;
  stop(): Promise<void>;
}

/**
 * The health monitor. The store is the truth (so several replicas can run it):
 * a heartbeat updates the environment row under a row lock, and the sweep flips
 * silent environments with one conditional UPDATE, so each transition happens
 * once and is published once on `dray.<orgId>.environments.<id>.health`.
 */
export function createHealthMonitor(options: HealthMonitorOptions): HealthMonitor {
  const { db, bus, logger, heartbeatIntervalMs } = options;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();

  async function publishTransition(row: {
    id: string;
    organisationId: string;
    name: string;
    previous: Health;
    health: Health;
    reason: string | null;
    at: Date;
  }) {
    logger.info("environment health changed", {
      environmentId: row.id,
      organisationId: row.organisationId,
      from: row.previous,
      to: row.health,
      reason: row.reason,
    });
    await bus
      .publish(
        subjects.environmentHealth(row.organisationId, row.id),
        {
          type: "environment.health_changed",
          at: row.at.toISOString(),
          environmentId: row.id,
          organisationId: row.organisationId,
          environmentName: row.name,
          previous: row.previous,
          health: row.health,
          reason: row.reason,
        },
        { msgId: `${row.id}:health:${row.at.getTime()}:${row.health}` },
      )
      .catch((error) => logger.warn("could not publish a health event", { error: String(error) }));
  }

  async function setHealthLocked(
    environmentId: string,
    apply: (current: { health: Health }) => { health: Health; reason: string | null; extra?: object },
  ) {
    const transition = await db.transaction(async (tx) => {
      const [current] = await tx
        .select({
          id: environments.id,
          organisationId: environments.organisationId,
          name: environments.name,
          health: environments.health,
        })
        .from(environments)
        .where(eq(environments.id, environmentId))
        .for("update");
      if (!current) return undefined;
      const next = apply(current);
      const changed = next.health !== current.health;
      const [updated] = await tx
        .update(environments)
        .set({
          ...next.extra,
          health: next.health,
          healthReason: next.reason,
          ...(changed ? { healthChangedAt: sql`now()` } : {}),
        })
        .where(eq(environments.id, environmentId))
        .returning({ healthChangedAt: environments.healthChangedAt });
      return changed
        ? {
            id: current.id,
            organisationId: current.organisationId,
            name: current.name,
            previous: current.health,
            health: next.health,
            reason: next.reason,
            at: updated?.healthChangedAt ?? new Date(),
          }
        : undefined;
    });
    if (transition) await publishTransition(transition);
  }

  const monitor: HealthMonitor = {
    async recordHeartbeat(input) {
      const next = healthAfterHeartbeat(input);
      await setHealthLocked(input.environmentId, () => ({
        ...next,
        extra: {
          lastHeartbeatAt: sql`now()`,
          agentVersion: input.agentVersion,
          databaseReachable: input.databaseReachable,
          databaseLatencyMs: input.databaseReachable ? input.databaseLatencyMs : null,
          ...(input.schemaFingerprint ? { schemaFingerprint: input.schemaFingerprint } : {}),
        },
      }));
    },

    async recordDrain(environmentId) {
      await setHealthLocked(environmentId, () =>
        healthAfterHeartbeat({ databaseReachable: true, databaseError: "", draining: true }),
      );
    },

    async sweep() {
      const staleMs = staleAfterMs(heartbeatIntervalMs);
      const reason = silenceReason(heartbeatIntervalMs);
      const flipped = await db
        .update(environments)
        .set({ health: "unhealthy", healthReason: reason, healthChangedAt: sql`now()` })
        .where(
          and(
            eq(environments.health, "healthy"),
            lt(environments.lastHeartbeatAt, sql`now() - make_interval(secs => ${staleMs / 1000})`),
          ),
        )
        .returning({
          id: environments.id,
          organisationId: environments.organisationId,
          name: environments.name,
          healthChangedAt: environments.healthChangedAt,
        });
      for (const row of flipped) {
        await publishTransition({
          ...row,
          previous: "healthy",
          health: "unhealthy",
          reason,
          at: row.healthChangedAt ?? new Date(),
        });
      }
      return flipped.length;
    },

    start() {
      if (timer) return;
      timer = setInterval(() => {
        running = monitor
          .sweep()
          .catch((error) => logger.warn("health sweep failed", { error: String(error) }));
      }, sweepEveryMs(heartbeatIntervalMs));
      timer.unref();
    },

    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await running;
    },
  };
  return monitor;
}
