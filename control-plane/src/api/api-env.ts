/** Types shared by the API's route modules. */

import type { Logger } from "@dray/common";
import type { Principal } from "../auth/roles.js";
import type { ControlPlaneConfig } from "../config.js";
import type { EventBus } from "../events/event-bus.js";
import type { EnvironmentAgents } from "../gateway/environment-agents.js";
import type { Metrics } from "../metrics/metrics.js";
import type { Db } from "../store/open-store.js";

/** Hono environment of the API: what middleware puts in the context. */
export interface ApiEnv {
  Variables: {
    /** Set by the auth middleware on every /api/v1 route except the OpenAPI document. */
    principal: Principal;
    /** Set by the request-id middleware; echoed as `X-Request-Id`. */
    requestId: string;
  };
}

/** What {@link createApiApp} needs. */
export interface ApiDeps {
  db: Db;
  agents: EnvironmentAgents;
  logger: Logger;
  config: Pick<
    ControlPlaneConfig,
    "enrollmentTokenTtlMs" | "defaultMonthlyRecordLimit" | "heartbeatIntervalMs"
  >;
  /** Extra readiness check for GET /readyz (e.g. the gateway is listening). */
  readiness?: () => Promise<boolean>;
  /** Clock, for tests. @default () => new Date() */
  now?: () => Date;
  /** Where execution events are published; without it, starts and cancels write no events. */
  bus?: EventBus;
  /** Called after an execution was queued (e.g. to wake the executor). */
  onExecutionQueued?: (executionId: string) => void;
  /** Prometheus metrics; when given, every request is counted and GET /metrics serves them to {@link metricsToken}. */
  metrics?: Metrics;
  /** The bearer token /metrics asks for (DRAY_METRICS_TOKEN); without it /metrics answers 403. */
  metricsToken?: string | undefined;
  /** The agent gateway's port and TLS, for the agent command the web UI shows; default 7070 without TLS. */
  gateway?: { port: number; tls: boolean };
}

/** {@link ApiDeps} with defaults applied, as route modules receive them. */
export type RouteDeps = Omit<ApiDeps, "now"> & { now: () => Date };
