import { backoffDelay, type DrayError } from "@dray/common";

/** What to do after a batch attempt failed. */
export type RetryDecision = { retry: true; delayMs: number } | { retry: false };

/**
 * Retry a retryable error (lost connection, deadlock, timeout, agent gone)
 * until `maxRetries` retries were made, with exponential backoff; never retry
 * a non-retryable one (bad data, missing table) or a cancellation.
 *
 * @example
 * retryDecision(err, 0, 4) // { retry: true, delayMs: ~250 } when err.retryable
 */
export function retryDecision(
  error: Pick<DrayError, "retryable" | "code">,
  attempt: number,
  maxRetries: number,
  random: () => number = Math.random,
): RetryDecision {
  if (error.code === "cancelled" || !error.retryable || attempt >= maxRetries) return { retry: false };
  return { retry: true, delayMs: backoffDelay(attempt, { initialMs: 250, maxMs: 10_000 }, random) };
}
