import type { Logger } from "@dray/common";
import type postgres from "postgres";
import type { PoolHooks } from "./connection-options.js";

/**
 * Marks the first statement of a session so the pool can tell which driver
 * connection the session holds: `/*dray-session:<n>*\/ select …`.
 */
const SESSION_MARK = "/*dray-session:";

/** How long `close()` waits for sessions to hand their connections back. */
const CLOSE_GRACE_MS = 1_000;

/**
 * What a session knows about its connection's fate. `lost` is set, once, when
 * the connection's socket closed or a statement on it failed at the connection
 * level; from then on nothing may be sent on it (postgres.js 3.4.x would write
 * to a null socket and throw outside any caller) and it must not be released
 * to the pool (the driver has already taken it back as closed).
 */
export class ConnectionLink {
  lost: string | undefined;
  private listeners = new Set<(reason: string) => void>();

  /** Records the loss (first reason wins) and tells the listeners. */
  markLost(reason: string): void {
    if (this.lost !== undefined) return;
    this.lost = reason;
    for (const listener of this.listeners) listener(reason);
    this.listeners.clear();
  }

  /** Calls `listener` when the connection is lost; returns the unsubscribe function. */
  onLost(listener: (reason: string) => void): () => void {
    if (this.lost !== undefined) {
      listener(this.lost);
      return () => {};
    }
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** One pool generation and its bookkeeping. */
interface Generation {
  id: number;
  sql: postgres.Sql;
  /** Sessions holding a lease on this generation. */
  active: number;
  retired: boolean;
  ended: boolean;
  /** Sessions whose marked statement has not been seen yet, by mark number. */
  awaiting: Map<number, ConnectionLink>;
  /** Sessions by the driver connection they hold. */
  byConnection: Map<number, ConnectionLink>;
}

/** A session's hold on a pool generation; `release()` exactly once. */
export interface PoolLease {
  readonly sql: postgres.Sql;
  readonly link: ConnectionLink;
  /** Prefix for the session's first statement, which ties the session to its driver connection. */
  readonly mark: string;
  /** Stops handing out this generation: later sessions get a fresh pool. */
  retire(reason: string): void;
  release(): void;
}

/**
 * Keeps the connector's postgres.js pool, and replaces it after a connection
 * failure. A pool that saw its connections die can be left in a bad state by
 * postgres.js 3.4.x (a reservation queued while connecting fails stays queued
 * and later swallows a connection; a write buffered when a socket closed stays
 * pending forever, so that connection never starts again); a fresh pool has
 * none of that, and starts without the reconnect backoff of the old one. A
 * retired pool is ended once its last session is done.
 */
export class PoolKeeper {
  private current: Generation | undefined;
  private readonly generations = new Set<Generation>();
  private nextGeneration = 1;
  private nextMark = 1;
  private closed = false;

  constructor(
    private readonly create: (hooks: PoolHooks) => postgres.Sql,
    private readonly logger: Logger,
  ) {}

  /** A lease on the current pool (created on first use or after a retirement). */
  acquire(): PoolLease {
    const generation = this.generation();
    generation.active++;
    const link = new ConnectionLink();
    const mark = this.nextMark++;
    generation.awaiting.set(mark, link);
    let released = false;
    return {
      sql: generation.sql,
      link,
      mark: `${SESSION_MARK}${mark}*/ `,
      retire: (reason) => this.retire(generation, reason),
      release: () => {
        if (released) return;
        released = true;
        generation.awaiting.delete(mark);
        for (const [id, l] of generation.byConnection) if (l === link) generation.byConnection.delete(id);
        generation.active--;
        this.endIfIdle(generation);
      },
    };
  }

  /** The pool new sessions get now. */
  currentPool(): postgres.Sql {
    return this.generation().sql;
  }

  /**
   * Ends every pool. Sessions that are just handing their connection back get
   * a moment to do so (postgres.js would otherwise wait the whole end timeout
   * for a connection released right after `end()`); sessions still running fail.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.current = undefined;
    const until = Date.now() + CLOSE_GRACE_MS;
    while ([...this.generations].some((g) => g.active > 0) && Date.now() < until)
      await new Promise((resolve) => setTimeout(resolve, 5));
    await Promise.all(
      [...this.generations].map((g) => {
        g.ended = true;
        return g.sql.end({ timeout: 5 }).catch(() => {});
      }),
    );
    this.generations.clear();
  }

  /** The current generation, opened when there is none. */
  private generation(): Generation {
    if (!this.current) this.current = this.open();
    return this.current;
  }

  private open(): Generation {
    const generation: Generation = {
      id: this.nextGeneration++,
      sql: undefined as unknown as postgres.Sql,
      active: 0,
      retired: false,
      ended: false,
      awaiting: new Map(),
      byConnection: new Map(),
    };
    generation.sql = this.create({
      onStatement: (connectionId, text) => {
        if (!text.startsWith(SESSION_MARK)) return;
        const end = text.indexOf("*/", SESSION_MARK.length);
        const mark = Number(text.slice(SESSION_MARK.length, end));
        const link = generation.awaiting.get(mark);
        if (!link) return;
        generation.awaiting.delete(mark);
        generation.byConnection.set(connectionId, link);
      },
      onClose: (connectionId) => {
        const link = generation.byConnection.get(connectionId);
        if (!link) return;
        generation.byConnection.delete(connectionId);
        link.markLost("the connection closed");
      },
    });
    this.generations.add(generation);
    return generation;
  }

  private retire(generation: Generation, reason: string): void {
    if (generation.retired) return;
    generation.retired = true;
    if (this.current === generation) this.current = undefined;
    this.logger.warn("replacing the database connection pool after a connection failure", {
      pool: generation.id,
      reason,
    });
    this.endIfIdle(generation);
  }

  private endIfIdle(generation: Generation): void {
    if (!generation.retired || generation.active > 0 || generation.ended) return;
    generation.ended = true;
    this.generations.delete(generation);
    // Nothing of ours runs on it any more: whatever is left (a stuck connection, a stale
    // reservation) is destroyed after a second.
    generation.sql.end({ timeout: 1 }).catch(() => {});
  }

  /** For tests: how many pools are open. */
  get openPools(): number {
    return this.closed ? 0 : this.generations.size;
  }
}
