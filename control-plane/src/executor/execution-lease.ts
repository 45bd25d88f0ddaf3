import { and, asc, eq, inArray, isNotNull, lt, or, sql } from "drizzle-orm";
import type { Db } from "../store/db.js";
import { executionEntities, executions } from "../store/schema.js";

/** A claimed execution row. */
export type ClaimedExecution = typeof executions.$inferSelect;

/**
 * Claims the oldest runnable execution: one that is queued, or in progress
 * with an expired lease (its control plane died). `FOR UPDATE SKIP LOCKED`
 * lets replicas claim concurrently without overlap. The claimant holds a lease
 * of `leaseMs` that it must renew.
 */
export async function claimExecution(
  db: Db,
  replicaId: string,
  leaseMs: number,
): Promise<ClaimedExecution | undefined> {
  return db.transaction(async (tx) => {
    const [candidate] = await tx
      .select({ id: executions.id })
      .from(executions)
      .where(
        or(
          eq(executions.status, "queued"),
          and(
            eq(executions.status, "in_progress"),
            or(lt(executions.leaseExpiresAt, sql`now()`), sql`${executions.leaseExpiresAt} is null`),
          ),
        ),
      )
      .orderBy(asc(executions.createdAt))
      .limit(1)
      .for("update", { skipLocked: true });
    if (!candidate) return undefined;
    const [claimed] = await tx
      .update(executions)
      .set({
        status: "in_progress",
        leaseOwner: replicaId,
        leaseExpiresAt: sql`now() + make_interval(secs => ${leaseMs / 1000})`,
        attempts: sql`${executions.attempts} + 1`,
        startedAt: sql`coalesce(${executions.startedAt}, now())`,
        updatedAt: sql`now()`,
      })
      .where(eq(executions.id, candidate.id))
      .returning();
    return claimed;
  });
}

/**
 * Extends the lease. Returns false when this replica no longer owns the
 * execution (another took it over, or it reached a final status elsewhere).
 */
export async function renewLease(
  db: Db,
  executionId: string,
  replicaId: string,
  leaseMs: number,
): Promise<{ owned: boolean }> {
  const [row] = await db
    .update(executions)
    .set({ leaseExpiresAt: sql`now() + make_interval(secs => ${leaseMs / 1000})` })
    .where(
      and(
        eq(executions.id, executionId),
        eq(executions.leaseOwner, replicaId),
        eq(executions.status, "in_progress"),
      ),
    )
    .returning({ id: executions.id });
  return { owned: Boolean(row) };
}

/**
 * The reason of a cancel requested for the execution (set with the request by
 * `cancelExecution`), or undefined when none was requested.
 */
export async function cancelRequested(db: Db, executionId: string): Promise<string | undefined> {
  const [row] = await db
    .select({ reason: executions.reason })
    .from(executions)
    .where(and(eq(executions.id, executionId), isNotNull(executions.cancelRequestedAt)));
  return row ? (row.reason ?? "cancelled") : undefined;
}

/** Whether a stop of the (continuous) execution was asked for (`stopContinuous`). */
export async function stopRequested(db: Db, executionId: string): Promise<boolean> {
  const [row] = await db
    .select({ id: executions.id })
    .from(executions)
    .where(and(eq(executions.id, executionId), isNotNull(executions.stopRequestedAt)));
  return Boolean(row);
}

/**
 * Moves the execution to a final status if this replica still owns it.
 * Returns false when it did not (so no second final event is published).
 */
export async function finishExecution(
  db: Db,
  executionId: string,
  replicaId: string,
  outcome: {
    status: "completed" | "failed" | "cancelled";
    reasonCode?: string | null;
    reason?: string | null;
  },
  alsoInTransaction?: (tx: Db) => Promise<void>,
): Promise<boolean> {
  return db.transaction(async (tx) => {
    const rows = await tx
      .update(executions)
      .set({
        status: outcome.status,
        reasonCode: outcome.reasonCode ?? null,
        reason: outcome.reason ?? null,
        finishedAt: sql`now()`,
        leaseOwner: null,
        leaseExpiresAt: null,
        updatedAt: sql`now()`,
      })
      .where(
        and(
          eq(executions.id, executionId),
          eq(executions.leaseOwner, replicaId),
          inArray(executions.status, ["in_progress"]),
        ),
      )
      .returning({ id: executions.id });
    if (rows.length === 0) return false;
    // A failed or cancelled run leaves no entity shown as pending or running.
    if (outcome.status !== "completed") {
      await tx
        .update(executionEntities)
        .set({ status: outcome.status, finishedAt: sql`now()` })
        .where(
          and(
            eq(executionEntities.executionId, executionId),
            inArray(executionEntities.status, ["pending", "in_progress"]),
          ),
        );
    }
    // E.g. the final progress and status events: stored with the end they announce, or not at all.
    await alsoInTransaction?.(tx as unknown as Db);
    return true;
  });
}
