import { DrayError } from "@dray/common";
import { sqlStateOf } from "./error-mapping.js";
import { LEDGER_SCHEMA } from "./identifiers.js";
import type { Session, Statement } from "./session.js";

/** The ledger table, schema-qualified. */
export const LEDGER_TABLE = `${LEDGER_SCHEMA}.batch_ledger`;

/** Advisory lock key serialising ledger creation across agents ("DRAY" in ASCII). */
export const LEDGER_LOCK_KEY = 0x44524159;

/** Longest batch id accepted (characters). */
export const MAX_BATCH_ID_LENGTH = 200;

/** Whether the ledger table exists, and whether it has the `position` column (added for continuous pipelines). */
const LEDGER_STATE_SQL = `select pg_catalog.to_regclass('${LEDGER_TABLE}') is not null as present,
  exists (select 1 from pg_catalog.pg_attribute
    where attrelid = pg_catalog.to_regclass('${LEDGER_TABLE}') and attname = 'position' and not attisdropped) as has_position`;

/**
 * Creates the ledger schema and table when missing, and adds the `position`
 * column (jsonb: the text values of a continuous batch's position, NULL for
 * other batches) to a ledger created before it existed. Safe when several
 * agents race: the transaction-scoped advisory lock lets one create while the
 * others wait, then find everything in place.
 *
 * A ledger the agent's user may not alter (it belongs to another role) is left
 * without the column: writes without a position go on, and a write with one
 * fails with `failed_precondition` ({@link claimBatch}).
 */
export async function createLedger(session: Session): Promise<void> {
  // Checked first: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema exists.
  const [found] = await session.query<{ present: boolean; has_position: boolean }>(LEDGER_STATE_SQL);
  if (found?.present && found.has_position) return;
  try {
    await session.transaction(async () => {
      await session.query("select pg_catalog.pg_advisory_xact_lock($1::int8)", [LEDGER_LOCK_KEY]);
      if (!found?.present) {
        await session.query(`create schema if not exists ${LEDGER_SCHEMA}`);
        await session.query(`create table if not exists ${LEDGER_TABLE} (
          batch_id text primary key,
          entity text not null,
          row_count int not null,
          created int not null,
          updated int not null,
          rejected int not null,
          committed_at timestamptz not null default now(),
          position jsonb)`);
      }
      await session.query(`alter table ${LEDGER_TABLE} add column if not exists position jsonb`);
    });
  } catch (error) {
    if (!found?.present || sqlStateOf(error) !== INSUFFICIENT_PRIVILEGE) throw error;
  }
}

/** SQLSTATE of a statement the user may not run. */
const INSUFFICIENT_PRIVILEGE = "42501";

/** SQLSTATE of an unknown column. */
const UNDEFINED_COLUMN = "42703";

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
 * The statement inserting the batch's ledger row, the first write of the
 * batch's transaction, with the batch's `position` when it has one
 * (continuous pipelines: committed together with the rows). It returns a row
 * when this transaction claimed the batch and none when the id is already
 * there; {@link claimOutcome} reads its answer. A concurrent writer of the same
 * id blocks on the primary key until this transaction ends, then sees the
 * committed row (or takes over after a rollback). Prepared, and sent with the
 * transaction's BEGIN.
 *
 * Its error, for a position when the ledger has no `position` column (its user
 * may not add it, see {@link createLedger}), is DrayError `failed_precondition`.
 */
export function claimStatement(
  batchId: string,
  entity: string,
  rowCount: number,
  position?: readonly string[],
): Statement {
  if (position === undefined)
    return {
      text: `insert into ${LEDGER_TABLE} (batch_id, entity, row_count, created, updated, rejected)
           values ($1::text, $2::text, $3::int4, 0, 0, 0) on conflict (batch_id) do nothing returning batch_id`,
      params: [batchId, entity, rowCount],
      prepared: true,
    };
  return {
    text: `insert into ${LEDGER_TABLE} (batch_id, entity, row_count, created, updated, rejected, position)
             values ($1::text, $2::text, $3::int4, 0, 0, 0, $4::text::jsonb) on conflict (batch_id) do nothing returning batch_id`,
    params: [batchId, entity, rowCount, JSON.stringify(position)],
    prepared: true,
    mapError: (error) => {
      if (sqlStateOf(error) !== UNDEFINED_COLUMN) return error;
      return new DrayError(
        "failed_precondition",
        `the ledger ${LEDGER_TABLE} has no position column and this agent's database user may not add it: ` +
          `run ALTER TABLE ${LEDGER_TABLE} ADD COLUMN position jsonb as its owner`,
        { retryable: false, cause: error },
      );
    },
  };
}

/**
 * What the claim ({@link claimStatement}) answered: null when this
 * transaction claimed the batch, or the counts (and row count) recorded when
 * it first committed if the id was already there.
 */
export async function claimOutcome(
  session: Session,
  claimedRows: readonly unknown[],
  batchId: string,
): Promise<(BatchCounts & { rowCount: number }) | null> {
  if (claimedRows.length === 1) return null;
  const [recorded] = await session.query<BatchCounts & { row_count: number }>(
    `select created, updated, rejected, row_count from ${LEDGER_TABLE} where batch_id = $1::text`,
    [batchId],
    { prepared: true },
  );
  if (!recorded) throw new DrayError("internal", `ledger row of batch ${batchId} vanished`);
  return {
    created: Number(recorded.created),
    updated: Number(recorded.updated),
    rejected: Number(recorded.rejected),
    rowCount: Number(recorded.row_count),
  };
}

/**
 * Checks a batch position: absent, or a list of at most {@link MAX_POSITION_VALUES}
 * strings without NUL.
 *
 * @throws DrayError `invalid_argument`
 */
export function validatePosition(position: unknown): void {
  if (position === undefined) return;
  if (
    !Array.isArray(position) ||
    position.length > MAX_POSITION_VALUES ||
    position.some((v) => typeof v !== "string" || v.includes("\0"))
  )
    throw new DrayError(
      "invalid_argument",
      `position must be a list of at most ${MAX_POSITION_VALUES} key values (strings without NUL)`,
    );
}

/** Most values a batch position may hold (cursor plus row key fields). */
export const MAX_POSITION_VALUES = 64;

/** Counts of a written batch. */
export interface BatchCounts {
  created: number;
  updated: number;
  rejected: number;
}

/** The statement recording the outcome in the batch's ledger row (same transaction as the rows; sent with COMMIT). */
export function recordStatement(batchId: string, counts: BatchCounts): Statement {
  return {
    text: `update ${LEDGER_TABLE} set created = $2::int4, updated = $3::int4, rejected = $4::int4 where batch_id = $1::text`,
    params: [batchId, counts.created, counts.updated, counts.rejected],
    prepared: true,
  };
}
