import net from "node:net";
import type { Logger } from "@dray/common";
import postgres from "postgres";

/** `application_name` of every agent session (visible in pg_stat_activity). */
export const APPLICATION_NAME = "dray-agent";

/**
 * Session settings sent in the startup packet of every connection. They make
 * the text form of values deterministic (ISO dates in UTC, round-trippable
 * floats, hex bytea), which is what COPY text carries between databases.
 */
export const SESSION_SETTINGS = {
  application_name: APPLICATION_NAME,
  DateStyle: "ISO",
  TimeZone: "UTC",
  IntervalStyle: "postgres",
  extra_float_digits: 3,
  bytea_output: "hex",
} as const;

/**
 * Server-side limits sent with every connection, so no session outlives its
 * use when the agent or the network goes away: a statement runs at most
 * 10 minutes (a write batch takes seconds; a task's own deadline is shorter
 * and cancels it first), and a transaction left idle for a minute (the agent
 * never waits between the statements of one) is ended by the server, freeing
 * its locks. The URL may override them (`?statement_timeout=…`).
 */
export const TIMEOUT_SETTINGS = {
  statement_timeout: 600_000,
  idle_in_transaction_session_timeout: 60_000,
} as const;

/** Seconds of silence before TCP keepalive probes start on a connection. */
export const KEEPALIVE_SECONDS = 15;

/**
 * Delay in seconds before a closed connection of the pool reconnects, by
 * failures so far: short and capped, so a database that comes back is used
 * within a second or two (postgres.js's default grows to 20 s).
 */
export function reconnectDelaySeconds(retries: number): number {
  return Math.min(0.05 * 2 ** Math.max(0, retries), 1);
}

/** Hooks of {@link createPool} into the driver's connection events. */
export interface PoolHooks {
  /** Called with the driver's connection id and each statement's text as it is sent. */
  onStatement?(connectionId: number, text: string): void;
  /** Called with the driver's connection id when that connection's socket has closed. */
  onClose?(connectionId: number): void;
}

/** Options of {@link createPool}. */
export interface PoolOptions extends PoolHooks {
  url: string;
  max: number;
  logger: Logger;
  /** Seconds to wait for a connection to open. @default 10 */
  connectTimeoutSeconds?: number;
}

/**
 * Drops URL query parameters that would override {@link SESSION_SETTINGS}
 * (postgres.js lets the URL win), so the deterministic settings always apply.
 */
export function withoutSessionOverrides(url: string): string {
  const queryAt = url.indexOf("?");
  if (queryAt === -1) return url;
  const params = new URLSearchParams(url.slice(queryAt + 1));
  const reserved = new Set(Object.keys(SESSION_SETTINGS).map((k) => k.toLowerCase()));
  for (const key of [...params.keys()]) if (reserved.has(key.toLowerCase())) params.delete(key);
  const rest = params.toString();
  return rest ? `${url.slice(0, queryAt)}?${rest}` : url.slice(0, queryAt);
}

/**
 * Opens TCP connections with Nagle's algorithm off. postgres.js writes COPY
 * data, CopyDone and the next query as separate small packets; with Nagle on,
 * each COPY costs a ~40 ms delayed-ACK stall. Unix sockets are used as given.
 */
function noDelaySocket(options: { host: string[]; port: number[]; path?: string | false }): net.Socket {
  if (options.path) return net.connect(options.path);
  return net.connect({
    host: options.host[0],
    port: options.port[0] ?? 5432,
    noDelay: true,
    keepAlive: true,
    keepAliveInitialDelay: KEEPALIVE_SECONDS * 1000,
  });
}

/**
 * A postgres.js pool with Dray's session settings. Types are fetched on connect
 * (postgres.js needs that for `reserve()` on a fresh pool). Statements are not
 * prepared unless a session asks (Session's `prepared`: the few whose text is
 * the same for every entity), since most of Dray's SQL is built per entity.
 */
export function createPool(options: PoolOptions): postgres.Sql {
  const poolOptions = {
    max: options.max,
    idle_timeout: 60,
    connect_timeout: options.connectTimeoutSeconds ?? 10,
    prepare: true,
    connection: { ...TIMEOUT_SETTINGS, ...SESSION_SETTINGS },
    keep_alive: KEEPALIVE_SECONDS,
    backoff: reconnectDelaySeconds,
    onnotice: (notice: postgres.Notice) =>
      options.logger.debug("postgres notice", { message: notice.message, code: notice.code }),
    socket: noDelaySocket,
    ...(options.onStatement
      ? {
          debug: (connectionId: number, text: unknown) => {
            if (typeof text === "string") options.onStatement!(connectionId, text);
          },
        }
      : {}),
    ...(options.onClose ? { onclose: (connectionId: number) => options.onClose!(connectionId) } : {}),
  };
  return postgres(
    withoutSessionOverrides(options.url),
    poolOptions as unknown as postgres.Options<Record<string, postgres.PostgresType>>,
  );
}
