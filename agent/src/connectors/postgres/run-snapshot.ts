/**
 * Reads in a run's snapshot (ReadBatchTask.snapshot_id): every entity of a run
 * is read as of the moment the snapshot was exported (ExportSnapshotTask), as
 * pg_dump reads a database. Each page is a `REPEATABLE READ READ ONLY`
 * transaction that imports the snapshot before its first query, sent in the
 * same round trip as BEGIN.
 */
import { DrayError } from "@dray/common";
import { TASK_ERROR_REASONS } from "@dray/proto";
import { sqlStateOf } from "./error-mapping.js";
import { isSnapshotId } from "./keyless-read.js";
import type { Statement } from "./session.js";

/** SQLSTATEs of a snapshot that can no longer be imported (invalid id; its transaction ended). */
const GONE_STATES = new Set(["22023", "55000"]);

/**
 * The statements that make a transaction read in snapshot `snapshotId`, to
 * send right after BEGIN. The id is checked character by character before it
 * is written as a literal (SET TRANSACTION SNAPSHOT takes no parameter).
 *
 * @throws DrayError `invalid_argument` for a malformed id.
 */
export function runSnapshotSetup(snapshotId: string): Statement[] {
  if (!isSnapshotId(snapshotId))
    throw new DrayError(
      "invalid_argument",
      "snapshot_id may hold hex digits and dashes only, up to 64 of them",
    );
  return [
    { text: "set transaction isolation level repeatable read, read only", params: [] },
    { text: `set transaction snapshot '${snapshotId}'`, params: [] },
  ];
}

/** The error of a read whose run snapshot is no longer held (retrying it in the same snapshot cannot work). */
export function snapshotGoneError(snapshotId: string): DrayError {
  return new DrayError(
    "failed_precondition",
    `snapshot ${snapshotId} is no longer held (the agent that exported it restarted or let it go): ` +
      "read without it",
    { retryable: false, details: { reason: TASK_ERROR_REASONS.snapshotGone } },
  );
}

/**
 * Runs a read in snapshot `snapshotId`, turning the server's refusal to import
 * it into {@link snapshotGoneError}.
 */
export async function readInRunSnapshot<T>(snapshotId: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    const state = sqlStateOf(error);
    if (state !== undefined && GONE_STATES.has(state) && /snapshot/i.test(String((error as Error).message)))
      throw snapshotGoneError(snapshotId);
    throw error;
  }
}
