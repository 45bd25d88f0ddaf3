import { DrayError } from "./dray-error.js";

/**
 * Resolves after `ms`, or rejects with a `cancelled` DrayError as soon as `signal` aborts.
 *
 * @example
 * await sleep(1000, controller.signal);
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The signal's reason as a DrayError (`cancelled` unless the reason already is one). */
export function abortReason(signal: AbortSignal): DrayError {
  const reason: unknown = signal.reason;
  if (reason instanceof DrayError) return reason;
  return new DrayError("cancelled", reason instanceof Error ? reason.message : String(reason ?? "cancelled"));
}

/** Throws the signal's reason as a DrayError when it has aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortReason(signal);
}

/**
 * An AbortController that also aborts when any parent signal does. Call
 * `dispose()` when done so parents drop their listeners.
 */
export function linkedAbortController(...parents: (AbortSignal | undefined)[]): {
  controller: AbortController;
  dispose: () => void;
} {
  const controller = new AbortController();
  const cleanups: (() => void)[] = [];
  for (const parent of parents) {
    if (!parent) continue;
    if (parent.aborted) {
      controller.abort(parent.reason);
      break;
    }
    const onAbort = () => controller.abort(parent.reason);
    parent.addEventListener("abort", onAbort, { once: true });
    cleanups.push(() => parent.removeEventListener("abort", onAbort));
  }
  return {
    controller,
    dispose: () => {
      for (const c of cleanups) c();
    },
  };
}

/**
 * Waits until every promise has settled (fulfilled or rejected) or `ms` have
 * passed, whichever comes first; never rejects. Resolves `true` when time ran
 * out first. The timer is always cleared, so it never keeps a process alive.
 *
 * @example
 * const timedOut = await settleWithin(tasksInFlight, 30_000);
 */
export async function settleWithin(promises: readonly Promise<unknown>[], ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), ms);
  });
  try {
    return await Promise.race([Promise.allSettled(promises).then(() => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
