import { DrayError } from "@dray/common";
import { LEDGER_SCHEMA } from "./identifiers.js";
import type { Session } from "./session.js";

/** The ledger table, schema-qualified. */
export const LEDGER_TABLE = `${LEDGER_SCHEMA}.batch_ledger`;

/** Advisory lock key serialising ledger creation across agents ("DRAY" in ASCII). */
export const LEDGER_LOCK_KEY = 0x44524159;

/** Longest batch id accepted (characters). */
export const MAX_BATCH_ID_LENGTH = 200;

/**
 * Creates the ledger schema and table when missing. Safe when several agents
 * race: the transaction-scoped advisory lock lets one create while the others
 * wait, then find everything in place.
 */
export async function createLedger(session: Session): Promise<void> {
  // Checked first: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema exists.
  const [found] = await session.query<{ present: boolean }>(
    `select pg_catalog.to_regclass('${LEDGER_TABLE}') is not null as present`,
  );
  if (found?.present) return;
  await session.transaction(async () => {
    await session.query("select pg_catalog.pg_advisory_xact_lock($1::int8)", [LEDGER_LOCK_KEY]);
    await session.query(`create schema if not exists ${LEDGER_SCHEMA}`);
    await session.query(`create table if not exists ${LEDGER_TABLE} (
      batch_id text primary key,
      entity text not null,
      row_count int not null,
      created int not null,
      updated int not null,
      rejected int not null,
      committed_at timestamptz not null default now())`);
  });
}

/**
 * Checks a batch id: a non-empty string of at most {@link MAX_BATCH_ID_LENGTH} characters without NUL.
 *
 * @throws DrayError `invalid_argument`
 */
export function validateBatchId(batchId: unknown): string {
  if (
    typeof batchId !== "string" ||
    batchId.length === 0 ||
    batchId.length > MAX_BATCH_ID_LENGTH ||
    batchId.includes("\0")
  )
    throw new DrayError(
      "invalid_argument",
      `batchId must be 1-${MAX_BATCH_ID_LENGTH} characters without NUL`,
    );
  return batchId;
}

/**
 * Inserts the batch's ledger row as the first write of the transaction.
 * Returns null when this transaction claimed the batch, or the counts (and row
 * count) recorded when it first committed if the id is already there. A concurrent writer of
 * the same id blocks on the primary key until this transaction ends, then sees
 * the committed row (or takes over after a rollback).
 */
export async function claimBatch(
  session: Session,
  batchId: string,
  entity: string,
  rowCount: number,
): Promise<(BatchCounts & { rowCount: number }) | null> {
  const claimed = await session.query(
    `insert into ${LEDGER_TABLE} (batch_id, entity, row_count, created, updated, rejected)
     values ($1::text, $2::text, $3::int4, 0, 0, 0) on conflict (batch_id) do nothing returning batch_id`,
    [batchId, entity, rowCount],
  );
  if (claimed.length === 1) return null;
  const [recorded] = await session.query<BatchCounts & { row_count: number }>(
    `select created, updated, rejected, row_count from ${LEDGER_TABLE} where batch_id = $1::text`,
    [batchId],
  );
  if (!recorded) throw new DrayError("internal", `ledger row of batch ${batchId} vanished`);
  return {
    created: Number(recorded.created),
    updated: Number(recorded.updated),
    rejected: Number(recorded.rejected),
    rowCount: Number(recorded.row_count),
  };
}

/** Counts of a written batch. */
export interface BatchCounts {
  created: number;
  updated: number;
  rejected: number;
}

/** Records the outcome in the batch's ledger row (same transaction as the rows). */
export async function recordBatch(session: Session, batchId: string, counts: BatchCounts): Promise<void> {
  await session.query(
    `update ${LEDGER_TABLE} set created = $2::int4, updated = $3::int4, rejected = $4::int4 where batch_id = $1::text`,
    [batchId, counts.created, counts.updated, counts.rejected],
  );
}
