/**
 * The control plane's configuration: every variable is read here, once, and
 * validated; nothing deeper reads process.env.
 */
import { accessSync, constants, statSync } from "node:fs";
import { z } from "zod";

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === "" ? undefined : v.trim()));

/** Default of DRAY_UPLOAD_MAX_BYTES: 5 GiB. */
export const DEFAULT_UPLOAD_MAX_BYTES = 5 * 1024 ** 3;
/** Default of DRAY_FILE_RETENTION_DAYS. */
export const DEFAULT_FILE_RETENTION_DAYS = 90;

const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);

/**
 * Every variable the control plane reads, with its validation and default. Each property's doc
 * comment is its documentation: scripts/generate-env-examples.ts writes it into
 * deploy/control-plane.env.example.
 */
export const EnvSchema = z.object({
  /** Postgres URL of the store. Unset: embedded PGlite under DRAY_DATA_DIR. */
  DRAY_DATABASE_URL: optionalString.refine((v) => v === undefined || /^postgres(ql)?:\/\//.test(v), {
    message: "must be a postgres:// or postgresql:// URL (leave it unset for the embedded store)",
  }),
  /** NATS URL for events. Unset: in-process bus. */
  DRAY_NATS_URL: optionalString.refine((v) => v === undefined || /^(nats|tls):\/\//.test(v), {
    message: "must be a nats:// or tls:// URL (leave it unset for the in-process bus)",
  }),
  /** Where embedded state lives (PGlite store). */
  DRAY_DATA_DIR: z.string().default("./.dray"),
  /** Port of the HTTP API, the web UI, /healthz, /readyz and /metrics. */
  DRAY_HTTP_PORT: port(8080),
  /** Port of the agent gateway (gRPC) that agents dial. */
  DRAY_GRPC_PORT: port(7070),
  /** Address both servers bind to. */
  DRAY_BIND_HOST: z.string().default("127.0.0.1"),
  /** Allows binding beyond loopback without TLS (e.g. on a private network behind a TLS proxy). */
  DRAY_ALLOW_INSECURE_BIND: z
    .enum(["true", "false", "1", "0", ""])
    .default("false")
    .transform((v) => v === "true" || v === "1"),
  /** System-admin token. Unset: one is generated on first start and printed once. */
  DRAY_ADMIN_TOKEN: optionalString.refine((v) => v === undefined || v.length >= 24, {
    message: "must be at least 24 characters",
  }),
  /**
   * Bearer token Prometheus scrapes /metrics with (its counters name organisations and pipelines).
   * Unset: /metrics answers 403.
   */
  DRAY_METRICS_TOKEN: optionalString.refine((v) => v === undefined || v.length >= 24, {
    message: "must be at least 24 characters",
  }),
  /** Heartbeat interval agents are told to use; 3 missed beats make an environment unhealthy. */
  DRAY_HEARTBEAT_INTERVAL_MS: z.coerce.number().int().min(100).max(600_000).default(10_000),
  /** TLS for the agent gateway: certificate chain (PEM file). Both or neither with DRAY_GRPC_TLS_KEY_FILE. */
  DRAY_GRPC_TLS_CERT_FILE: optionalString,
  /** TLS for the agent gateway: private key (PEM file). Both or neither with DRAY_GRPC_TLS_CERT_FILE. */
  DRAY_GRPC_TLS_KEY_FILE: optionalString,
  /** Mutual TLS for the agent gateway: agents must present a certificate chaining to this CA (PEM). */
  DRAY_GRPC_TLS_CLIENT_CA_FILE: optionalString,
  /** TLS (HTTPS) for the HTTP API: certificate chain (PEM file). Both or neither with DRAY_HTTP_TLS_KEY_FILE. */
  DRAY_HTTP_TLS_CERT_FILE: optionalString,
  /** TLS (HTTPS) for the HTTP API: private key (PEM file). Both or neither with DRAY_HTTP_TLS_CERT_FILE. */
  DRAY_HTTP_TLS_KEY_FILE: optionalString,
  /** Hours an enrollment token stays valid. */
  DRAY_ENROLLMENT_TOKEN_TTL_HOURS: z.coerce
    .number()
    .positive()
    .max(24 * 30)
    .default(24),
  /** Monthly record limit given to new organisations. */
  DRAY_DEFAULT_MONTHLY_RECORD_LIMIT: z.coerce.number().int().min(0).default(1_000_000),
  /** Lowest level of the log lines written. */
  DRAY_LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  /**
   * How log lines look: `pretty` (one readable line each), `json` (one JSON object each), or
   * `auto`: pretty on a terminal, JSON otherwise (files, pipes, journald, log collectors).
   */
  DRAY_LOG_FORMAT: z.enum(["auto", "json", "pretty"]).default("auto"),
  /** Lease of a running execution; a replica that dies is replaced after it expires. */
  DRAY_EXECUTION_LEASE_MS: z.coerce.number().int().min(1000).max(600_000).default(15_000),
  /** Write batches of one entity in flight at once (1 = one at a time); commits are settled in order. */
  DRAY_EXECUTION_WRITES_IN_FLIGHT: z.coerce.number().int().min(1).max(8).default(2),
  /** Name of this replica in logs and leases. Defaults to host:pid. */
  DRAY_REPLICA_ID: optionalString,
  /**
   * Largest file `POST /api/v1/pipeline/upload` accepts, in bytes (as sent: compressed size for gzip);
   * past it the upload answers 413. Default 5 GiB.
   */
  DRAY_UPLOAD_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(1)
    .max(2 ** 50)
    .default(DEFAULT_UPLOAD_MAX_BYTES),
  /**
   * Days the record and staged bytes of a loaded or skipped file are kept; after that they are purged
   * (hourly) and the same bytes load again when uploaded again. Default 90.
   */
  DRAY_FILE_RETENTION_DAYS: z.coerce.number().int().min(1).max(36_500).default(DEFAULT_FILE_RETENTION_DAYS),
});

/** The resolved configuration of one control-plane process. */
export interface ControlPlaneConfig {
  databaseUrl: string | undefined;
  natsUrl: string | undefined;
  dataDir: string;
  httpPort: number;
  grpcPort: number;
  bindHost: string;
  adminToken: string | undefined;
  /** DRAY_METRICS_TOKEN: the bearer token of /metrics; undefined keeps /metrics closed. */
  metricsToken: string | undefined;
  heartbeatIntervalMs: number;
  /** TLS of the agent gateway; with `clientCaFile`, agents must present a certificate chaining to it. */
  grpcTls: { certFile: string; keyFile: string; clientCaFile?: string } | undefined;
  /** TLS of the HTTP API (HTTPS); unset: plain HTTP. */
  httpTls: { certFile: string; keyFile: string } | undefined;
  enrollmentTokenTtlMs: number;
  defaultMonthlyRecordLimit: number;
  logLevel: string;
  /** DRAY_LOG_FORMAT: undefined chooses by whether stderr is a terminal. */
  logFormat: "json" | "pretty" | undefined;
  replicaId: string;
  executionLeaseMs: number;
  /** Write batches of one entity in flight at once. */
  writesInFlight: number;
  /** DRAY_UPLOAD_MAX_BYTES: the largest accepted upload. */
  uploadMaxBytes: number;
  /** DRAY_FILE_RETENTION_DAYS: days loaded or skipped files are kept. */
  fileRetentionDays: number;
}

/**
 * Parses the environment. Throws an Error listing every problem by variable name.
 *
 * @example
 * const config = loadConfig(process.env);
 */
export function loadConfig(env: NodeJS.ProcessEnv, defaults: { replicaId: string }): ControlPlaneConfig {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new Error(`invalid control-plane configuration:\n${lines.join("\n")}`);
  }
  const e = parsed.data;
  const problems = [
    ...pairProblems(
      "DRAY_GRPC_TLS_CERT_FILE",
      e.DRAY_GRPC_TLS_CERT_FILE,
      "DRAY_GRPC_TLS_KEY_FILE",
      e.DRAY_GRPC_TLS_KEY_FILE,
    ),
    ...pairProblems(
      "DRAY_HTTP_TLS_CERT_FILE",
      e.DRAY_HTTP_TLS_CERT_FILE,
      "DRAY_HTTP_TLS_KEY_FILE",
      e.DRAY_HTTP_TLS_KEY_FILE,
    ),
    ...(e.DRAY_GRPC_TLS_CLIENT_CA_FILE && !e.DRAY_GRPC_TLS_CERT_FILE
      ? [
          "DRAY_GRPC_TLS_CLIENT_CA_FILE: needs DRAY_GRPC_TLS_CERT_FILE and DRAY_GRPC_TLS_KEY_FILE (mutual TLS needs TLS)",
        ]
      : []),
    ...(!isLoopbackHost(e.DRAY_BIND_HOST) &&
    !e.DRAY_ALLOW_INSECURE_BIND &&
    !(e.DRAY_HTTP_TLS_CERT_FILE && e.DRAY_GRPC_TLS_CERT_FILE)
      ? [
          `DRAY_BIND_HOST: ${e.DRAY_BIND_HOST} is reachable beyond this machine, so both servers need TLS: set DRAY_HTTP_TLS_CERT_FILE/DRAY_HTTP_TLS_KEY_FILE and DRAY_GRPC_TLS_CERT_FILE/DRAY_GRPC_TLS_KEY_FILE, or bind 127.0.0.1 behind a TLS proxy (or set DRAY_ALLOW_INSECURE_BIND=true to accept plain text)`,
        ]
      : []),
    ...fileProblems({
      DRAY_GRPC_TLS_CERT_FILE: e.DRAY_GRPC_TLS_CERT_FILE,
      DRAY_GRPC_TLS_KEY_FILE: e.DRAY_GRPC_TLS_KEY_FILE,
      DRAY_GRPC_TLS_CLIENT_CA_FILE: e.DRAY_GRPC_TLS_CLIENT_CA_FILE,
      DRAY_HTTP_TLS_CERT_FILE: e.DRAY_HTTP_TLS_CERT_FILE,
      DRAY_HTTP_TLS_KEY_FILE: e.DRAY_HTTP_TLS_KEY_FILE,
    }),
  ];
  if (problems.length > 0) {
    throw new Error(`invalid control-plane configuration:\n${problems.map((p) => `  ${p}`).join("\n")}`);
  }
  return {
    databaseUrl: e.DRAY_DATABASE_URL,
    natsUrl: e.DRAY_NATS_URL,
    dataDir: e.DRAY_DATA_DIR,
    httpPort: e.DRAY_HTTP_PORT,
    grpcPort: e.DRAY_GRPC_PORT,
    bindHost: e.DRAY_BIND_HOST,
    adminToken: e.DRAY_ADMIN_TOKEN,
    metricsToken: e.DRAY_METRICS_TOKEN,
    heartbeatIntervalMs: e.DRAY_HEARTBEAT_INTERVAL_MS,
    grpcTls:
      e.DRAY_GRPC_TLS_CERT_FILE && e.DRAY_GRPC_TLS_KEY_FILE
        ? {
            certFile: e.DRAY_GRPC_TLS_CERT_FILE,
            keyFile: e.DRAY_GRPC_TLS_KEY_FILE,
            ...(e.DRAY_GRPC_TLS_CLIENT_CA_FILE ? { clientCaFile: e.DRAY_GRPC_TLS_CLIENT_CA_FILE } : {}),
          }
        : undefined,
    httpTls:
      e.DRAY_HTTP_TLS_CERT_FILE && e.DRAY_HTTP_TLS_KEY_FILE
        ? { certFile: e.DRAY_HTTP_TLS_CERT_FILE, keyFile: e.DRAY_HTTP_TLS_KEY_FILE }
        : undefined,
    enrollmentTokenTtlMs: e.DRAY_ENROLLMENT_TOKEN_TTL_HOURS * 3_600_000,
    defaultMonthlyRecordLimit: e.DRAY_DEFAULT_MONTHLY_RECORD_LIMIT,
    logLevel: e.DRAY_LOG_LEVEL,
    logFormat: e.DRAY_LOG_FORMAT === "auto" ? undefined : e.DRAY_LOG_FORMAT,
    replicaId: e.DRAY_REPLICA_ID ?? defaults.replicaId,
    executionLeaseMs: e.DRAY_EXECUTION_LEASE_MS,
    writesInFlight: e.DRAY_EXECUTION_WRITES_IN_FLIGHT,
    uploadMaxBytes: e.DRAY_UPLOAD_MAX_BYTES,
    fileRetentionDays: e.DRAY_FILE_RETENTION_DAYS,
  };
}

/** A problem when only one of a pair of variables is set. */
function pairProblems(
  a: string,
  aValue: string | undefined,
  b: string,
  bValue: string | undefined,
): string[] {
  return Boolean(aValue) === Boolean(bValue) ? [] : [`${a} and ${b} must be set together`];
}

/** A problem for each named file that is missing, not a regular file, or not readable. */
function fileProblems(files: Record<string, string | undefined>): string[] {
  const problems: string[] = [];
  for (const [name, path] of Object.entries(files)) {
    if (path === undefined) continue;
    try {
      if (!statSync(path).isFile()) {
        problems.push(`${name}: ${path} is not a file`);
        continue;
      }
      accessSync(path, constants.R_OK);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      problems.push(
        `${name}: cannot read ${path} (${code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : (code ?? "error")})`,
      );
    }
  }
  return problems;
}

/** True for addresses only this machine can reach (`localhost`, `127.x.x.x`, `::1`). */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || host.startsWith("127.");
}
