/** Options of {@link backoffDelay}. */
export interface BackoffOptions {
  /** First delay in ms. @default 250 */
  initialMs?: number;
  /** Largest delay in ms. @default 30000 */
  maxMs?: number;
  /** Growth per attempt. @default 2 */
  multiplier?: number;
  /** Fraction of the delay drawn at random, 0…1. @default 0.2 */
  jitter?: number;
}

/**
 * Delay before retry number `attempt` (0-based) with exponential growth, a cap
 * and proportional jitter. Pure: pass `random` to make it deterministic.
 *
 * @example
 * backoffDelay(3, { initialMs: 100 }, () => 0.5) // 800
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const initial = options.initialMs ?? 250;
  const max = options.maxMs ?? 30_000;
  const multiplier = options.multiplier ?? 2;
  const jitter = options.jitter ?? 0.2;
  const raw = Math.min(max, initial * multiplier ** Math.max(0, attempt));
  const spread = raw * jitter;
  return Math.max(0, Math.round(raw - spread + 2 * spread * random()));
}
