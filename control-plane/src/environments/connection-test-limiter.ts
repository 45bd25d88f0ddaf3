/**
 * Rate limit of connection tests, per environment: at most one in flight and
 * at most a few started per minute. Pure in-memory bookkeeping on this replica;
 * the caller passes the clock.
 */
import { DrayError } from "@dray/common";

/** Connection tests of one environment that may start per window. */
export const CONNECTION_TESTS_PER_WINDOW = 6;
/** The window of {@link CONNECTION_TESTS_PER_WINDOW}, in ms. */
export const CONNECTION_TEST_WINDOW_MS = 60_000;
/** `Retry-After` while a test of the environment is still running, in seconds. */
const IN_FLIGHT_RETRY_SECONDS = 1;

/** Limits of {@link ConnectionTestLimiter}. */
export interface ConnectionTestLimits {
  /** @default CONNECTION_TESTS_PER_WINDOW */
  perWindow?: number;
  /** @default CONNECTION_TEST_WINDOW_MS */
  windowMs?: number;
}

/**
 * Admits connection tests per environment.
 *
 * @example
 * const done = limiter.admit(environment.id, Date.now()); // throws resource_exhausted when too many
 * try { await test(); } finally { done(); }
 */
export class ConnectionTestLimiter {
  readonly perWindow: number;
  readonly windowMs: number;
  private readonly started = new Map<string, number[]>();
  private readonly running = new Set<string>();

  constructor(limits: ConnectionTestLimits = {}) {
    this.perWindow = limits.perWindow ?? CONNECTION_TESTS_PER_WINDOW;
    this.windowMs = limits.windowMs ?? CONNECTION_TEST_WINDOW_MS;
  }

  /**
   * Admits a test of `environmentId` at `nowMs` and returns the function that
   * marks it finished. Throws `resource_exhausted` (HTTP 429) with
   * `details.retryAfterSeconds` while one is running or when the window is full.
   */
  admit(environmentId: string, nowMs: number): () => void {
    if (this.running.has(environmentId)) {
      throw new DrayError(
        "resource_exhausted",
        "a connection test of this environment is already running: wait for its answer, then retry",
        { details: { retryAfterSeconds: IN_FLIGHT_RETRY_SECONDS } },
      );
    }
    const recent = (this.started.get(environmentId) ?? []).filter((at) => nowMs - at < this.windowMs);
    if (recent.length >= this.perWindow) {
      const retryAfterSeconds = Math.max(1, Math.ceil((recent[0]! + this.windowMs - nowMs) / 1000));
      this.started.set(environmentId, recent);
      throw new DrayError(
        "resource_exhausted",
        `this environment's connection was tested ${this.perWindow} times in the last ` +
          `${Math.round(this.windowMs / 1000)} s, the most allowed: retry in ${retryAfterSeconds} s`,
        { details: { retryAfterSeconds } },
      );
    }
    recent.push(nowMs);
    this.started.set(environmentId, recent);
    this.running.add(environmentId);
    this.prune(nowMs);
    let open = true;
    return () => {
      if (open) this.running.delete(environmentId);
      open = false;
    };
  }

  /** Forgets environments with no test in the window, so the map stays small. */
  private prune(nowMs: number): void {
    if (this.started.size < 1_000) return;
    for (const [id, times] of this.started) {
      if (!this.running.has(id) && times.every((at) => nowMs - at >= this.windowMs)) this.started.delete(id);
    }
  }
}
