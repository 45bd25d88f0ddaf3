import type { components } from "./api.js";

/** The error codes the API answers with (the gRPC code set). */
export type ApiErrorCode = components["schemas"]["Error"]["error"]["code"];

/**
 * An error answered by the control plane: HTTP status, the API's error code,
 * its message and details. Every SDK error has a `code`.
 *
 * @example
 * try { await dray.environments.get(id) } catch (e) { if (e instanceof DrayApiError && e.code === "not_found") … }
 */
export class DrayApiError extends Error {
  override readonly name: string = "DrayApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

/**
 * The control plane could not be reached (connection refused, DNS, timeout).
 *
 * @example
 * catch (e) { if (e instanceof DrayConnectionError) console.error(`is the control plane up at ${e.url}?`) }
 */
export class DrayConnectionError extends DrayApiError {
  override readonly name = "DrayConnectionError";
  constructor(
    readonly url: string,
    cause: unknown,
  ) {
    super(0, "unavailable", `cannot reach the Dray control plane at ${url}: ${describeCause(cause)}`);
    this.cause = cause;
  }
}

/**
 * An execution ended `failed`. `code` is the execution's reason code
 * (e.g. `monthly_record_limit`, `environment_unhealthy`, `batch_failed`).
 *
 * @example
 * catch (e) { if (e instanceof ExecutionFailedError) console.error(e.execution.reason) }
 */
export class ExecutionFailedError extends DrayApiError {
  override readonly name = "ExecutionFailedError";
  constructor(readonly execution: { id: string; reason: string | null; reasonCode: string | null }) {
    super(
      200,
      execution.reasonCode ?? "failed",
      `execution ${execution.id} failed: ${execution.reason ?? "no reason given"}`,
    );
  }
}

/**
 * An execution ended `cancelled`.
 *
 * @example
 * catch (e) { if (e instanceof ExecutionCancelledError) process.exitCode = 3 }
 */
export class ExecutionCancelledError extends DrayApiError {
  override readonly name = "ExecutionCancelledError";
  constructor(readonly execution: { id: string; reason: string | null }) {
    super(
      200,
      "cancelled",
      `execution ${execution.id} was cancelled: ${execution.reason ?? "no reason given"}`,
    );
  }
}

function describeCause(cause: unknown): string {
  const c = cause as { cause?: { code?: string; message?: string }; message?: string };
  return c?.cause?.code ?? c?.cause?.message ?? c?.message ?? String(cause);
}
