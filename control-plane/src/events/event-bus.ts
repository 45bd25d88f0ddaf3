/**
 * Where the control plane publishes events. NATS JetStream in production
 * (stream DRAY_EVENTS over `dray.>`), an in-process bus in embedded mode; both
 * use the same subjects (see subjects.ts).
 */

/** Every event is JSON with a `type` and an ISO `at`. */
export interface DrayEvent {
  type: string;
  at: string;
  [field: string]: unknown;
}

export interface PublishOptions {
  /** Deduplication id: a second publish with the same id within the window is dropped. */
  msgId?: string;
}

/** A live subscription; `unsubscribe()` ends it. */
export interface Subscription {
  unsubscribe(): void;
}

export interface EventBus {
  /** Publishes durably (JetStream) and resolves once stored. */
  publish(subject: string, event: DrayEvent, options?: PublishOptions): Promise<void>;
  /** Live subscription to a subject pattern (`*` one token, `>` the rest). */
  subscribe(subject: string, handler: (subject: string, event: DrayEvent) => void): Subscription;
  close(): Promise<void>;
}
