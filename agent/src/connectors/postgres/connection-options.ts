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

/** Options of {@link createPool}. */
export interface PoolOptions {
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
  return net.connect({ host: options.host[0], port: options.port[0] ?? 5432, noDelay: true });
}

/**
 * A postgres.js pool with Dray's session settings. Types are fetched on connect
 * (postgres.js needs that for `reserve()` on a fresh pool); statements are
 * never prepared by name, since Dray's SQL is built per entity.
 */
export function createPool(options: PoolOptions): postgres.Sql {
  const poolOptions = {
    max: options.max,
    idle_timeout: 60,
    connect_timeout: options.connectTimeoutSeconds ?? 10,
    prepare: false,
    connection: SESSION_SETTINGS,
    onnotice: (notice: postgres.Notice) =>
      options.logger.debug("postgres notice", { message: notice.message, code: notice.code }),
    socket: noDelaySocket,
  };
  return postgres(
    withoutSessionOverrides(options.url),
    poolOptions as unknown as postgres.Options<Record<string, postgres.PostgresType>>,
  );
}
