/**
 * Exported snapshots, for consistent reads of tables without a row key and for
 * a run that reads every entity as of one moment (ExportSnapshotTask): each
 * one is a REPEATABLE READ transaction held open on a connection of its own
 * (never one of the session pool, whose connections serve one call at a time),
 * so that every later read can import its snapshot (`SET TRANSACTION SNAPSHOT`)
 * and see the table exactly as it was at the first read.
 *
 * A snapshot is let go when its read reaches the table's end, after
 * {@link SNAPSHOT_IDLE_MS} without a read, when its connection closes, or when
 * the connector closes. Holding one keeps the server from vacuuming rows that
 * died after it was taken, like any long transaction (pg_dump does the same).
 */
import { DrayError, type Logger } from "@dray/common";
import type postgres from "postgres";
import type { EntityName } from "../../connector.js";
import { createPool } from "./connection-options.js";
import { displayName } from "./identifiers.js";
import { abortable, textParams } from "./session.js";

/** How long a held snapshot may go without a read before it is let go: 15 minutes. */
export const SNAPSHOT_IDLE_MS = 15 * 60_000;

/** A snapshot just exported, and the table's size in it. */
export interface ExportedSnapshot {
  /** What `pg_export_snapshot()` returned, e.g. `00000003-0000001B-1`. */
  snapshotId: string;
  /**
   * Blocks of the table when the snapshot was taken: every row it sees lies before this one
   * (0 for a snapshot of the whole database).
   */
  totalBlocks: number;
}

/** Options of {@link SnapshotHolder}. */
export interface SnapshotHolderOptions {
  /** The source database, as the connector's pool connects to it. */
  url: string;
  logger: Logger;
  /** @default SNAPSHOT_IDLE_MS */
  idleMs?: number;
}

/**
 * Exports the snapshot and measures the table in the same statement, right
 * after the snapshot was taken: a row the snapshot sees was committed before
 * it, in a block that already existed.
 */
const EXPORT_SQL = `
select pg_catalog.pg_export_snapshot() as id,
  (pg_catalog.pg_relation_size(c.oid) / pg_catalog.current_setting('block_size')::int8)::text as blocks
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where n.nspname = $1::text and c.relname = $2::text`;

/** Exports a snapshot of the whole database (a run's reads). */
const EXPORT_DATABASE_SQL = "select pg_catalog.pg_export_snapshot() as id, '0' as blocks";

interface Held {
  pool: postgres.Sql;
  conn: postgres.ReservedSql;
  timer: NodeJS.Timeout | undefined;
}

/** The snapshots held by one connector, by id. */
export class SnapshotHolder {
  private readonly held = new Map<string, Held>();
  private closed = false;

  constructor(private readonly options: SnapshotHolderOptions) {}

  /** Ids of the snapshots held now. */
  get heldIds(): string[] {
    return [...this.held.keys()];
  }

  /**
   * Opens a connection, begins `REPEATABLE READ READ ONLY`, exports its
   * snapshot and holds the transaction open. The connection's own
   * `idle_in_transaction_session_timeout` is turned off: the holder's idle
   * limit ends it instead (and the server ends it when the agent's connection
   * goes away).
   *
   * Without `entity`, the snapshot is the whole database's (`totalBlocks` 0).
   *
   * @throws DrayError `not_found` when the table is gone.
   */
  async export(entity: EntityName | null, signal: AbortSignal): Promise<ExportedSnapshot> {
    if (this.closed) throw new DrayError("failed_precondition", "the Postgres connector is closed");
    let id: string | undefined;
    const pool = createPool({
      url: this.options.url,
      max: 1,
      logger: this.options.logger,
      onClose: () => {
        if (id !== undefined) void this.release(id, "its connection closed");
      },
    });
    const work = (async () => {
      const conn = await pool.reserve();
      await conn.unsafe("set idle_in_transaction_session_timeout = 0");
      await conn.unsafe("begin isolation level repeatable read read only");
      const rows = entity
        ? await conn.unsafe<{ id: string; blocks: string }[]>(
            EXPORT_SQL,
            textParams(conn, [entity.schema, entity.name]),
          )
        : await conn.unsafe<{ id: string; blocks: string }[]>(EXPORT_DATABASE_SQL);
      return { conn, row: rows[0] };
    })();
    let exported: Awaited<typeof work>;
    try {
      exported = await abortable(work, signal, ({ conn }) => {
        conn.release();
        void pool.end({ timeout: 1 });
      });
    } catch (error) {
      if (!signal.aborted) void pool.end({ timeout: 1 });
      throw error;
    }
    const { conn, row } = exported;
    if (!row || this.closed) {
      conn.release();
      await pool.end({ timeout: 1 });
      if (this.closed) throw new DrayError("failed_precondition", "the Postgres connector is closed");
      throw new DrayError("not_found", `entity ${entity ? displayName(entity) : "?"} was not found`);
    }
    id = row.id;
    this.held.set(id, { pool, conn, timer: undefined });
    this.touch(id);
    this.options.logger.debug(
      entity ? "holding a snapshot for a read without a row key" : "holding a snapshot for a run's reads",
      { ...(entity ? { entity: displayName(entity) } : {}), snapshot: id },
    );
    return { snapshotId: id, totalBlocks: Number(row.blocks) };
  }

  /** True when the snapshot `id` is held here. */
  holds(id: string): boolean {
    return this.held.has(id);
  }

  /** Restarts the idle clock of a snapshot held here; one held elsewhere (or gone) is left alone. */
  touch(id: string): void {
    const held = this.held.get(id);
    if (!held) return;
    clearTimeout(held.timer);
    held.timer = setTimeout(() => {
      void this.release(id, `no read for ${Math.round((this.options.idleMs ?? SNAPSHOT_IDLE_MS) / 1000)} s`);
    }, this.options.idleMs ?? SNAPSHOT_IDLE_MS);
    held.timer.unref();
  }

  /** Lets a held snapshot go (its transaction ends with its connection); unknown ids are ignored. */
  async release(id: string, reason: string): Promise<void> {
    const held = this.held.get(id);
    if (!held) return;
    this.held.delete(id);
    clearTimeout(held.timer);
    this.options.logger.debug("letting a snapshot go", { snapshot: id, reason });
    held.conn.release();
    await held.pool.end({ timeout: 1 }).catch(() => {});
  }

  /** Lets every snapshot go; later exports are refused. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.heldIds.map((id) => this.release(id, "the connector closed")));
  }
}
