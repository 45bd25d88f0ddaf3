import { ERROR_CODES, type ErrorCode } from "./error-codes.js";

/** Options of {@link DrayError}. */
export interface DrayErrorOptions {
  /** Structured context safe to show to the caller (never secrets). */
  details?: unknown;
  /** True when repeating the same operation may succeed. Defaults by code. */
  retryable?: boolean;
  cause?: unknown;
}

const RETRYABLE_BY_DEFAULT: ReadonlySet<ErrorCode> = new Set(["unavailable", "aborted", "deadline_exceeded"]);

/**
 * The one error type of Dray. Every boundary (HTTP, gRPC, driver) converts to
 * and from it with {@link DrayError.from}; check `code`, not `instanceof`, across packages.
 *
 * @example
 * throw new DrayError("not_found", `environment ${id} was not found`);
 */
export class DrayError extends Error {
  override readonly name = "DrayError";
  readonly code: ErrorCode;
  readonly details: unknown;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: DrayErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details;
    this.retryable = options.retryable ?? RETRYABLE_BY_DEFAULT.has(code);
  }

  /**
   * Normalises anything thrown into a DrayError. Abort and timeout errors become
   * `cancelled` / `deadline_exceeded`; anything else keeps its message under `fallback`.
   */
  static from(error: unknown, fallback: ErrorCode = "internal"): DrayError {
    if (isDrayError(error)) return error;
    if (error instanceof Error) {
      if (error.name === "AbortError")
        return new DrayError("cancelled", error.message || "cancelled", { cause: error });
      if (error.name === "TimeoutError")
        return new DrayError("deadline_exceeded", error.message || "deadline exceeded", { cause: error });
      return new DrayError(fallback, error.message, { cause: error });
    }
    return new DrayError(fallback, String(error));
  }
}

/** True for a DrayError from any copy of this package. */
export function isDrayError(error: unknown): error is DrayError {
  return (
    error instanceof DrayError ||
    (error instanceof Error &&
      error.name === "DrayError" &&
      typeof (error as { code?: unknown }).code === "string" &&
      (ERROR_CODES as readonly string[]).includes((error as unknown as { code: string }).code))
  );
}
