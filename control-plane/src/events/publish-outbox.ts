/** One event waiting to be published. */
export interface OutboxItem {
  subject: string;
  /** The event as JSON. */
  payload: string;
  /** Deduplication id (a re-sent event is stored once). */
  msgId: string | undefined;
}

interface Entry {
  item: OutboxItem;
  resolve: () => void;
}

/**
 * The in-memory queue of events not yet acknowledged by NATS, in publish
 * order, bounded: past `maxQueued`, the oldest are dropped (and reported once
 * per drop through `onDrop`). Each `push` returns a promise that resolves when
 * the event was published (`settle`), dropped, or when the waiters are
 * released (NATS went away: nobody should wait for it). Pure apart from the
 * callbacks; never rejects.
 */
export class PublishOutbox {
  private readonly entries: Entry[] = [];

  constructor(
    private readonly maxQueued: number,
    private readonly onDrop: (dropped: number) => void = () => {},
  ) {}

  /** Events queued. */
  get size(): number {
    return this.entries.length;
  }

  /** Queues an event; resolves once it is published, dropped, or waiters are released. */
  push(item: OutboxItem): Promise<void> {
    let resolve: () => void = () => {};
    const done = new Promise<void>((r) => {
      resolve = r;
    });
    this.entries.push({ item, resolve });
    const over = this.entries.length - Math.max(1, this.maxQueued);
    if (over > 0) {
      for (const dropped of this.entries.splice(0, over)) dropped.resolve();
      this.onDrop(over);
    }
    return done;
  }

  /** The oldest event, to publish next. */
  peek(): OutboxItem | undefined {
    return this.entries[0]?.item;
  }

  /** Removes a published event (if still queued) and resolves its waiter. */
  settle(item: OutboxItem): void {
    const at = this.entries.findIndex((e) => e.item === item);
    if (at < 0) return;
    const [entry] = this.entries.splice(at, 1);
    entry!.resolve();
  }

  /** Resolves every waiter now; the events stay queued. */
  releaseWaiters(): void {
    for (const e of this.entries) {
      e.resolve();
      e.resolve = () => {};
    }
  }
}
