import { and, eq, sql } from "drizzle-orm";
import type { Db } from "../store/db.js";
import { executionBatches, executionEntities, organisations, usage } from "../store/schema.js";

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
 * organisation's monthly limit, atomically. Answers `LimitReached` (and
 * records nothing) when the reservation would cross the limit.
 */
export async function reserveBatch(
  db: Db,
  plan: BatchPlan,
): Promise<{ ok: true } | ({ ok: false } & LimitReached)> {
  return db.transaction(async (tx) => {
    if (plan.reserve > 0) {
      const [org] = await tx
        .select({ limit: organisations.monthlyRecordLimit })
        .from(organisations)
        .where(eq(organisations.id, plan.organisationId));
      const limit = org?.limit ?? 0;
      await tx
        .insert(usage)
        .values({ organisationId: plan.organisationId, month: plan.month })
        .onConflictDoNothing();
      const [reserved] = await tx
        .update(usage)
        .set({ reserved: sql`${usage.reserved} + ${plan.reserve}`, updatedAt: sql`now()` })
        .where(
          and(
            eq(usage.organisationId, plan.organisationId),
            eq(usage.month, plan.month),
            sql`${usage.records} + ${usage.reserved} + ${plan.reserve} <= ${limit}`,
          ),
        )
        .returning({ records: usage.records });
      if (!reserved) {
        const [current] = await tx
          .select({ records: usage.records, reserved: usage.reserved })
          .from(usage)
          .where(and(eq(usage.organisationId, plan.organisationId), eq(usage.month, plan.month)));
        return {
          ok: false as const,
          used: current?.records ?? 0,
          reserved: current?.reserved ?? 0,
          limit,
          needed: plan.reserve,
        };
      }
    }
    await tx.insert(executionBatches).values({
      id: plan.id,
      executionId: plan.executionId,
      entity: plan.entity,
      pass: plan.pass,
      seq: plan.seq,
      batchId: plan.batchId,
      state: "in_progress",
      cursorFrom: plan.cursorFrom,
      cursorTo: plan.cursorTo,
      rows: plan.rows,
      bytes: plan.bytes,
      reserved: plan.reserve,
      usageMonth: plan.month,
      attempts: 0,
    });
    return { ok: true as const };
  });
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
 * Finalises an in-progress batch in one transaction: its state and counts,
 * the entity's counters and checkpoint, and the usage (the reservation is
 * released; committed created+updated records are added). Idempotent: a batch
 * already finalised is left alone and `false` is returned.
 */
export async function finalizeBatch(db: Db, outcome: BatchOutcome): Promise<boolean> {
  return db.transaction(async (tx) => {
    const [batch] = await tx
      .update(executionBatches)
      .set({
        state: outcome.state,
        created: outcome.created,
        updated: outcome.updated,
        rejected: outcome.rejected,
        attempts: outcome.attempts,
        durationMs: outcome.durationMs,
        error: outcome.error ?? null,
        finishedAt: sql`now()`,
        ...(outcome.reread ?? {}),
      })
      .where(and(eq(executionBatches.id, outcome.batchRowId), eq(executionBatches.state, "in_progress")))
      .returning({
        rows: executionBatches.rows,
        reserved: executionBatches.reserved,
        month: executionBatches.usageMonth,
        cursorTo: executionBatches.cursorTo,
      });
    if (!batch) return false;
    const committed = outcome.state === "succeeded" ? outcome.created + outcome.updated : 0;
    const counted = outcome.countRecords;
    const entityChanges = {
      ...(counted
        ? {
            processed: sql`${executionEntities.processed} + ${outcome.created + outcome.updated + outcome.rejected + outcome.failedRecords}`,
            created: sql`${executionEntities.created} + ${outcome.created}`,
            updated: sql`${executionEntities.updated} + ${outcome.updated}`,
            skipped: sql`${executionEntities.skipped} + ${outcome.rejected}`,
            failed: sql`${executionEntities.failed} + ${outcome.failedRecords}`,
          }
        : {}),
      ...(outcome.advance
        ? { checkpoint: batch.cursorTo, batches: sql`${executionEntities.batches} + 1` }
        : {}),
    };
    if (Object.keys(entityChanges).length > 0) {
      await tx
        .update(executionEntities)
        .set(entityChanges)
        .where(
          and(
            eq(executionEntities.executionId, outcome.executionId),
            eq(executionEntities.entity, outcome.entity),
          ),
        );
    }
    if (batch.month && (batch.reserved > 0 || committed > 0)) {
      await tx
        .insert(usage)
        .values({ organisationId: outcome.organisationId, month: batch.month })
        .onConflictDoNothing();
      await tx
        .update(usage)
        .set({
          reserved: sql`greatest(0, ${usage.reserved} - ${batch.reserved})`,
          records: sql`${usage.records} + ${counted ? committed : 0}`,
          updatedAt: sql`now()`,
        })
        .where(and(eq(usage.organisationId, outcome.organisationId), eq(usage.month, batch.month)));
    }
    return true;
  });
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
