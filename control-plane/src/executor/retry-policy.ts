import type { DrayError } from "@dray/common";

/** What to do after a batch attempt failed. */
export type RetryDecision = { retry: true; delayMs: number } | { retry: false };

/** Delay before the first retry of a batch. */
export const FIRST_RETRY_DELAY_MS = 2_000;
/** Longest delay between two retries. */
export const MAX_RETRY_DELAY_MS = 30_000;
/** Jitter added on top of each delay, as a fraction of it (never taken off: the spans below are minimums). */
export const RETRY_JITTER = 0.25;

/** The delay of the first retry, doubling up to the longest. */
export interface Backoff {
  firstMs: number;
  maxMs: number;
}

const DEFAULT_BACKOFF: Backoff = { firstMs: FIRST_RETRY_DELAY_MS, maxMs: MAX_RETRY_DELAY_MS };

/**
 * Delay before retry number `attempt` (0-based): 2 s, 4 s, 8 s, 16 s, … capped
 * at 30 s, plus up to 25 % of random jitter on top. With the default 4
 * retries the waits add up to at least 30 s, long enough to ride out a short
 * database or network outage.
 *
 * @example
 * retryDelayMs(3, () => 0) // 16000
 */
export function retryDelayMs(
  attempt: number,
  random: () => number = Math.random,
  backoff: Backoff = DEFAULT_BACKOFF,
): number {
  const base = Math.min(backoff.maxMs, backoff.firstMs * 2 ** Math.max(0, attempt));
  return Math.round(base * (1 + RETRY_JITTER * random()));
}

/** The least total wait of `retries` retries (no jitter). */
export function minimumRetrySpanMs(retries: number): number {
  let total = 0;
  for (let attempt = 0; attempt < retries; attempt++) total += retryDelayMs(attempt, () => 0);
  return total;
}

/**
 * Retry a retryable error (lost connection, deadlock, timeout) until
 * `maxRetries` retries were made, with the backoff of {@link retryDelayMs};
 * never retry a non-retryable one (bad data, missing table) or a
 * cancellation. An agent that is away is not a failed attempt: the copier
 * waits for it instead (see task-retries.ts).
 *
 * @example
 * retryDecision(err, 0, 4) // { retry: true, delayMs: 2000…2500 } when err.retryable
 */
export function retryDecision(
  error: Pick<DrayError, "retryable" | "code">,
  attempt: number,
  maxRetries: number,
  random: () => number = Math.random,
  backoff: Backoff = DEFAULT_BACKOFF,
): RetryDecision {
  if (error.code === "cancelled" || !error.retryable || attempt >= maxRetries) return { retry: false };
  return { retry: true, delayMs: retryDelayMs(attempt, random, backoff) };
}
