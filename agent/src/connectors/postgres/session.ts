import { abortReason, type Logger, settleWithin, throwIfAborted } from "@dray/common";
import type postgres from "postgres";
import { drainCopyOut } from "./copy-out-stream.js";
import { connectionLost, isConnectionFailure } from "./error-mapping.js";
import { ConnectionLink, type PoolKeeper, type PoolLease } from "./pool-keeper.js";

/** The server process behind a session, as pg_stat_activity names it. */
export interface Backend {
  pid: number;
  /** `backend_start` as text; guards against cancelling a reused pid. */
  started: string;
}

/** A raw result row: each value as the server's text bytes, `null` for NULL. */
export type RawRow = (Buffer | null)[];

/** One statement with its bound parameters (see {@link textParams}). */
export interface Statement {
  text: string;
  params: readonly unknown[];
  /** Prepare it on the connection (see {@link StatementOptions}). */
  prepared?: boolean;
  /** Turns the statement's error into the one its caller reports (in a pipeline, where it has no caller of its own). */
  mapError?: (error: unknown) => unknown;
}

/** How a statement with parameters is sent. */
export interface StatementOptions {
  /**
   * Prepare it by name on the connection and keep it there. An unprepared
   * statement with parameters costs two round trips (postgres.js describes it
   * before it binds the values) and holds up the statements pipelined behind
   * it; a prepared one costs that once per connection, then one round trip.
   * Only for statements whose text is the same whatever the entity (the
   * ledger's, a read's parameters), so each connection keeps few of them.
   */
  prepared?: boolean;
}

/** What sessions need from the connector. */
export interface SessionPools {
  /** The main pool (the keeper's current one when there is a keeper). */
  sql: postgres.Sql;
  /** Keeps the main pool and replaces it after connection failures; without it `sql` is used as is. */
  keeper?: PoolKeeper;
  /** Sends a cancel for `backend` and resolves once the server has signalled it. */
  cancelBackend(backend: Backend): Promise<void>;
  logger: Logger;
}

type Settleable<T> = PromiseLike<T>;

/**
 * Races `promise` with the signal: rejects with the abort reason (a `cancelled`
 * DrayError) as soon as the signal fires; a late result is handed to `onLate`
 * (e.g. to release it).
 */
export async function abortable<T>(
  promise: Promise<T>,
  signal: AbortSignal,
  onLate: (value: T) => void,
): Promise<T> {
  throwIfAborted(signal);
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(abortReason(signal));
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, aborted]);
  } catch (error) {
    if (signal.aborted) promise.then(onLate, () => {});
    throw error;
  } finally {
    signal.removeEventListener("abort", onAbort!);
  }
}

/**
 * Declares every parameter as `text` (oid 25) and sends its string form.
 * Statements cast each one to the type they need (`$1::bigint`), so values are
 * converted by the server's input functions. Without this, postgres.js would
 * serialise by the inferred type: `"true"` for a boolean becomes `f`, a
 * timestamp string goes through JavaScript's Date, a bytea string is re-hexed.
 */
export function textParams(sql: postgres.Sql, params: readonly unknown[]): never[] {
  return params.map((value) =>
    value === null || value === undefined ? null : sql.typed(String(value), 25),
  ) as never[];
}

/**
 * Every transaction runs READ COMMITTED whatever the database's default: each
 * statement then sees what committed before it, which the commit order of
 * writes in flight relies on (see commit-order.ts).
 */
const BEGIN = "begin isolation level read committed";

const COMMIT: Statement = { text: "commit", params: [] };

const IDENTIFY_SQL =
  "select pg_backend_pid() as pid, backend_start::text as started from pg_catalog.pg_stat_activity where pid = pg_backend_pid()";

/**
 * A session on a connection already identified opens with this instead: reading
 * pg_stat_activity costs the server about a millisecond, once per connection is enough.
 */
const KNOWN_SQL = "select pg_backend_pid() as pid";

/**
 * `backend_start` of the connections already identified, by the pid and secret
 * key the server gave each at its start (the driver's `Query.state`, set as soon
 * as a statement is handed to the connection). The secret is drawn anew for every
 * server process, so a reused pid never matches an old entry.
 */
const identified = new Map<string, string>();

/** Entries kept in {@link identified}: a pool's connections and some that have closed. */
const IDENTIFIED_KEPT = 512;

/** The driver's key of the connection a statement was handed to, if it has one. */
function connectionKey(query: unknown): string | undefined {
  const state = (query as { state?: { pid?: number | null; secret?: number | null } }).state;
  return state?.pid && state.secret != null ? `${state.pid}:${state.secret}` : undefined;
}

/**
 * Identifies the session's backend with its first statements: the cheap
 * {@link KNOWN_SQL}, and {@link IDENTIFY_SQL} right behind it unless the
 * connection was identified before (its answer is then remembered). Resolves,
 * with the rows still to come as `rows`, once both statements are handed to the
 * connection (the driver hands a statement over a microtask after it is
 * started), so that the session's own statements go behind them.
 */
async function identify(conn: postgres.ReservedSql, mark: string): Promise<{ rows: Promise<Backend[]> }> {
  const first = conn.unsafe<{ pid: number }[]>(mark + KNOWN_SQL).execute();
  for (let tick = 0; tick < 4 && connectionKey(first) === undefined; tick++) await null;
  const key = connectionKey(first);
  const started = key === undefined ? undefined : identified.get(key);
  if (started !== undefined)
    return { rows: Promise.resolve(first).then((r) => r.map((row) => ({ pid: row.pid, started }))) };
  Promise.resolve(first).catch(() => {});
  const rows = Promise.resolve(conn.unsafe<Backend[]>(mark + IDENTIFY_SQL).execute());
  if (key !== undefined)
    rows.then(
      (r) => {
        if (r[0]) {
          if (identified.size >= IDENTIFIED_KEPT) identified.delete(identified.keys().next().value!);
          identified.set(key, String(r[0].started));
        }
      },
      () => {},
    );
  return { rows };
}

/**
 * How long a statement may go on after its abort and the server-side cancel:
 * past that the server or the network is gone, and the connection is given up.
 */
export const STUCK_AFTER_CANCEL_MS = 3_000;

/** How long a cancel waits for its session's identifying read to answer. */
const IDENTIFY_WAIT_MS = 2_000;

/**
 * One reserved connection for the span of one connector call. Every statement
 * runs through {@link Session.guard}: when the call's AbortSignal fires, the
 * running statement is cancelled on the server (pg_cancel_backend from a
 * separate control connection) and the session waits until the cancel has been
 * delivered before it issues anything else — so a late cancel can never hit the
 * rollback or the next user of the connection.
 *
 * A connection that is lost (its socket closed, or a statement failed at the
 * connection level) is never written to again nor released to the pool: every
 * later statement of the session fails at once with a retryable `unavailable`,
 * and the pool is replaced for the sessions that follow.
 */
export class Session {
  private cancelling: Promise<void> | undefined;

  /** The backend's pid once identified (for log lines). */
  private pid: number | undefined;

  private constructor(
    private readonly conn: postgres.ReservedSql,
    /** The server process behind the session, once its identifying read has answered. */
    readonly backend: Promise<Backend>,
    readonly signal: AbortSignal,
    private readonly pools: SessionPools,
    private readonly lease: PoolLease,
  ) {
    backend.then(
      (b) => {
        this.pid = b.pid;
      },
      () => {},
    );
  }

  /** The link to the connection's fate. */
  private get link(): ConnectionLink {
    return this.lease.link;
  }

  /**
   * Reserves a connection, runs `fn` with a session on it and releases it. The
   * connection is released only after every statement on it has settled.
   */
  static async run<T>(
    pools: SessionPools,
    signal: AbortSignal,
    fn: (session: Session) => Promise<T>,
  ): Promise<T> {
    const lease = pools.keeper ? pools.keeper.acquire() : fixedLease(pools.sql);
    let conn: postgres.ReservedSql;
    try {
      conn = await abortable(lease.sql.reserve(), signal, (late) => late.release());
    } catch (error) {
      if (isConnectionFailure(error)) lease.retire(String(error));
      lease.release();
      throw error;
    }
    // The identifying read is the session's first statement; the call's own statements follow it in the
    // same round trip instead of waiting for its answer. A cancel waits for it (it is ahead of them all).
    const backend = whileConnected((await identify(conn, lease.mark)).rows, lease.link).then((rows) => {
      const row = rows[0];
      if (!row) throw new Error("could not identify the session's backend process");
      return { pid: Number(row.pid), started: String(row.started) };
    });
    const pending: Promise<unknown> = backend.then(
      () => {},
      () => {},
    );
    try {
      return await fn(new Session(conn, backend, signal, pools, lease));
    } catch (error) {
      if (isConnectionFailure(error)) {
        lease.link.markLost(String(error));
        lease.retire(String(error));
      }
      throw error;
    } finally {
      // A lost connection is already back in the driver's hands (as closed); releasing it
      // would put a dead connection among the open ones.
      const done = () => {
        if (lease.link.lost === undefined) conn.release();
        lease.release();
      };
      if (lease.link.lost !== undefined) done();
      else whileConnected(pending, lease.link).then(done, done);
    }
  }

  /** Runs one statement with bound parameters (see {@link textParams}); rows as objects. */
  query<T extends object = Record<string, unknown>>(
    text: string,
    params: readonly unknown[] = [],
    options: StatementOptions = {},
  ): Promise<T[]> {
    return this.guard(() => this.send(text, params, options) as unknown as Settleable<T[]>);
  }

  /** Runs one statement with bound parameters; rows as arrays of raw text bytes. */
  rawRows(text: string, params: readonly unknown[] = [], options: StatementOptions = {}): Promise<RawRow[]> {
    return this.guard(() => this.send(text, params, options).raw() as unknown as Settleable<RawRow[]>);
  }

  /**
   * Runs `COPY … TO STDOUT` (simple protocol: the statement takes no
   * parameters) and hands each data message to `onData` as it arrives; the
   * server sends one per row. Resolves once the COPY has ended, rejects with
   * its error; either way the connection is left ready for the next statement
   * (see copy-out-stream.ts). An abort cancels the COPY on the server.
   */
  copyOut(copySql: string, onData: (message: Buffer) => void): Promise<void> {
    return this.guard(async () => {
      const stream = await this.conn.unsafe(copySql).readable();
      await drainCopyOut(stream, onData);
    });
  }

  /**
   * Cancels the statement running now on the server, without aborting the
   * session (e.g. a COPY whose remaining rows are not wanted): the statement
   * fails with SQLSTATE 57014, and the session waits until the cancel has been
   * delivered before it issues anything else.
   */
  cancelStatement(reason: string): void {
    this.pools.logger.debug("cancelling the running statement", { reason, pid: this.pid });
    this.startCancel();
  }

  /**
   * Runs `COPY ... FROM STDIN`, sends `data` in chunks and then `verifySql` on
   * the same connection, returning its rows. postgres.js never settles a COPY
   * whose server error arrives after the end of data, so completion is judged
   * by the follow-up statement: it fails (25P02) when the COPY failed. On abort
   * the stream is destroyed, which sends CopyFail.
   */
  async copyIn<T extends object>(copySql: string, data: Uint8Array, verifySql: string, chunkBytes = 1 << 20) {
    const stream = await this.guard(() => this.conn.unsafe(copySql).writable());
    let streamError: unknown;
    stream.on("error", (error) => {
      streamError ??= error;
    });
    const onAbort = () => {
      if (this.link.lost === undefined) stream.destroy(abortReason(this.signal));
    };
    this.signal.addEventListener("abort", onAbort, { once: true });
    try {
      for (let at = 0; at < data.length; at += chunkBytes) {
        this.throwIfLost();
        const chunk = data.subarray(at, Math.min(data.length, at + chunkBytes));
        await whileConnected(
          new Promise<void>((resolve, reject) =>
            stream.write(chunk, (error) => (error ? reject(error) : resolve())),
          ),
          this.link,
        );
      }
      this.throwIfLost();
      throwIfAborted(this.signal);
      // From here on an abort cancels the COPY (or the follow-up) on the server instead.
      this.signal.removeEventListener("abort", onAbort);
      stream.end();
      // Let the writable run its final step (sends CopyDone) before the next statement is queued.
      await new Promise((resolve) => setImmediate(resolve));
    } catch (error) {
      this.noteFailure(streamError ?? error);
      if (!stream.destroyed && this.link.lost === undefined)
        stream.destroy(error instanceof Error ? error : new Error(String(error)));
      throw this.link.lost !== undefined ? connectionLost(this.link.lost) : (streamError ?? error);
    } finally {
      this.signal.removeEventListener("abort", onAbort);
    }
    return this.query<T>(verifySql);
  }

  /**
   * Runs `fn` inside BEGIN … COMMIT. Any failure (including an abort) rolls
   * back before it propagates; COMMIT itself is not cancelled. `setup`, when
   * given, is the transaction's first statement (or statements, in order), sent
   * together with BEGIN (one round trip for all); `fn` gets their rows, in the
   * same order. `finish`, when it returns a statement for `fn`'s result, is
   * that statement sent together with COMMIT (one round trip for both).
   */
  async transaction<T>(
    fn: (setupRows: unknown[][]) => Promise<T>,
    setup?: Statement | readonly Statement[] | null,
    finish?: (result: T) => Statement | null,
  ): Promise<T> {
    const setupRows = await this.begin(setup);
    let result: T;
    let last: Statement | null;
    try {
      result = await fn(setupRows);
      last = finish?.(result) ?? null;
    } catch (error) {
      await this.rollbackQuietly();
      throw error;
    }
    this.throwIfLost();
    try {
      const statements = last === null ? [COMMIT] : [last, COMMIT];
      await whileConnected(Promise.all(this.sendAll(statements)), this.link);
    } catch (error) {
      this.noteFailure(error);
      // A failed last statement aborted the transaction: its COMMIT rolled it back.
      throw error;
    }
    return result;
  }

  /**
   * Sends `statements` in one round trip and returns each one's rows, in order.
   * The first failure rejects (each statement's `mapError` applied); the
   * statements after it fail too, inside a transaction.
   */
  pipeline(statements: readonly Statement[]): Promise<unknown[][]> {
    return this.guard(() => Promise.all(this.sendAll(statements)));
  }

  /** BEGIN, pipelined with `setup` when given (their rows returned); a failed `setup` rolls back. */
  private async begin(setup: Statement | readonly Statement[] | null | undefined): Promise<unknown[][]> {
    const statements = setup ? ("text" in setup ? [setup] : setup) : [];
    if (statements.length === 0) {
      await this.query(BEGIN);
      return [];
    }
    throwIfAborted(this.signal);
    try {
      const [, ...rows] = await this.guard(() =>
        Promise.all(this.sendAll([{ text: BEGIN, params: [] }, ...statements])),
      );
      return rows as unknown[][];
    } catch (error) {
      await this.rollbackQuietly();
      throw error;
    }
  }

  /** Starts the statements of a pipeline in order; each one's rows, or its error as its `mapError` says. */
  private sendAll(statements: readonly Statement[]): Promise<unknown[]>[] {
    const started = inOrder(statements.map((s) => this.send(s.text, s.params, s)));
    return started.map((rows, i) => {
      const { mapError } = statements[i]!;
      return mapError
        ? rows.catch((error: unknown) => {
            throw mapError(error);
          })
        : rows;
    });
  }

  /** Runs one statement; returns the row count the server reported (e.g. rows deleted). */
  async execute(
    text: string,
    params: readonly unknown[] = [],
    options: StatementOptions = {},
  ): Promise<number> {
    const result = await this.guard(
      () => this.send(text, params, options) as unknown as Settleable<{ count: number | null }>,
    );
    return Number(result.count ?? 0);
  }

  /** The driver's query for one statement (started once awaited). */
  private send(text: string, params: readonly unknown[], options: StatementOptions) {
    return this.conn.unsafe(text, textParams(this.conn, params), { prepare: options.prepared === true });
  }

  /** Runs a simple-protocol statement that must not be cancelled (savepoint bookkeeping). */
  async control(text: string): Promise<void> {
    this.throwIfLost();
    try {
      await whileConnected(Promise.resolve(this.conn.unsafe(text)), this.link);
    } catch (error) {
      this.noteFailure(error);
      throw error;
    }
  }

  private async rollbackQuietly(): Promise<void> {
    if (this.cancelling) await this.cancelling;
    // On a lost connection there is nothing to roll back: the server ends the transaction itself.
    if (this.link.lost !== undefined) return;
    try {
      await whileConnected(Promise.resolve(this.conn.unsafe("rollback")), this.link);
    } catch (error) {
      this.noteFailure(error);
      this.pools.logger.warn("rollback failed", { error: String(error), pid: this.pid });
    }
  }

  /** Throws the retryable `unavailable` error when the connection is lost. */
  private throwIfLost(): void {
    if (this.link.lost !== undefined) throw connectionLost(this.link.lost);
  }

  /** Marks the connection lost (and the pool for replacement) when `error` is a connection failure. */
  private noteFailure(error: unknown): void {
    if (!isConnectionFailure(error)) return;
    this.link.markLost(String(error));
    this.lease.retire(String(error));
  }

  /**
   * Starts the statement made by `start` unless the signal has fired, cancels
   * it on the server if the signal fires while it runs, and waits for any cancel
   * to be delivered before settling.
   */
  private async guard<T>(start: () => Settleable<T>): Promise<T> {
    throwIfAborted(this.signal);
    this.throwIfLost();
    let giveUp: NodeJS.Timeout | undefined;
    let stuck: ((error: unknown) => void) | undefined;
    let settled = false;
    const onAbort = () => {
      this.startCancel();
      // A statement that neither ends nor fails after its cancel has a dead server or network
      // behind it: give the connection up rather than let the call outlive it.
      void this.cancelling?.then(() => {
        if (settled) return;
        giveUp = setTimeout(() => {
          this.link.markLost("a statement did not stop after it was cancelled");
          this.lease.retire("a statement did not stop after it was cancelled");
          stuck?.(abortReason(this.signal));
        }, STUCK_AFTER_CANCEL_MS);
      });
    };
    this.signal.addEventListener("abort", onAbort, { once: true });
    try {
      const running = Promise.resolve(start());
      const gaveUp = new Promise<never>((_, reject) => {
        stuck = reject;
      });
      return await Promise.race([whileConnected(running, this.link), gaveUp]);
    } catch (error) {
      this.noteFailure(error);
      throw error;
    } finally {
      settled = true;
      clearTimeout(giveUp);
      stuck = undefined;
      this.signal.removeEventListener("abort", onAbort);
      if (this.cancelling) {
        await this.cancelling;
        // A cancel of one statement (cancelStatement) is over; an abort's stays for the rollback.
        if (!this.signal.aborted) this.cancelling = undefined;
      }
    }
  }

  /**
   * Cancels the running statement from a separate connection, once until it
   * has been delivered. The session's identifying read runs ahead of every
   * other statement, so its answer comes first; a connection that does not
   * give it within {@link IDENTIFY_WAIT_MS} is given up.
   */
  private startCancel(): void {
    this.cancelling ??= settleWithin([this.backend], IDENTIFY_WAIT_MS)
      .then(async (timedOut) => {
        if (timedOut) {
          this.link.markLost("the connection did not identify its server process");
          this.lease.retire("the connection did not identify its server process");
          return;
        }
        await this.pools.cancelBackend(await this.backend);
      })
      .catch((error) => {
        this.pools.logger.warn("cancel failed", { error: String(error), pid: this.pid });
      });
  }
}

/**
 * Starts the driver's queries in the order given (postgres.js starts a query
 * only once it is awaited, so awaiting them together could send them in
 * another order) and returns them as promises of their rows.
 */
function inOrder(queries: readonly { execute(): unknown }[]): Promise<unknown[]>[] {
  for (const query of queries) query.execute();
  return queries.map((query) => Promise.resolve(query as unknown as Promise<unknown[]>));
}

/**
 * Settles like `promise`, or rejects with a retryable `unavailable` as soon as
 * the connection is lost: a statement on a connection whose socket closed may
 * never settle in postgres.js 3.4.x.
 */
export function whileConnected<T>(promise: Promise<T>, link: ConnectionLink): Promise<T> {
  let unsubscribe = () => {};
  const lost = new Promise<never>((_, reject) => {
    unsubscribe = link.onLost((reason) => reject(connectionLost(reason)));
  });
  lost.catch(() => {});
  return Promise.race([promise, lost]).finally(() => unsubscribe());
}

/** A lease on a pool that is never replaced (no keeper): losses are still detected from errors. */
function fixedLease(sql: postgres.Sql): PoolLease {
  return { sql, link: new ConnectionLink(), mark: "", retire: () => {}, release: () => {} };
}
