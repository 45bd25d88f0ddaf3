/**
 * One store poll per execution, shared by all its event streams on this
 * replica. A feed is created when the first stream of an execution subscribes,
 * is reference counted, and stops (poll loop and bus subscription) when the
 * last one leaves or once the execution has ended. Streams that are behind the
 * feed (a resume from an old `Last-Event-ID`, or a slow client) catch up with
 * their own paged reads, then take new events from the feed's buffer.
 *
 * Events are published only once stored (the store is the outbox), so an event
 * that arrives on the bus right after the last one the feed holds is taken as
 * it came, without a store read. Anything else (a gap, a final status, an
 * event from before the feed) makes the feed read the store, as its poll does.
 */
import { and, asc, eq, gt, lte, sql } from "drizzle-orm";
import type { EventBus, Subscription } from "../events/event-bus.js";
import type { Db } from "../store/db.js";
import { executionEvents, executions } from "../store/schema.js";
import { FINAL_STATUSES } from "./execution-vocabulary.js";

/** A stored execution event as the streams yield it. */
export interface StoredEvent {
  seq: number;
  payload: unknown;
}

/** What the hub reads from the store, for counting in tests and metrics. */
export type StoreReadKind = "state" | "events" | "final-event" | "catch-up";

/** Options of {@link ExecutionEventHub}. */
export interface ExecutionEventHubOptions {
  db: Db;
  /** Nudges a feed as soon as an event is published (`dray.<org>.executions.<id>.>`). */
  bus?: EventBus | undefined;
  /** Table poll interval of a feed. @default 1000 */
  pollMs?: number;
  /**
   * How long a feed waits, once the execution is final and every stored event
   * was read, for its final status event when none is stored yet. @default 2000
   */
  finalGraceMs?: number;
  /** Called before every store read (tests count them). */
  onStoreRead?: (kind: StoreReadKind, executionId: string) => void;
}

/** Events read per query. */
export const READ_BATCH = 500;
/** Events a feed keeps for streams that are a little behind; older ones are re-read from the store. */
export const FEED_BUFFER = 1_000;

/** A wait that a nudge (or abort) ends early; a nudge during no wait ends the next one at once. */
export function createWaker() {
  let pending = false;
  let wake: (() => void) | undefined;
  return {
    nudge() {
      if (wake) wake();
      else pending = true;
    },
    wait(ms: number, signal: AbortSignal): Promise<void> {
      if (pending || signal.aborted) {
        pending = false;
        return Promise.resolve();
      }
      return new Promise((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          wake = undefined;
          resolve();
        };
        const timer = setTimeout(done, ms);
        signal.addEventListener("abort", done);
        wake = done;
      });
    },
  };
}

/** The shared follower of one execution's stored events. */
export interface ExecutionFeed {
  /** Highest seq the feed has read (events up to it are in the buffer or older). */
  readonly lastSeq: number;
  /** True once the execution is gone, or final with every event read. */
  readonly ended: boolean;
  /** Set when a poll failed; every stream then fails with it. */
  readonly error: unknown;
  /** Buffered events with a seq greater than `afterSeq`, or undefined when the buffer no longer reaches back that far. */
  bufferedAfter(afterSeq: number): StoredEvent[] | undefined;
  /** Calls `listener` whenever the feed read something new or ended; returns the unlisten function. */
  onChange(listener: () => void): () => void;
  /** Leaves the feed (the last one to leave stops it). */
  release(): void;
}

/** Reads up to READ_BATCH events of an execution after `afterSeq`, in seq order. */
async function readEvents(db: Db, executionId: string, afterSeq: number): Promise<StoredEvent[]> {
  return db
    .select({ seq: executionEvents.seq, payload: executionEvents.payload })
    .from(executionEvents)
    .where(and(eq(executionEvents.executionId, executionId), gt(executionEvents.seq, afterSeq)))
    .orderBy(asc(executionEvents.seq))
    .limit(READ_BATCH);
}

/**
 * True when a final status event with a seq up to `upToSeq` is stored: one the
 * feed has already passed. A later one (stored after the rows were read) must
 * still be read, so it does not count.
 */
async function hasFinalStatusEvent(db: Db, executionId: string, upToSeq: number): Promise<boolean> {
  const finals = [...FINAL_STATUSES];
  const [row] = await db
    .select({ seq: executionEvents.seq })
    .from(executionEvents)
    .where(
      and(
        eq(executionEvents.executionId, executionId),
        eq(executionEvents.channel, "status"),
        lte(executionEvents.seq, upToSeq),
        sql`${executionEvents.payload}->>'status' in (${sql.join(
          finals.map((s) => sql`${s}`),
          sql`, `,
        )})`,
      ),
    )
    .limit(1);
  return row !== undefined;
}

/**
 * A copy of a parsed JSON value (no Dates or other classes: JSON.parse it
 * first, as storing it would) with every object's keys in the order a jsonb
 * column keeps them (shorter keys first, then by their bytes), so an event
 * taken from the bus serialises exactly as the same event read back from the
 * store.
 *
 * @example inJsonbKeyOrder({ type: "x", seq: 4, at: "…" }) // { at: "…", seq: 4, type: "x" }
 */
export function inJsonbKeyOrder(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(inJsonbKeyOrder);
  if (value === null || typeof value !== "object") return value;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => [Buffer.from(k, "utf8"), k, inJsonbKeyOrder(v)] as const);
  entries.sort(([a], [b]) => a.length - b.length || Buffer.compare(a, b));
  return Object.fromEntries(entries.map(([, k, v]) => [k, v]));
}

/** True for an `execution.status` event whose status is final. */
function isFinalStatusEvent(event: unknown): boolean {
  const e = event as { type?: unknown; status?: unknown } | null;
  return (
    e?.type === "execution.status" && typeof e.status === "string" && FINAL_STATUSES.has(e.status as never)
  );
}

class Feed implements ExecutionFeed {
  lastSeq: number;
  ended = false;
  error: unknown;
  refs = 0;
  private readonly buffer: StoredEvent[] = [];
  /** Every event with a seq in (bufferBase, lastSeq] is in the buffer. */
  private bufferBase: number;
  private readonly listeners = new Set<() => void>();
  private readonly stop = new AbortController();
  private readonly waker = createWaker();
  private subscription: Subscription | undefined;

  constructor(
    private readonly hub: ExecutionEventHubOptions & { pollMs: number; finalGraceMs: number },
    readonly organisationId: string,
    readonly executionId: string,
    startSeq: number,
    private readonly onStop: (feed: Feed) => void,
  ) {
    this.lastSeq = startSeq;
    this.bufferBase = startSeq;
  }

  start(): void {
    this.subscription = this.hub.bus?.subscribe(
      `dray.${this.organisationId}.executions.${this.executionId}.>`,
      (_subject, event) => this.published(event),
    );
    void this.loop();
  }

  bufferedAfter(afterSeq: number): StoredEvent[] | undefined {
    if (afterSeq < this.bufferBase) return undefined;
    let i = this.buffer.length;
    while (i > 0 && this.buffer[i - 1]!.seq > afterSeq) i--;
    return this.buffer.slice(i);
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  release(): void {
    this.refs--;
    if (this.refs <= 0) this.halt();
  }

  /**
   * An event published on the bus: the next one in seq order goes straight
   * into the buffer (unless it ends the execution, which the store confirms);
   * anything else wakes the poll.
   */
  private published(event: unknown): void {
    const seq = (event as { seq?: unknown } | null)?.seq;
    if (typeof seq === "number" && seq <= this.lastSeq) return;
    if (seq === this.lastSeq + 1 && !this.stop.signal.aborted && !isFinalStatusEvent(event)) {
      // As the store would give it back, so a stream reads the same whichever way an event came.
      this.append([{ seq, payload: inJsonbKeyOrder(JSON.parse(JSON.stringify(event))) }]);
      this.notify();
      return;
    }
    this.waker.nudge();
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  private halt(): void {
    if (this.stop.signal.aborted) return;
    this.stop.abort();
    this.subscription?.unsubscribe();
    this.subscription = undefined;
    this.onStop(this);
  }

  private finish(error?: unknown): void {
    this.ended = true;
    if (error !== undefined) this.error = error;
    this.halt();
    this.notify();
  }

  private read<T>(kind: StoreReadKind, run: () => Promise<T>): Promise<T> {
    this.hub.onStoreRead?.(kind, this.executionId);
    return run();
  }

  /** Adds events in seq order; those the feed already holds (taken from the bus during a read) are skipped. */
  private append(rows: StoredEvent[]): void {
    const fresh = rows.filter((row) => row.seq > this.lastSeq);
    if (fresh.length === 0) return;
    for (const row of fresh) this.buffer.push(row);
    this.lastSeq = fresh[fresh.length - 1]!.seq;
    const excess = this.buffer.length - FEED_BUFFER;
    if (excess > 0) this.bufferBase = this.buffer.splice(0, excess).at(-1)!.seq;
  }

  private async loop(): Promise<void> {
    const { db, pollMs, finalGraceMs } = this.hub;
    const signal = this.stop.signal;
    let finalSince: number | undefined;
    try {
      while (!signal.aborted) {
        const [state] = await this.read("state", () =>
          db
            .select({ status: executions.status, eventSeq: executions.eventSeq })
            .from(executions)
            .where(eq(executions.id, this.executionId)),
        );
        if (!state) return this.finish();
        const rows = await this.read("events", () => readEvents(db, this.executionId, this.lastSeq));
        if (signal.aborted) return;
        const before = this.lastSeq;
        this.append(rows);
        if (this.lastSeq > before) this.notify();
        if (rows.length === READ_BATCH) continue;
        if (FINAL_STATUSES.has(state.status) && this.lastSeq >= state.eventSeq) {
          const seen = await this.read("final-event", () =>
            hasFinalStatusEvent(db, this.executionId, this.lastSeq),
          );
          if (seen) return this.finish();
          finalSince ??= Date.now();
          if (Date.now() - finalSince >= finalGraceMs) return this.finish();
        }
        await this.waker.wait(pollMs, signal);
      }
    } catch (error) {
      if (!signal.aborted) this.finish(error ?? new Error("execution feed failed"));
    }
  }
}

/**
 * The per-replica registry of execution feeds.
 *
 * @example
 * const hub = new ExecutionEventHub({ db, bus });
 * for await (const item of followExecutionEvents({ hub, organisationId, executionId, afterSeq: 0, signal })) …
 */
export class ExecutionEventHub {
  private readonly feeds = new Map<string, Feed>();
  private readonly options: ExecutionEventHubOptions & { pollMs: number; finalGraceMs: number };

  constructor(options: ExecutionEventHubOptions) {
    this.options = {
      ...options,
      pollMs: options.pollMs ?? 1_000,
      finalGraceMs: options.finalGraceMs ?? 2_000,
    };
  }

  /** The store the hub reads. */
  get db(): Db {
    return this.options.db;
  }

  /** Executions that have a running feed (tests check that feeds stop). */
  get activeFeeds(): number {
    return this.feeds.size;
  }

  /**
   * Joins the execution's feed (starting one that reads after `afterSeq` when
   * none runs); call `release()` on the result when the stream ends.
   */
  acquire(organisationId: string, executionId: string, afterSeq: number): ExecutionFeed {
    let feed = this.feeds.get(executionId);
    if (!feed) {
      feed = new Feed(this.options, organisationId, executionId, afterSeq, (stopped) => {
        if (this.feeds.get(executionId) === stopped) this.feeds.delete(executionId);
      });
      this.feeds.set(executionId, feed);
      feed.refs++;
      feed.start();
      return feed;
    }
    feed.refs++;
    return feed;
  }

  /** Reads up to READ_BATCH events after `afterSeq` for a stream that is behind its feed. */
  catchUp(executionId: string, afterSeq: number): Promise<StoredEvent[]> {
    this.options.onStoreRead?.("catch-up", executionId);
    return readEvents(this.options.db, executionId, afterSeq);
  }
}
