import { readFile } from "node:fs/promises";
import { createServer as createHttpsServer, type ServerOptions as HttpsServerOptions } from "node:https";
import type { Logger } from "@dray/common";
import { type ServerType, serve } from "@hono/node-server";
import { API_SERVER_OPTIONS, answerClientErrors } from "./api/http-server-options.js";
import { createApiApp } from "./api/index.js";
import { ensureSystemAdminToken } from "./auth/index.js";
import { type ControlPlaneConfig, isLoopbackHost } from "./config.js";
import type { EventBus } from "./events/event-bus.js";
import { createEventRepublisher, type EventRepublisher } from "./events/event-republisher.js";
import { createMemoryEventBus } from "./events/memory-event-bus.js";
import { createNatsEventBus } from "./events/nats-event-bus.js";
import { createExecutor, type Executor } from "./executor/executor.js";
import { gatewayAgentPort } from "./executor/gateway-agent-port.js";
import { startFilePurge } from "./files/file-records.js";
import { createAgentDirectory } from "./gateway/agent-directory.js";
import { AgentRegistry } from "./gateway/agent-registry.js";
import { AgentSessions } from "./gateway/agent-sessions.js";
import { createEnvironmentAgents } from "./gateway/environment-agents-impl.js";
import { createGatewayService } from "./gateway/gateway-service.js";
import { type RunningGrpcServer, startGrpcServer } from "./gateway/grpc-server.js";
import { ReplicaAgentSessions } from "./gateway/replica-agent-sessions.js";
import { openTaskRelay, type TaskRelay } from "./gateway/task-relay.js";
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

/** Options of {@link startHttpServer}. */
export interface HttpServerOptions {
  host: string;
  port: number;
  /** HTTPS with this certificate chain and key (PEM files); unset: plain HTTP. */
  tls?: { certFile: string; keyFile: string };
  /** Extra options of Node's HTTP(S) server (e.g. `maxHeaderSize`). */
  serverOptions?: HttpsServerOptions;
}

/**
 * Serves `fetch` over HTTP, or HTTPS when `tls` is given, and resolves once listening.
 *
 * @example
 * const server = await startHttpServer(app.fetch, { host: "127.0.0.1", port: 0 });
 */
export async function startHttpServer(
  fetch: (request: Request, env: unknown) => Response | Promise<Response>,
  options: HttpServerOptions,
): Promise<ServerType> {
  const tlsOptions = options.tls
    ? { cert: await readFile(options.tls.certFile), key: await readFile(options.tls.keyFile) }
    : undefined;
  return new Promise((resolve, reject) => {
    const server = serve(
      {
        fetch,
        port: options.port,
        hostname: options.host,
        ...(tlsOptions
          ? { createServer: createHttpsServer, serverOptions: { ...options.serverOptions, ...tlsOptions } }
          : options.serverOptions
            ? { serverOptions: options.serverOptions }
            : {}),
      },
      () => resolve(server),
    );
    server.once("error", reject);
  });
}

/** Warns when a server listens beyond this machine without TLS (allowed only with DRAY_ALLOW_INSECURE_BIND). */
function warnIfExposed(config: ControlPlaneConfig, logger: Logger): void {
  if (isLoopbackHost(config.bindHost)) return;
  if (!config.httpTls)
    logger.warn(
      "the HTTP API listens beyond loopback without TLS: set DRAY_HTTP_TLS_CERT_FILE and DRAY_HTTP_TLS_KEY_FILE",
      {
        bindHost: config.bindHost,
      },
    );
  if (!config.grpcTls)
    logger.warn(
      "the agent gateway listens beyond loopback without TLS: set DRAY_GRPC_TLS_CERT_FILE and DRAY_GRPC_TLS_KEY_FILE",
      {
        bindHost: config.bindHost,
      },
    );
}

/**
 * Starts every part of the control plane: store (with migrations), event bus,
 * agent gateway, health monitor, executor, event republisher and HTTP API.
 */
export async function startControlPlane(config: ControlPlaneConfig, logger: Logger): Promise<ControlPlane> {
  const store = await openStore({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, logger });
  const bus = config.natsUrl ? await createNatsEventBus(config.natsUrl, logger) : createMemoryEventBus();
  const { generated } = await ensureSystemAdminToken(store.db, config.adminToken, logger);

  // Several replicas share the store and NATS: agents are recorded in the store, and a task for an
  // agent held by another replica is relayed to it over NATS. Embedded (no NATS): one replica.
  const registry = config.natsUrl
    ? new AgentRegistry({
        db: store.db,
        replicaId: config.replicaId,
        logger: logger.child({ component: "registry" }),
      })
    : undefined;
  const sessions = registry
    ? new ReplicaAgentSessions(logger.child({ component: "gateway" }), registry)
    : new AgentSessions(logger.child({ component: "gateway" }));
  registry?.start();
  let relay: TaskRelay | undefined;
  let relayStopped = false;
  if (config.natsUrl && sessions instanceof ReplicaAgentSessions) {
    const natsUrl = config.natsUrl;
    // In the background, like the event bus: the control plane starts and runs while NATS is away.
    void (async () => {
      for (let attempt = 0; !relayStopped && !relay; attempt++) {
        try {
          const opened = await openTaskRelay(
            natsUrl,
            (environmentId, kind, payload, options) =>
              sessions.dispatchHere(environmentId, kind, payload, options),
            logger.child({ component: "relay" }),
          );
          if (relayStopped) await opened.close();
          else {
            relay = opened;
            sessions.attachRelay(opened);
          }
        } catch (error) {
          if (attempt === 0)
            logger.warn("nats unreachable: tasks are not relayed between replicas until it is back", {
              error: String(error),
            });
          await new Promise((resolve) => setTimeout(resolve, 2_000));
        }
      }
    })();
  }
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
    agents: gatewayAgentPort(sessions),
    logger: logger.child({ component: "executor" }),
    replicaId: config.replicaId,
    leaseMs: config.executionLeaseMs,
    writesInFlight: config.writesInFlight,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
  });
  executor.start();
  // The store is the outbox of execution events: what NATS did not acknowledge is sent from there.
  // The in-process bus of embedded mode acknowledges every publish, so it needs none.
  const republisher: EventRepublisher | undefined = config.natsUrl
    ? createEventRepublisher({ db: store.db, bus, logger: logger.child({ component: "events" }) })
    : undefined;
  republisher?.start();
  // Loaded and skipped files past DRAY_FILE_RETENTION_DAYS, and orphaned staged bytes: now, then hourly.
  const filePurge = startFilePurge({
    db: store.db,
    logger: logger.child({ component: "files" }),
    retentionDays: config.fileRetentionDays,
  });

  let stopping = false;
  const app = createApiApp({
    db: store.db,
    agents: createEnvironmentAgents(sessions),
    logger: logger.child({ component: "api" }),
    config,
    bus,
    onExecutionQueued: () => executor.nudge(),
    metrics: createMetrics({ db: store.db, sessions, heartbeatIntervalMs: config.heartbeatIntervalMs }),
    metricsToken: config.metricsToken,
    readiness: async () => !stopping,
    gateway: { port: config.grpcPort, tls: config.grpcTls !== undefined },
  });
  const http = await startHttpServer(app.fetch, {
    host: config.bindHost,
    port: config.httpPort,
    ...(config.httpTls ? { tls: config.httpTls } : {}),
    serverOptions: { ...API_SERVER_OPTIONS },
  });
  answerClientErrors(http);
  const address = http.address();
  const httpPort = typeof address === "object" && address ? address.port : config.httpPort;
  logger.info("http api listening", {
    address: `${config.httpTls ? "https" : "http"}://${config.bindHost}:${httpPort}`,
  });
  warnIfExposed(config, logger);

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
        await republisher?.stop();
        await filePurge.stop();
        sessions.closeAll("control plane shutting down");
        relayStopped = true;
        registry?.stop();
        await relay?.close();
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
