import { pino } from "pino";
import pinoPretty from "pino-pretty";

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

/** How log lines are written: JSON lines for machines, or one coloured line per entry for people. */
export type LogFormat = "json" | "pretty";

/** Options of {@link createPinoLogger}. */
export interface PinoLoggerOptions {
  /** @default "info" */
  level?: string;
  /** Process name put on every line. */
  name: string;
  /**
   * Where lines go: a file descriptor or a file path (appended to, created if missing).
   * @default 2 (stderr)
   */
  destination?: number | string;
  /**
   * @default {@link chooseLogFormat} for the destination: pretty on a terminal, JSON otherwise
   * (a file path is never a terminal).
   */
  format?: LogFormat;
}

/** What {@link chooseLogFormat} looks at. */
export interface LogFormatInputs {
  /** Whether the destination is a terminal (`process.stderr.isTTY` for stderr). */
  isTTY: boolean;
  /** `DRAY_LOG_FORMAT` (`json` or `pretty`) and `NO_COLOR` are read from here. */
  env: Record<string, string | undefined>;
}

/** The chosen format and, for `pretty`, whether to colour it. */
export interface LogFormatChoice {
  format: LogFormat;
  colour: boolean;
}

/**
 * Pretty lines on a terminal, JSON lines otherwise (files, pipes, journald, log collectors).
 * `DRAY_LOG_FORMAT=json|pretty` overrides the guess (e.g. JSON in a container started with a
 * TTY); any other value is ignored. Colour only on a terminal and never with `NO_COLOR` set
 * (https://no-color.org: any non-empty value).
 */
export function chooseLogFormat(inputs: LogFormatInputs): LogFormatChoice {
  const forced = inputs.env.DRAY_LOG_FORMAT?.trim().toLowerCase();
  const format: LogFormat =
    forced === "json" || forced === "pretty" ? forced : inputs.isTTY ? "pretty" : "json";
  const colour = format === "pretty" && inputs.isTTY && !inputs.env.NO_COLOR;
  return { format, colour };
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

/**
 * A {@link Logger} through pino, with secrets redacted: to stderr by default, as JSON lines or,
 * on a terminal, as one human-readable line per entry (see {@link chooseLogFormat}). Pretty
 * lines are written synchronously in this thread (no worker), so they survive bundling and
 * keep their order with the process's other output.
 */
export function createPinoLogger(options: PinoLoggerOptions): Logger {
  const destination = options.destination ?? 2;
  const isTTY =
    destination === 2 ? Boolean(process.stderr.isTTY) : destination === 1 && Boolean(process.stdout.isTTY);
  const choice = chooseLogFormat({ isTTY, env: process.env });
  const format = options.format ?? choice.format;
  const stream =
    format === "pretty"
      ? pinoPretty({
          destination,
          sync: true,
          colorize: choice.colour,
          singleLine: true,
          translateTime: "SYS:HH:MM:ss.l",
          ignore: "pid,hostname",
          mkdir: true,
        })
      : pino.destination({ dest: destination, sync: true, mkdir: true, append: true });
  const base = pino(
    {
      name: options.name,
      level: options.level ?? "info",
      redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
    },
    stream,
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
