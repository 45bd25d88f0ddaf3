import { DrayError } from "@dray/common";
import { TASK_ERROR_REASONS } from "@dray/proto";
import { LEDGER_TABLE } from "./ledger.js";
import type { Session, Statement } from "./session.js";

/**
 * Commit order between write batches in flight at the same time.
 *
 * Every write transaction holds an exclusive transaction-scoped advisory lock
 * named after its batch id. A batch that must commit after another one takes
 * the shared form of its predecessor's lock just before it records itself in
 * the ledger: that waits until the predecessor's transaction has ended. Then
 * the predecessor's ledger row tells whether it committed its rows (a row
 * sealed empty by a cancel fence does not count); if it did not, this
 * batch fails with a retryable `aborted` error and rolls back, so committed
 * batches of one entity always form an unbroken prefix.
 */

/** `details.reason` (and `TaskError.reason` on the wire) of a write whose predecessor had not committed. */
export const PREVIOUS_BATCH_NOT_COMMITTED = TASK_ERROR_REASONS.previousBatchNotCommitted;

/** SQL of the advisory lock key of a batch id (64-bit hash; a collision only makes one batch wait longer). */
const LOCK_KEY = "pg_catalog.hashtextextended($1::text, 0)";

/** The statement taking a write transaction's lock on its own batch id; run it first in the transaction. */
export function lockOwnBatch(batchId: string): Statement {
  return { text: `select pg_catalog.pg_advisory_xact_lock(${LOCK_KEY})`, params: [batchId], prepared: true };
}

/**
 * Waits until the predecessor's transaction has ended and checks that it
 * committed.
 *
 * @throws DrayError `aborted` (retryable) when the predecessor has not committed.
 */
export async function awaitPreviousBatch(session: Session, previousBatchId: string): Promise<void> {
  await session.query(`select pg_catalog.pg_advisory_xact_lock_shared(${LOCK_KEY})`, [previousBatchId], {
    prepared: true,
  });
  // A new statement: under READ COMMITTED it sees a commit that ended the wait above.
  // A fence (an empty write under the id) seals it with row_count 0: its rows never landed. Batches
  // written with successors in flight always hold rows.
  const [found] = await session.query<{ committed: boolean }>(
    `select exists (select 1 from ${LEDGER_TABLE} where batch_id = $1::text and row_count > 0) as committed`,
    [previousBatchId],
    { prepared: true },
  );
  if (!found?.committed)
    throw new DrayError(
      "aborted",
      `batch ${previousBatchId} has not committed, so this batch cannot commit after it yet`,
      { retryable: true, details: { reason: PREVIOUS_BATCH_NOT_COMMITTED, previousBatchId } },
    );
}
