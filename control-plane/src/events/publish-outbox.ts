/** One event waiting to be published. */
export interface OutboxItem {
  subject: string;
  /** The event as JSON. */
  payload: string;
  /** Deduplication id (a re-sent event is stored once). */
  msgId: string | undefined;
  /** Kept in the store, which republishes it: never kept here once NATS is away. */
  stored?: boolean;
}

interface Entry {
  item: OutboxItem;
  resolve: (published: boolean) => void;
}

/**
 * The in-memory queue of events not yet acknowledged by NATS, in publish
 * order, bounded: past `maxQueued`, the oldest are dropped (and reported once
 * per drop through `onDrop`). Each `push` returns a promise that resolves
 * `true` when the event was published (`settle`), `false` when it was
 * dropped or when the waiters are released (NATS went away: nobody should
 * wait for it). Events marked `stored` leave the queue on release (their
 * store republishes them). Pure apart from the callbacks; never rejects.
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

  /** Queues an event; resolves `true` once published, `false` if dropped or waiters are released. */
  push(item: OutboxItem): Promise<boolean> {
    let resolve: (published: boolean) => void = () => {};
    const done = new Promise<boolean>((r) => {
      resolve = r;
    });
    this.entries.push({ item, resolve });
    const over = this.entries.length - Math.max(1, this.maxQueued);
    if (over > 0) {
      for (const dropped of this.entries.splice(0, over)) dropped.resolve(false);
      this.onDrop(over);
    }
    return done;
  }

  /** The oldest event, to publish next. */
  peek(): OutboxItem | undefined {
    return this.entries[0]?.item;
  }

  /** Removes an event (if still queued) and resolves its waiter: `published` or given up. */
  settle(item: OutboxItem, published = true): void {
    const at = this.entries.findIndex((e) => e.item === item);
    if (at < 0) return;
    const [entry] = this.entries.splice(at, 1);
    entry!.resolve(published);
  }

  /** Resolves every waiter now (`false`); stored events leave the queue, the others stay. */
  releaseWaiters(): void {
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const e = this.entries[i]!;
      e.resolve(false);
      e.resolve = () => {};
      if (e.item.stored) this.entries.splice(i, 1);
    }
  }
}
