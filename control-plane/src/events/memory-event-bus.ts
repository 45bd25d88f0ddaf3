import type { DrayEvent, EventBus, PublishOptions, Subscription } from "./event-bus.js";
import { subjectMatches } from "./subject-match.js";

/**
 * The embedded-mode bus: same subjects and semantics as the NATS bus
 * (deduplication by msgId within two minutes), delivered in-process.
 */
export function createMemoryEventBus(options: { dedupeWindowMs?: number } = {}): EventBus {
  const window = options.dedupeWindowMs ?? 120_000;
  const handlers = new Set<{ pattern: string; handler: (subject: string, event: DrayEvent) => void }>();
  const seen = new Map<string, number>();
  return {
    async publish(subject: string, event: DrayEvent, opts?: PublishOptions) {
      if (opts?.msgId) {
        const now = Date.now();
        for (const [id, at] of seen) if (now - at > window) seen.delete(id);
        if (seen.has(opts.msgId)) return true;
        seen.set(opts.msgId, now);
      }
      for (const h of handlers) {
        if (!subjectMatches(h.pattern, subject)) continue;
        try {
          h.handler(subject, event);
        } catch {
          // A subscriber's failure never breaks the publisher.
        }
      }
      return true;
    },
    subscribe(pattern: string, handler: (subject: string, event: DrayEvent) => void): Subscription {
      const entry = { pattern, handler };
      handlers.add(entry);
      return { unsubscribe: () => handlers.delete(entry) };
    },
    async close() {
      handlers.clear();
    },
  };
}
