import { abortReason, type Logger, throwIfAborted } from "@dray/common";
import type postgres from "postgres";
import { drainCopyOut } from "./copy-out-stream.js";

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
}

/** What sessions need from the connector. */
export interface SessionPools {
  /** The main pool. */
  sql: postgres.Sql;
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

const IDENTIFY_SQL =
  "select pg_backend_pid() as pid, backend_start::text as started from pg_catalog.pg_stat_activity where pid = pg_backend_pid()";

/**
 * One reserved connection for the span of one connector call. Every statement
 * runs through {@link Session.guard}: when the call's AbortSignal fires, the
 * running statement is cancelled on the server (pg_cancel_backend from a
 * separate control connection) and the session waits until the cancel has been
 * delivered before it issues anything else — so a late cancel can never hit the
 * rollback or the next user of the connection.
 */
export class Session {
  private cancelling: Promise<void> | undefined;

  private constructor(
    private readonly conn: postgres.ReservedSql,
    readonly backend: Backend,
    readonly signal: AbortSignal,
    private readonly pools: SessionPools,
  ) {}

  /**
   * Reserves a connection, runs `fn` with a session on it and releases it. The
   * connection is released only after every statement on it has settled.
   */
  static async run<T>(
    pools: SessionPools,
    signal: AbortSignal,
    fn: (session: Session) => Promise<T>,
  ): Promise<T> {
    const conn = await abortable(pools.sql.reserve(), signal, (late) => late.release());
    let pending: Promise<unknown> = Promise.resolve();
    try {
      const identify = conn.unsafe<Backend[]>(IDENTIFY_SQL);
      pending = identify.then(
        () => {},
        () => {},
      );
      // Identifying is one short catalog read; on abort it is left to finish rather than cancelled.
      const rows = await abortable(Promise.resolve(identify), signal, () => {});
      const row = rows[0];
      if (!row) throw new Error("could not identify the session's backend process");
      const session = new Session(
        conn,
        { pid: Number(row.pid), started: String(row.started) },
        signal,
        pools,
      );
      return await fn(session);
    } finally {
      pending.then(() => conn.release());
    }
  }

  /** Runs one statement with bound parameters (see {@link textParams}); rows as objects. */
  query<T extends object = Record<string, unknown>>(
    text: string,
    params: readonly unknown[] = [],
  ): Promise<T[]> {
    return this.guard(
      () => this.conn.unsafe(text, textParams(this.conn, params)) as unknown as Settleable<T[]>,
    );
  }

  /** Runs one statement with bound parameters; rows as arrays of raw text bytes. */
  rawRows(text: string, params: readonly unknown[] = []): Promise<RawRow[]> {
    return this.guard(
      () => this.conn.unsafe(text, textParams(this.conn, params)).raw() as unknown as Settleable<RawRow[]>,
    );
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
    this.pools.logger.debug("cancelling the running statement", { reason, pid: this.backend.pid });
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
    const onAbort = () => stream.destroy(abortReason(this.signal));
    this.signal.addEventListener("abort", onAbort, { once: true });
    try {
      for (let at = 0; at < data.length; at += chunkBytes) {
        const chunk = data.subarray(at, Math.min(data.length, at + chunkBytes));
        await new Promise<void>((resolve, reject) =>
          stream.write(chunk, (error) => (error ? reject(error) : resolve())),
        );
      }
      throwIfAborted(this.signal);
      // From here on an abort cancels the COPY (or the follow-up) on the server instead.
      this.signal.removeEventListener("abort", onAbort);
      stream.end();
      // Let the writable run its final step (sends CopyDone) before the next statement is queued.
      await new Promise((resolve) => setImmediate(resolve));
    } catch (error) {
      if (!stream.destroyed) stream.destroy(error instanceof Error ? error : new Error(String(error)));
      throw streamError ?? error;
    } finally {
      this.signal.removeEventListener("abort", onAbort);
    }
    return this.query<T>(verifySql);
  }

  /**
   * Runs `fn` inside BEGIN … COMMIT. Any failure (including an abort) rolls
   * back before it propagates; COMMIT itself is not cancelled. `setup`, when
   * given, is the transaction's first statement, sent together with BEGIN (one
   * round trip for both).
   */
  async transaction<T>(fn: () => Promise<T>, setup?: Statement | null): Promise<T> {
    await this.begin(setup);
    let result: T;
    try {
      result = await fn();
    } catch (error) {
      await this.rollbackQuietly();
      throw error;
    }
    await this.conn.unsafe("commit");
    return result;
  }

  /** BEGIN, pipelined with `setup` when given; a failed `setup` rolls back. */
  private async begin(setup: Statement | null | undefined): Promise<void> {
    if (!setup) {
      await this.query(BEGIN);
      return;
    }
    throwIfAborted(this.signal);
    try {
      await this.guard(() =>
        Promise.all([
          this.conn.unsafe(BEGIN),
          this.conn.unsafe(setup.text, textParams(this.conn, setup.params)),
        ]),
      );
    } catch (error) {
      await this.rollbackQuietly();
      throw error;
    }
  }

  /** Runs one statement; returns the row count the server reported (e.g. rows deleted). */
  async execute(text: string, params: readonly unknown[] = []): Promise<number> {
    const result = await this.guard(
      () =>
        this.conn.unsafe(text, textParams(this.conn, params)) as unknown as Settleable<{
          count: number | null;
        }>,
    );
    return Number(result.count ?? 0);
  }

  /** Runs a simple-protocol statement that must not be cancelled (savepoint bookkeeping). */
  async control(text: string): Promise<void> {
    await this.conn.unsafe(text);
  }

  private async rollbackQuietly(): Promise<void> {
    if (this.cancelling) await this.cancelling;
    try {
      await this.conn.unsafe("rollback");
    } catch (error) {
      this.pools.logger.warn("rollback failed", { error: String(error), pid: this.backend.pid });
    }
  }

  /**
   * Starts the statement made by `start` unless the signal has fired, cancels
   * it on the server if the signal fires while it runs, and waits for any cancel
   * to be delivered before settling.
   */
  private async guard<T>(start: () => Settleable<T>): Promise<T> {
    throwIfAborted(this.signal);
    const onAbort = () => this.startCancel();
    this.signal.addEventListener("abort", onAbort, { once: true });
    try {
      return await start();
    } finally {
      this.signal.removeEventListener("abort", onAbort);
      if (this.cancelling) {
        await this.cancelling;
        // A cancel of one statement (cancelStatement) is over; an abort's stays for the rollback.
        if (!this.signal.aborted) this.cancelling = undefined;
      }
    }
  }

  /** Cancels the running statement from a separate connection, once until it has been delivered. */
  private startCancel(): void {
    this.cancelling ??= this.pools.cancelBackend(this.backend).catch((error) => {
      this.pools.logger.warn("cancel failed", { error: String(error), pid: this.backend.pid });
    });
  }
}
