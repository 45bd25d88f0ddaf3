/**
 * The agent's configuration: every variable is read here, once, and validated;
 * nothing deeper reads process.env.
 */
import { hostname } from "node:os";
import { z } from "zod";
import { type GatewayAddress, type GatewayAddressSpec, parseGatewayAddresses } from "./gateway-addresses.js";

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === "" ? undefined : v.trim()));

/**
 * Every variable the agent reads, with its validation and default. Each property's doc comment is
 * its documentation: scripts/generate-env-examples.ts writes it into deploy/agent.env.example.
 */
export const EnvSchema = z.object({
  /**
   * The control plane's agent gateways, comma-separated and tried in order: http://host:7070 or
   * grpc://host:7070 (plain), https://host:7070 or grpcs://host:7070 (TLS), or a bare host:7070
   * (TLS when a DRAY_AGENT_TLS_* file is set, plain otherwise).
   */
  DRAY_CONTROL_PLANE_URL: z
    .string({ message: "is required (e.g. http://127.0.0.1:7070)" })
    .transform((value, ctx): GatewayAddressSpec[] => {
      const parsed = parseGatewayAddresses(value);
      if ("error" in parsed) {
        ctx.addIssue({ code: "custom", message: parsed.error });
        return z.NEVER;
      }
      return parsed.addresses;
    }),
  /** One-time token from POST /api/v1/environments; only needed until the agent has enrolled. */
  DRAY_ENROLLMENT_TOKEN: optionalString,
  /** The environment's database. */
  DRAY_AGENT_DATABASE_URL: z
    .string({ message: "is required (e.g. postgres://user@host:5432/db)" })
    .regex(/^postgres(ql)?:\/\//, "must be a postgres:// or postgresql:// URL"),
  /** Where the agent keeps its credential after enrolment. */
  DRAY_AGENT_STATE_DIR: z.string().default("./.dray-agent"),
  /** Name shown for this agent. Defaults to the host name. */
  DRAY_AGENT_NAME: optionalString,
  /** Tasks run at once. */
  DRAY_AGENT_MAX_TASKS: z.coerce.number().int().min(1).max(64).default(4),
  /** Connections to the environment's database. */
  DRAY_AGENT_DB_POOL_SIZE: z.coerce.number().int().min(1).max(100).default(6),
  /**
   * How write batches are loaded: `copy` (COPY FROM STDIN, fastest) or `insert`
   * (bound arrays, for servers without COPY FROM STDIN, e.g. PGlite's socket server).
   */
  DRAY_AGENT_BULK_LOAD: z.enum(["copy", "insert"]).default("copy"),
  /**
   * How read pages are read: `copy` (COPY TO STDOUT, the server's bytes forwarded
   * as they are; cheapest) or `select` (rows decoded and re-encoded by the agent,
   * for servers or proxies without COPY TO STDOUT).
   */
  DRAY_AGENT_BULK_READ: z.enum(["copy", "select"]).default("copy"),
  /**
   * Whether the agent holds a snapshot of the database for a run, so that every
   * entity is read as of one moment (on a connection of its own, for the run's
   * length). `off` for servers that serve one session at a time, e.g. PGlite's
   * socket server: runs then read each page in a snapshot of its own.
   */
  DRAY_AGENT_RUN_SNAPSHOTS: z.enum(["on", "off"]).default("on"),
  /** How long a graceful stop waits for tasks in flight before cancelling them. */
  DRAY_AGENT_DRAIN_TIMEOUT_MS: z.coerce.number().int().min(0).max(600_000).default(30_000),
  /** PEM CA bundle to trust for the control plane's certificate (TLS). */
  DRAY_AGENT_TLS_CA_FILE: optionalString,
  /** Client certificate (PEM) for mutual TLS. Both or neither with DRAY_AGENT_TLS_KEY_FILE. */
  DRAY_AGENT_TLS_CERT_FILE: optionalString,
  /** Client private key (PEM) for mutual TLS. Both or neither with DRAY_AGENT_TLS_CERT_FILE. */
  DRAY_AGENT_TLS_KEY_FILE: optionalString,
  /** Lowest level of the log lines written. */
  DRAY_LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  /**
   * How log lines look: `pretty` (one readable line each), `json` (one JSON object each), or
   * `auto`: pretty on a terminal, JSON otherwise (files, pipes, journald, log collectors).
   */
  DRAY_LOG_FORMAT: z.enum(["auto", "json", "pretty"]).default("auto"),
  /**
   * The key of every transformation this agent runs (32 bytes, hex or base64). Absent: one is
   * created in the state directory (transform.key) at the first start. It never leaves the agent.
   */
  DRAY_AGENT_TRANSFORM_KEY: optionalString,
  /**
   * Port of the agent's Prometheus metrics (GET /metrics: process defaults, database operations by
   * kind and outcome, their durations). Unset or empty: no metrics server (the default).
   */
  DRAY_AGENT_METRICS_PORT: z.preprocess(
    (v) => (typeof v === "string" && v.trim() === "" ? undefined : v),
    z.coerce.number().int().min(1).max(65_535).optional(),
  ),
  /** Address the metrics server binds; it has no authentication, so loopback unless set. */
  DRAY_AGENT_METRICS_HOST: z.string().trim().min(1).default("127.0.0.1"),
});

/** The resolved configuration of one agent process. */
export interface AgentConfig {
  /** The first gateway of {@link AgentConfig.controlPlanes}. */
  controlPlane: GatewayAddress;
  /** Every gateway, in the order they are tried (at least one). */
  controlPlanes: GatewayAddress[];
  enrollmentToken: string | undefined;
  databaseUrl: string;
  stateDir: string;
  name: string;
  maxTasks: number;
  dbPoolSize: number;
  bulkLoad: "copy" | "insert";
  bulkRead: "copy" | "select";
  runSnapshots: boolean;
  drainTimeoutMs: number;
  tls: { caFile?: string; certFile?: string; keyFile?: string };
  logLevel: string;
  /** DRAY_LOG_FORMAT: undefined chooses by whether stderr is a terminal. */
  logFormat: "json" | "pretty" | undefined;
  /** DRAY_AGENT_TRANSFORM_KEY as given (parsed by loadTransformKey); undefined: the state directory's. */
  transformKey: string | undefined;
  /** Where GET /metrics is served (DRAY_AGENT_METRICS_HOST/PORT); undefined: not served. */
  metrics: { host: string; port: number } | undefined;
}

/**
 * Parses the environment. Throws an Error listing every problem by variable name.
 *
 * @example
 * const config = loadAgentConfig(process.env);
 */
export function loadAgentConfig(env: NodeJS.ProcessEnv): AgentConfig {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new Error(`invalid agent configuration:\n${lines.join("\n")}`);
  }
  const e = parsed.data;
  if (Boolean(e.DRAY_AGENT_TLS_CERT_FILE) !== Boolean(e.DRAY_AGENT_TLS_KEY_FILE)) {
    throw new Error(
      "invalid agent configuration:\n  DRAY_AGENT_TLS_CERT_FILE and DRAY_AGENT_TLS_KEY_FILE must be set together",
    );
  }
  // A bare host:port has no scheme to say: TLS when the agent has TLS files, as a URL says with https.
  const tlsConfigured = Boolean(e.DRAY_AGENT_TLS_CA_FILE || e.DRAY_AGENT_TLS_CERT_FILE);
  const controlPlanes = e.DRAY_CONTROL_PLANE_URL.map((spec) => ({
    address: spec.address,
    tls: spec.tls ?? tlsConfigured,
  }));
  return {
    controlPlane: controlPlanes[0] as GatewayAddress,
    controlPlanes,
    enrollmentToken: e.DRAY_ENROLLMENT_TOKEN,
    databaseUrl: e.DRAY_AGENT_DATABASE_URL,
    stateDir: e.DRAY_AGENT_STATE_DIR,
    name: e.DRAY_AGENT_NAME ?? hostname(),
    maxTasks: e.DRAY_AGENT_MAX_TASKS,
    dbPoolSize: e.DRAY_AGENT_DB_POOL_SIZE,
    bulkLoad: e.DRAY_AGENT_BULK_LOAD,
    bulkRead: e.DRAY_AGENT_BULK_READ,
    runSnapshots: e.DRAY_AGENT_RUN_SNAPSHOTS === "on",
    drainTimeoutMs: e.DRAY_AGENT_DRAIN_TIMEOUT_MS,
    tls: {
      ...(e.DRAY_AGENT_TLS_CA_FILE ? { caFile: e.DRAY_AGENT_TLS_CA_FILE } : {}),
      ...(e.DRAY_AGENT_TLS_CERT_FILE ? { certFile: e.DRAY_AGENT_TLS_CERT_FILE } : {}),
      ...(e.DRAY_AGENT_TLS_KEY_FILE ? { keyFile: e.DRAY_AGENT_TLS_KEY_FILE } : {}),
    },
    logLevel: e.DRAY_LOG_LEVEL,
    logFormat: e.DRAY_LOG_FORMAT === "auto" ? undefined : e.DRAY_LOG_FORMAT,
    transformKey: e.DRAY_AGENT_TRANSFORM_KEY,
    metrics:
      e.DRAY_AGENT_METRICS_PORT === undefined
        ? undefined
        : { host: e.DRAY_AGENT_METRICS_HOST, port: e.DRAY_AGENT_METRICS_PORT },
  };
}
