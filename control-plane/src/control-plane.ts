import type { Logger } from "@dray/common";
import { type ServerType, serve } from "@hono/node-server";
import { createApiApp } from "./api/index.js";
import { ensureSystemAdminToken } from "./auth/index.js";
import type { ControlPlaneConfig } from "./config.js";
import type { EventBus } from "./events/event-bus.js";
import { createMemoryEventBus } from "./events/memory-event-bus.js";
import { createNatsEventBus } from "./events/nats-event-bus.js";
import { createExecutor, type Executor } from "./executor/executor.js";
import { createAgentDirectory } from "./gateway/agent-directory.js";
import { AgentSessions } from "./gateway/agent-sessions.js";
import { createEnvironmentAgents } from "./gateway/environment-agents-impl.js";
import { createGatewayService } from "./gateway/gateway-service.js";
import { type RunningGrpcServer, startGrpcServer } from "./gateway/grpc-server.js";
import { createHealthMonitor } from "./health/health-monitor.js";
import { createMetrics } from "./metrics/metrics.js";
import { openStore } from "./store/index.js";

/** A running control plane. */
export interface ControlPlane {
  httpPort: number;
  grpcPort: number;
  /** Set when this start generated the system-admin token (print it once). */
  generatedAdminToken: string | undefined;
  sessions: AgentSessions;
  bus: EventBus;
  /** Stops serving, closes agent streams, the bus and the store. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts every part of the control plane: store (with migrations), event bus,
 * agent gateway, health monitor and HTTP API.
 */
export async function startControlPlane(config: ControlPlaneConfig, logger: Logger): Promise<ControlPlane> {
  const store = await openStore({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, logger });
  const bus = config.natsUrl ? await createNatsEventBus(config.natsUrl, logger) : createMemoryEventBus();
  const { generated } = await ensureSystemAdminToken(store.db, config.adminToken, logger);

  const sessions = new AgentSessions(logger.child({ component: "gateway" }));
  const health = createHealthMonitor({
    db: store.db,
    bus,
    logger: logger.child({ component: "health" }),
    heartbeatIntervalMs: config.heartbeatIntervalMs,
  });
  const grpc: RunningGrpcServer = await startGrpcServer(
    createGatewayService({
      directory: createAgentDirectory(store.db),
      sessions,
      health,
      logger: logger.child({ component: "gateway" }),
      heartbeatIntervalMs: config.heartbeatIntervalMs,
    }),
    {
      host: config.bindHost,
      port: config.grpcPort,
      ...(config.grpcTls ? { tls: config.grpcTls } : {}),
      logger,
    },
  );
  health.start();
  const executor: Executor = createExecutor({
    db: store.db,
    bus,
    sessions,
    logger: logger.child({ component: "executor" }),
    replicaId: config.replicaId,
    leaseMs: config.executionLeaseMs,
    writesInFlight: config.writesInFlight,
  });
  executor.start();

  let stopping = false;
  const app = createApiApp({
    db: store.db,
    agents: createEnvironmentAgents(sessions),
    logger: logger.child({ component: "api" }),
    config,
    bus,
    onExecutionQueued: () => executor.nudge(),
    metrics: createMetrics({ db: store.db, sessions }),
    readiness: async () => !stopping,
  });
  const http: ServerType = await new Promise((resolve) => {
    const server = serve({ fetch: app.fetch, port: config.httpPort, hostname: config.bindHost }, () =>
      resolve(server),
    );
  });
  const address = http.address();
  const httpPort = typeof address === "object" && address ? address.port : config.httpPort;
  logger.info("http api listening", { address: `${config.bindHost}:${httpPort}` });

  let stopped: Promise<void> | undefined;
  return {
    httpPort,
    grpcPort: grpc.port,
    generatedAdminToken: generated,
    sessions,
    bus,
    stop() {
      stopped ??= (async () => {
        stopping = true;
        await executor.stop();
        await health.stop();
        sessions.closeAll("control plane shutting down");
        await Promise.allSettled([
          grpc.stop(3_000),
          new Promise<void>((resolve) => {
            http.close(() => resolve());
            (http as { closeAllConnections?: () => void }).closeAllConnections?.();
          }),
        ]);
        await bus.close().catch(() => {});
        await store.close();
        logger.info("stopped");
      })();
      return stopped;
    },
  };
}
