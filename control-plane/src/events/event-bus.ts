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
  /**
   * The event is kept in the store, which republishes it (events/event-republisher.ts):
   * the bus does not queue it in memory while NATS is unreachable or refusing,
   * and answers `false` at once instead.
   */
  stored?: boolean;
}

/** A live subscription; `unsubscribe()` ends it. */
export interface Subscription {
  unsubscribe(): void;
}

export interface EventBus {
  /**
   * Publishes durably (JetStream). Resolves `true` once NATS (or the in-process
   * bus) acknowledged the event, `false` when it was only queued or dropped.
   * Never rejects.
   */
  publish(subject: string, event: DrayEvent, options?: PublishOptions): Promise<boolean>;
  /** Live subscription to a subject pattern (`*` one token, `>` the rest). */
  subscribe(subject: string, handler: (subject: string, event: DrayEvent) => void): Subscription;
  /**
   * Calls `listener` each time the bus (re)connects to NATS, so stored events
   * can be republished at once; returns the unsubscribe. Absent on in-process buses.
   */
  onConnected?(listener: () => void): () => void;
  close(): Promise<void>;
}
