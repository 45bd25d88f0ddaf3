/**
 * The one code set Dray uses for errors everywhere: the gRPC status codes,
 * spelled in snake case. The HTTP API, the agent protocol and logs all carry these.
 */
export const ERROR_CODES = [
  "cancelled",
  "unknown",
  "invalid_argument",
  "deadline_exceeded",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "internal",
  "unavailable",
  "data_loss",
  "unauthenticated",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * Codes whose messages may carry internals (driver text, SQL): every boundary
 * (HTTP API, agent gateway) answers these with a generic message and logs the real one.
 */
export const HIDDEN_ERROR_CODES: ReadonlySet<ErrorCode> = new Set(["internal", "unknown", "data_loss"]);

/** gRPC numeric status for each code (1…16), as on the wire. */
export function grpcStatusOf(code: ErrorCode): number {
  return ERROR_CODES.indexOf(code) + 1;
}

/** The code for a gRPC numeric status; 0 and unknown numbers become `unknown`. */
export function codeOfGrpcStatus(status: number): ErrorCode {
  return ERROR_CODES[status - 1] ?? "unknown";
}

/** HTTP status the API answers for each code. */
export function httpStatusOf(code: ErrorCode): number {
  switch (code) {
    case "invalid_argument":
    case "out_of_range":
      return 400;
    case "unauthenticated":
      return 401;
    case "permission_denied":
      return 403;
    case "not_found":
      return 404;
    case "already_exists":
    case "aborted":
    case "failed_precondition":
      return 409;
    case "resource_exhausted":
      return 429;
    case "cancelled":
      return 499;
    case "unimplemented":
      return 501;
    case "unavailable":
      return 503;
    case "deadline_exceeded":
      return 504;
    case "unknown":
    case "internal":
    case "data_loss":
      return 500;
  }
}
