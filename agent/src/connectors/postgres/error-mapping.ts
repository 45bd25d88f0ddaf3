/**
 * The one place where PostgreSQL and driver failures become DrayErrors. Every
 * case says why it gets its code and whether a retry of the same call may help.
 */
import { DrayError, type ErrorCode, isDrayError } from "@dray/common";

/** Fields of a server error as postgres.js exposes them (`PostgresError`). */
export interface PostgresErrorFields {
  code?: string;
  message?: string;
  detail?: string;
  hint?: string;
  column_name?: string;
  constraint_name?: string;
  table_name?: string;
  schema_name?: string;
}

/** What the caller knows about the failed operation. */
export interface ErrorContext {
  /** True when our own AbortSignal fired: a cancel then means "cancelled", whatever the server said. */
  aborted?: boolean;
  /** Short description of the operation, prefixed to the message (e.g. `count public.users`). */
  operation?: string;
}

/** Driver and socket codes that mean the connection itself failed; the server may be fine on the next try. */
const CONNECTION_FAILURES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "ENOTFOUND",
  "EAI_AGAIN",
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
]);

/** Stream codes seen when the connection under a COPY stream went away. */
const STREAM_FAILURES = new Set([
  "ERR_STREAM_DESTROYED",
  "ERR_STREAM_WRITE_AFTER_END",
  "ERR_STREAM_PREMATURE_CLOSE",
]);

/**
 * True for the TypeError postgres.js 3.4.x throws when it writes to a
 * connection whose socket is already gone (`socket` is null after close;
 * porsager/postgres#1066, #1154, #1208). It means the connection was lost.
 */
export function isDriverLostSocketError(error: unknown): boolean {
  if (!(error instanceof TypeError)) return false;
  if (
    !/\(reading '(write|end|setKeepAlive|removeListener|resume|pause)'\)|null is not an object/.test(
      error.message,
    )
  )
    return false;
  return typeof error.stack === "string" && /postgres[\\/]src[\\/]connection\.js/.test(error.stack);
}

/**
 * True for the rejection of postgres.js 3.4.x's array-type lookup on a new
 * connection (`fetchArrayTypes`, started from `ReadyForQuery` and never
 * awaited) when that connection dies during it: nobody can catch it, and the
 * next connection looks the types up again.
 */
export function isDriverTypeFetchFailure(error: unknown): boolean {
  const e = error as { code?: unknown; query?: unknown } | null;
  return (
    typeof e?.query === "string" &&
    e.query.includes("pg_catalog.pg_type") &&
    e.query.includes("typarray") &&
    typeof e.code === "string" &&
    (e.code.startsWith("CONNECTION_") || e.code.startsWith("E"))
  );
}

/**
 * True when `error` means the connection itself failed (refused, reset,
 * closed, timed out, the server ending the session): the server may be fine on a
 * new connection, and this connection must not be used again.
 */
export function isConnectionFailure(error: unknown): boolean {
  if (isDrayError(error))
    return error.code === "unavailable" && (error.details as { lost?: unknown })?.lost === true;
  if (isDriverLostSocketError(error)) return true;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return false;
  // (Stream codes are left out: a COPY stream the session destroyed itself reports them too;
  // a lost connection under a stream is seen from the driver's own error and close.)
  if (CONNECTION_FAILURES.has(code)) return true;
  // The server ended the session: shutting down, crashed, or a class 08 connection exception.
  const sqlState = sqlStateOf(error);
  return (
    sqlState === "57P01" ||
    sqlState === "57P02" ||
    sqlState === "57P03" ||
    sqlState?.startsWith("08") === true
  );
}

/** The error a statement gets when its connection was lost before or while it ran. */
export function connectionLost(reason: string): DrayError {
  return new DrayError("unavailable", `the connection to the database was lost: ${reason}`, {
    retryable: true,
    details: { lost: true },
  });
}

/**
 * The SQLSTATE of a server error, or of postgres.js's own "cancelled before it
 * was sent" error (`57014`); undefined for socket and driver errors.
 */
export function sqlStateOf(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code !== "string") return undefined;
  if (error.name === "PostgresError" || code === "57014") return code;
  return undefined;
}

/**
 * True for errors caused by the data of a row rather than the statement or the
 * database: class 22 (data exception), class 23 (integrity constraint
 * violation) and 21000 (a merge touching the same row twice). These are the
 * ones rejected-record isolation bisects on.
 */
export function isDataError(sqlState: string | undefined): boolean {
  if (!sqlState) return false;
  return sqlState.startsWith("22") || sqlState.startsWith("23") || sqlState === "21000";
}

/** Safe, structured details of a server error (never values beyond what the server put in its detail). */
export function errorDetails(error: unknown): Record<string, string> {
  const fields = error as PostgresErrorFields;
  const details: Record<string, string> = {};
  const sqlState = sqlStateOf(error);
  if (sqlState) details.sqlState = sqlState;
  if (typeof fields?.detail === "string") details.detail = fields.detail;
  if (typeof fields?.hint === "string") details.hint = fields.hint;
  if (typeof fields?.schema_name === "string") details.schema = fields.schema_name;
  if (typeof fields?.table_name === "string") details.table = fields.table_name;
  if (typeof fields?.column_name === "string") details.column = fields.column_name;
  if (typeof fields?.constraint_name === "string") details.constraint = fields.constraint_name;
  return details;
}

function make(code: ErrorCode, retryable: boolean, message: string, error: unknown): DrayError {
  return new DrayError(code, message, { retryable, details: errorDetails(error), cause: error });
}

/**
 * Converts anything a Postgres operation threw into a DrayError.
 *
 * @example
 * catch (error) { throw toDrayError(error, { aborted: signal.aborted, operation: "count public.t" }) }
 */
export function toDrayError(error: unknown, context: ErrorContext = {}): DrayError {
  const raw = error instanceof Error ? error.message : String(error);
  const message = context.operation ? `${context.operation}: ${raw}` : raw;

  // Our own abort wins over whatever the server or driver reported while we cancelled.
  if (context.aborted) {
    if (isDrayError(error) && error.code === "cancelled") return error;
    return new DrayError("cancelled", context.operation ? `${context.operation}: cancelled` : "cancelled", {
      cause: error,
    });
  }
  if (isDrayError(error)) return error;

  const sqlState = sqlStateOf(error);
  if (sqlState === undefined) {
    const code = (error as { code?: unknown } | null)?.code;
    // Connection refused / reset / closed / timed out: the database or network may come back.
    if (typeof code === "string" && CONNECTION_FAILURES.has(code))
      return make("unavailable", true, message, error);
    // A COPY stream or a driver write that found its connection gone: the connection was lost.
    if ((typeof code === "string" && STREAM_FAILURES.has(code)) || isDriverLostSocketError(error))
      return make(
        "unavailable",
        true,
        `${context.operation ? `${context.operation}: ` : ""}the connection to the database was lost`,
        error,
      );
    // Our pool was ended (close() was called): no retry on this connector can succeed.
    if (code === "CONNECTION_ENDED") return make("failed_precondition", false, message, error);
    // SCRAM signature mismatch: the server could not prove it knows the password.
    if (code === "SASL_SIGNATURE_MISMATCH") return make("unauthenticated", false, message, error);
    // Anything else from the driver or our code is a bug until shown otherwise.
    return make("internal", false, message, error);
  }

  const sqlClass = sqlState.slice(0, 2);
  switch (true) {
    // 57014 query_canceled without our abort: a statement_timeout, or someone cancelled us.
    case sqlState === "57014":
      return /statement timeout/i.test(raw)
        ? make("deadline_exceeded", true, message, error)
        : make("aborted", true, message, error);
    // 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now: server restarting.
    case sqlState === "57P01" || sqlState === "57P02" || sqlState === "57P03":
      return make("unavailable", true, message, error);
    // Class 08 connection exception: the connection broke or could not be made.
    case sqlClass === "08":
      return make("unavailable", true, message, error);
    // 40001 serialization_failure, 40P01 deadlock_detected: the transaction lost a race; run it again.
    case sqlState === "40001" || sqlState === "40P01":
      return make("aborted", true, message, error);
    // 55P03 lock_not_available (lock_timeout or NOWAIT): someone else holds the lock for now.
    case sqlState === "55P03":
      return make("aborted", true, message, error);
    // Class 53 insufficient resources (disk full, out of memory, too many connections): may clear up.
    case sqlClass === "53":
      return make("unavailable", true, message, error);
    // 42P01 undefined_table, 42703 undefined_column, 3F000 invalid_schema_name, 3D000 no such database.
    case sqlState === "42P01" || sqlState === "42703" || sqlState === "3F000" || sqlState === "3D000":
      return make("not_found", false, message, error);
    // Class 22 data exception (bad value, overflow, too long) and 21000 (merge hit a row twice): the data is wrong.
    case sqlClass === "22" || sqlState === "21000":
      return make("invalid_argument", false, message, error);
    // Class 23 integrity constraint violation (unique, FK, not null, check): the target's state refuses the data.
    case sqlClass === "23":
      return make("failed_precondition", false, message, error);
    // 42P10 no unique constraint matches the ON CONFLICT key: the key fields do not fit the target.
    case sqlState === "42P10":
      return make("failed_precondition", false, message, error);
    // 25006 read_only_sql_transaction: connected to a standby or a read-only database.
    case sqlState === "25006":
      return make("failed_precondition", false, message, error);
    // 28000 invalid_authorization_specification, 28P01 invalid_password: wrong credentials.
    case sqlClass === "28":
      return make("unauthenticated", false, message, error);
    // 42501 insufficient_privilege: authenticated, but not allowed to do this.
    case sqlState === "42501":
      return make("permission_denied", false, message, error);
    // Anything else (syntax errors, internal errors, ...) is a bug or an unexpected state.
    default:
      return make("internal", false, message, error);
  }
}
