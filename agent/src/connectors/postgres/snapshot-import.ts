/**
 * Reading in an exported snapshot (`SET TRANSACTION SNAPSHOT`): a run's reads
 * share one (ReadBatchTask.snapshot_id), so that every entity is read as of
 * the moment it was exported, as pg_dump reads a database; and a table without
 * a row key is read page by page in one of its own (keyless-read.ts). Each
 * page is a `REPEATABLE READ READ ONLY` transaction that imports the snapshot
 * before its first query, sent in the same round trip as BEGIN.
 */
import { DrayError } from "@dray/common";
import { TASK_ERROR_REASONS } from "@dray/proto";
import { sqlStateOf } from "./error-mapping.js";
import type { Statement } from "./session.js";

/** Longest snapshot id accepted (the server's are about 20 characters). */
const MAX_SNAPSHOT_ID_LENGTH = 64;

/** SQLSTATEs of a snapshot that can no longer be imported (invalid id; its transaction ended). */
const GONE_STATES = new Set(["22023", "55000"]);

/**
 * True for a snapshot id as `pg_export_snapshot()` writes it: 1 to 64 hex
 * digits and dashes, nothing else (checked character by character, so the id
 * can be written as a SQL literal).
 */
export function isSnapshotId(id: unknown): id is string {
  if (typeof id !== "string" || id.length === 0 || id.length > MAX_SNAPSHOT_ID_LENGTH) return false;
  for (let i = 0; i < id.length; i++) {
    const code = id.charCodeAt(i);
    const digit = code >= 0x30 && code <= 0x39;
    const upper = code >= 0x41 && code <= 0x46;
    const lower = code >= 0x61 && code <= 0x66;
    if (!digit && !upper && !lower && code !== 0x2d) return false;
  }
  return true;
}

/**
 * The statements that make a transaction read in snapshot `snapshotId`, to
 * send right after BEGIN. The id is checked with {@link isSnapshotId} before
 * it is written as a literal (SET TRANSACTION SNAPSHOT takes no parameter).
 *
 * @throws DrayError `invalid_argument` for a malformed id.
 */
export function snapshotImportSetup(snapshotId: string): Statement[] {
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

/** True for the server's refusal to import a snapshot that is no longer held. */
export function isSnapshotGone(error: unknown): boolean {
  const state = sqlStateOf(error);
  return state !== undefined && GONE_STATES.has(state) && /snapshot/i.test(String((error as Error).message));
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
 * Runs `read`, a transaction that imports `snapshotId` ({@link snapshotImportSetup}),
 * turning the server's refusal to import it into `gone(snapshotId)`.
 */
export async function whileSnapshotHeld<T>(
  snapshotId: string,
  read: () => Promise<T>,
  gone: (snapshotId: string) => DrayError = snapshotGoneError,
): Promise<T> {
  try {
    return await read();
  } catch (error) {
    if (isSnapshotGone(error)) throw gone(snapshotId);
    throw error;
  }
}
