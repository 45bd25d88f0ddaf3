/**
 * Cancelling an execution (seed 01): a queued one is cancelled at once; a
 * running one gets `cancelRequestedAt` and the executor, which watches for it
 * (and for the `execution.cancel_requested` status event), stops it and sets
 * `cancelled`. A final execution cannot be cancelled.
 */
import { DrayError } from "@dray/common";
import { and, eq, inArray } from "drizzle-orm";
import { executionEntities, executions } from "../store/schema.js";
import { appendExecutionEvent } from "./execution-events.js";
import { type Actor, type ExecutionRow, requireExecution } from "./execution-records.js";
import { FINAL_STATUSES, REASON_CODES, STAGES } from "./execution-vocabulary.js";
import { appendStageLog, type StageLogRow, stageLogEvent } from "./stage-log.js";
import type { ExecutionServiceDeps } from "./start-execution.js";

/** Longest user-given cancel reason kept. */
export const MAX_CANCEL_REASON_LENGTH = 500;

/** The stored reason of a cancel: `cancelled by <token name>[: <user reason>]`. */
export function cancelReasonOf(actor: Actor, reason: string | undefined): string {
  const given = reason?.trim();
  return `cancelled by ${actor.tokenName}${given ? `: ${given}` : ""}`;
}

/**
 * Cancels (queued) or requests the cancel of (in progress) the organisation's
 * execution and returns the updated row. Throws `not_found`, or
 * `failed_precondition` when the execution is already final.
 */
export async function cancelExecution(
  deps: ExecutionServiceDeps,
  organisationId: string,
  id: string,
  input: { reason?: string | undefined; actor: Actor },
  now: Date,
): Promise<ExecutionRow> {
  await requireExecution(deps.db, organisationId, id);
  const reason = cancelReasonOf(input.actor, input.reason);
  const result = await deps.db.transaction(async (tx) => {
    const [current] = await tx.select().from(executions).where(eq(executions.id, id)).for("update");
    if (!current) throw new DrayError("not_found", `execution ${id} was not found`);
    if (FINAL_STATUSES.has(current.status)) {
      throw new DrayError("failed_precondition", `execution is already ${current.status}`, {
        details: { executionId: id, status: current.status },
      });
    }
    if (current.status === "queued") {
      const [row] = await tx
        .update(executions)
        .set({
          status: "cancelled",
          finishedAt: now,
          cancelRequestedAt: now,
          cancelledBy: input.actor,
          reason,
          reasonCode: REASON_CODES.cancelledByUser,
          updatedAt: now,
        })
        .where(eq(executions.id, id))
        .returning();
      // A queued execution handed back by a stopped executor may have entity rows: none stays unfinished.
      await tx
        .update(executionEntities)
        .set({ status: "cancelled", finishedAt: now })
        .where(
          and(
            eq(executionEntities.executionId, id),
            inArray(executionEntities.status, ["pending", "in_progress"]),
          ),
        );
      const entry = await appendStageLog(tx, {
        executionId: id,
        processName: STAGES.jobRunner,
        state: "end",
        code: "cancelled",
        description: `Execution ${reason}`,
        at: now,
      });
      return { row: row!, entry };
    }
    const [row] = await tx
      .update(executions)
      .set({
        cancelRequestedAt: current.cancelRequestedAt ?? now,
        cancelledBy: input.actor,
        reason,
        updatedAt: now,
      })
      .where(eq(executions.id, id))
      .returning();
    return { row: row!, entry: undefined as StageLogRow | undefined };
  });

  const { row, entry } = result;
  deps.logger.info(entry ? "execution cancelled" : "execution cancel requested", {
    organisationId,
    executionId: id,
  });
  if (deps.bus) {
    const events = { db: deps.db, bus: deps.bus, logger: deps.logger };
    const target = { executionId: id, organisationId };
    try {
      if (entry) {
        await appendExecutionEvent(events, target, "status", {
          type: "execution.status",
          status: "cancelled",
          reasonCode: REASON_CODES.cancelledByUser,
          reason,
          cancelledBy: input.actor,
        });
        await appendExecutionEvent(events, target, "log", stageLogEvent(entry));
      } else {
        await appendExecutionEvent(events, target, "status", {
          type: "execution.cancel_requested",
          status: row.status,
          reason,
          cancelledBy: input.actor,
        });
      }
    } catch (error) {
      deps.logger.warn("could not record the cancel event", { executionId: id, error: String(error) });
    }
  }
  return row;
}
