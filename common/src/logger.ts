import { pino } from "pino";

/** Structured fields attached to a log line. */
export type LogFields = Record<string, unknown>;

/**
 * The logger every Dray component receives. Only `main.ts` binds a backend;
 * components scope it with `child({ orgId, executionId, entity, agentId })`.
 */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

/** Options of {@link createPinoLogger}. */
export interface PinoLoggerOptions {
  /** @default "info" */
  level?: string;
  /** Process name put on every line. */
  name: string;
}

/** Field names whose values are never written to logs. */
const REDACTED_PATHS = [
  "token",
  "credential",
  "secret",
  "password",
  "authorization",
  "enrollmentToken",
  "*.token",
  "*.credential",
  "*.secret",
  "*.password",
  "*.authorization",
  "*.enrollmentToken",
];

/** A {@link Logger} writing JSON lines to stderr through pino, with secrets redacted. */
export function createPinoLogger(options: PinoLoggerOptions): Logger {
  const base = pino(
    {
      name: options.name,
      level: options.level ?? "info",
      redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
    },
    pino.destination(2),
  );
  return wrap(base);
}

function wrap(p: pino.Logger): Logger {
  return {
    debug: (m, f) => p.debug(f ?? {}, m),
    info: (m, f) => p.info(f ?? {}, m),
    warn: (m, f) => p.warn(f ?? {}, m),
    error: (m, f) => p.error(f ?? {}, m),
    child: (f) => wrap(p.child(f)),
  };
}

/** A logger that drops everything; the default in tests and libraries. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};
