import { and, eq, sql } from "drizzle-orm";
import type { Db } from "../store/db.js";
import { rowsOf } from "../store/raw-sql.js";
import { executionBatches } from "../store/schema.js";

/** A batch about to be written. */
export interface BatchPlan {
  id: string;
  executionId: string;
  organisationId: string;
  entity: string;
  pass: number;
  seq: number;
  batchId: string;
  cursorFrom: string[] | null;
  cursorTo: string[] | null;
  rows: number;
  bytes: number;
  /** Records to reserve against the monthly limit (0 for back-fill passes). */
  reserve: number;
  /** UTC month of the reservation, `YYYY-MM`. */
  month: string;
}

/** Why a reservation was refused. */
export interface LimitReached {
  used: number;
  reserved: number;
  limit: number;
  needed: number;
}

/**
 * Records the batch as in progress and reserves its records against the
 * organisation's monthly limit, atomically, in one statement. Answers
 * `LimitReached` (and records nothing) when the reservation would cross the
 * limit.
 *
 * The reservation is an upsert of the month's usage row whose update only
 * applies while `records + reserved + reserve <= limit`: the conflicting row
 * is locked and the condition checked on its latest version, so concurrent
 * batches cannot overshoot. A new row is proposed only when `reserve` alone
 * fits the limit. The batch row is inserted only when the reservation took
 * (or when nothing is to be reserved). A refusal re-reads the usage row once,
 * outside that statement, for the figures it reports.
 */
export async function reserveBatch(
  db: Db,
  plan: BatchPlan,
): Promise<{ ok: true } | ({ ok: false } & LimitReached)> {
  if (plan.reserve <= 0) {
    await db.execute(sql`insert into execution_batches (${BATCH_COLUMNS}) select ${batchValues(plan)}`);
    return { ok: true };
  }
  const [outcome] = rowsOf<{ inserted: boolean; limit: number | string | null }>(
    await db.execute(sql`
      with reservation as (
        insert into usage (organisation_id, month, records, reserved, updated_at)
        select o.id, ${plan.month}::text, 0, ${plan.reserve}::bigint, now()
          from organisations o
         where o.id = ${plan.organisationId}::uuid and ${plan.reserve}::bigint <= o.monthly_record_limit
        on conflict (organisation_id, month) do update
          set reserved = usage.reserved + excluded.reserved, updated_at = now()
          where usage.records + usage.reserved + excluded.reserved <=
            (select o.monthly_record_limit from organisations o where o.id = usage.organisation_id)
        returning 1
      ),
      batch as (
        insert into execution_batches (${BATCH_COLUMNS})
        select ${batchValues(plan)} where exists (select 1 from reservation)
        returning 1
      )
      select exists (select 1 from batch) as inserted,
             (select o.monthly_record_limit from organisations o where o.id = ${plan.organisationId}::uuid) as limit`),
  );
  if (outcome?.inserted) return { ok: true };
  const [current] = rowsOf<{ records: number | string; reserved: number | string }>(
    await db.execute(
      sql`select records, reserved from usage where organisation_id = ${plan.organisationId}::uuid and month = ${plan.month}::text`,
    ),
  );
  return {
    ok: false,
    used: Number(current?.records ?? 0),
    reserved: Number(current?.reserved ?? 0),
    limit: Number(outcome?.limit ?? 0),
    needed: plan.reserve,
  };
}

/** The columns `batchValues` fills, in its order. */
const BATCH_COLUMNS = sql.raw(
  "id, execution_id, entity, pass, seq, batch_id, state, cursor_from, cursor_to, rows, bytes, reserved, usage_month, attempts",
);

/** A new in-progress batch row as a select list (typed: it is also used in `insert … select … where`). */
function batchValues(plan: BatchPlan) {
  return sql`${plan.id}::uuid, ${plan.executionId}::uuid, ${plan.entity}::text, ${plan.pass}::int, ${plan.seq}::int,
    ${plan.batchId}::text, 'in_progress', ${jsonb(plan.cursorFrom)}::jsonb, ${jsonb(plan.cursorTo)}::jsonb,
    ${plan.rows}::int, ${plan.bytes}::int, ${plan.reserve}::int, ${plan.month}::text, 0`;
}

/** A jsonb parameter: the JSON text, or SQL null for null (as drizzle writes a null jsonb column). */
function jsonb(value: unknown): string | null {
  return value === null || value === undefined ? null : JSON.stringify(value);
}

/** The outcome of a batch, applied once to batch, entity counters, checkpoint and usage. */
export interface BatchOutcome {
  batchRowId: string;
  executionId: string;
  organisationId: string;
  entity: string;
  state: "succeeded" | "skipped" | "failed" | "cancelled";
  created: number;
  updated: number;
  rejected: number;
  /** Records of a batch given up on (skipped after retries). */
  failedRecords: number;
  attempts: number;
  durationMs: number;
  error?: string | null;
  /** Move the entity's checkpoint to the batch's end (succeeded or skipped batches). */
  advance: boolean;
  /** Add created/updated/skipped to the entity counters (false for back-fill passes). */
  countRecords: boolean;
  /** What a re-read of a resumed batch found and wrote now: recorded in the same transaction. */
  reread?: { cursorTo: string[] | null; rows: number; bytes: number };
}

/**
 * Finalises an in-progress batch in one statement: its state and counts,
 * the entity's counters and checkpoint, and the usage (the reservation is
 * released; committed created+updated records are added). The entity and
 * usage changes apply only when the batch was still in progress. Idempotent:
 * a batch already finalised is left alone and `false` is returned.
 */
export async function finalizeBatch(db: Db, outcome: BatchOutcome): Promise<boolean> {
  const committed = outcome.state === "succeeded" ? outcome.created + outcome.updated : 0;
  const counted = outcome.countRecords;
  const reread = outcome.reread
    ? sql`, cursor_to = ${jsonb(outcome.reread.cursorTo)}::jsonb, rows = ${outcome.reread.rows}::int,
        bytes = ${outcome.reread.bytes}::int`
    : sql``;
  const entityChanges = [
    ...(counted
      ? [
          sql`processed = e.processed + ${outcome.created + outcome.updated + outcome.rejected + outcome.failedRecords}::bigint`,
          sql`created = e.created + ${outcome.created}::bigint`,
          sql`updated = e.updated + ${outcome.updated}::bigint`,
          sql`skipped = e.skipped + ${outcome.rejected}::bigint`,
          sql`failed = e.failed + ${outcome.failedRecords}::bigint`,
        ]
      : []),
    ...(outcome.advance ? [sql`checkpoint = batch.cursor_to`, sql`batches = e.batches + 1`] : []),
  ];
  const entityUpdate =
    entityChanges.length > 0
      ? sql`, entity_update as (
          update execution_entities e set ${sql.join(entityChanges, sql`, `)}
            from batch
           where e.execution_id = ${outcome.executionId}::uuid and e.entity = ${outcome.entity}::text
        )`
      : sql``;
  const [row] = rowsOf<{ applied: boolean }>(
    await db.execute(sql`
      with batch as (
        update execution_batches
           set state = ${outcome.state}::text, created = ${outcome.created}::int, updated = ${outcome.updated}::int,
               rejected = ${outcome.rejected}::int, attempts = ${outcome.attempts}::int,
               duration_ms = ${outcome.durationMs}::int, error = ${outcome.error ?? null}::text,
               finished_at = now()${reread}
         where id = ${outcome.batchRowId}::uuid and state = 'in_progress'
        returning reserved, usage_month, cursor_to
      )${entityUpdate},
      usage_update as (
        insert into usage (organisation_id, month, records, reserved, updated_at)
        select ${outcome.organisationId}::uuid, batch.usage_month, ${counted ? committed : 0}::bigint, 0, now()
          from batch
         where batch.usage_month <> '' and (batch.reserved > 0 or ${committed}::bigint > 0)
        on conflict (organisation_id, month) do update
          set reserved = greatest(0, usage.reserved - (select batch.reserved from batch)),
              records = usage.records + excluded.records,
              updated_at = now()
      )
      select exists (select 1 from batch) as applied`),
  );
  return row?.applied === true;
}

/**
 * Settles an in-progress batch as cancelled without anything written: no
 * records counted, no checkpoint move, its reservation released.
 */
export function cancelBatch(
  db: Db,
  batch: {
    batchRowId: string;
    executionId: string;
    organisationId: string;
    entity: string;
    pass: number;
    attempts?: number;
  },
  reason: string,
): Promise<boolean> {
  return finalizeBatch(db, {
    batchRowId: batch.batchRowId,
    executionId: batch.executionId,
    organisationId: batch.organisationId,
    entity: batch.entity,
    state: "cancelled",
    created: 0,
    updated: 0,
    rejected: 0,
    failedRecords: 0,
    attempts: batch.attempts ?? 0,
    durationMs: 0,
    error: reason,
    advance: false,
    countRecords: batch.pass === 1,
  });
}

/**
 * Settles every batch of an execution still in progress as cancelled (no
 * records counted, reservations released): called when a run ends failed or
 * cancelled, so nothing stays reserved or in progress. Returns how many.
 */
export async function releaseUnfinishedBatches(
  db: Db,
  execution: { executionId: string; organisationId: string },
  reason: string,
): Promise<number> {
  const left = await db
    .select({ id: executionBatches.id, entity: executionBatches.entity, pass: executionBatches.pass })
    .from(executionBatches)
    .where(
      and(eq(executionBatches.executionId, execution.executionId), eq(executionBatches.state, "in_progress")),
    );
  for (const batch of left) {
    await cancelBatch(
      db,
      { ...execution, batchRowId: batch.id, entity: batch.entity, pass: batch.pass },
      reason,
    );
  }
  return left.length;
}
