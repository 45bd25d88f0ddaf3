/**
 * The files of a `files` pipeline (pipeline_files): listing them, DROP FILE
 * (the record and its staged bytes go, so the same bytes load again when
 * uploaded again) and the retention purge of old records and orphaned chunks.
 *
 * @example
 * const page = await listPipelineFiles(db, organisationId, pipelineId, { limit: 50 });
 * await dropPipelineFile(db, organisationId, pipelineId, fileId);
 * await purgeExpiredFiles(db, new Date(), 90);
 */
import { DrayError, type Logger } from "@dray/common";
import { and, eq, inArray, lt, ne, sql } from "drizzle-orm";
import {
  decodeCursor,
  type KeysetKey,
  keysetAfter,
  keysetColumns,
  keysetOrderBy,
  pageOf,
} from "../api/pagination.js";
import { getPipeline } from "../pipelines/pipelines-service.js";
import type { Db } from "../store/db.js";
import { executions, pipelineFiles, stagedFileChunks } from "../store/schema.js";
import type { FileState } from "./queue-file-load.js";

/** One file of a pipeline as the API shows it. */
export interface PipelineFileView {
  fileId: string;
  filename: string;
  format: string;
  compressed: boolean;
  sizeBytes: number;
  state: FileState;
  error: string | null;
  pipelineToken: string;
  publisherToken: string | null;
  rowsLoaded: number;
  rowsRejected: number;
  uploadedAt: string;
  finishedAt: string | null;
}

/** Newest first (to the microsecond), then by file id. */
const FILE_KEYS: KeysetKey[] = [
  { expr: sql`extract(epoch from ${pipelineFiles.uploadedAt})`, dir: "desc", kind: "number" },
  { expr: sql`${pipelineFiles.fileId}`, dir: "desc" },
];
const FILE_LIST = "pipeline-files:uploadedAt";

/** Staged chunks not referenced by any file record are deleted once older than this. */
export const ORPHAN_CHUNK_AGE_MS = 24 * 3_600_000;

/** True for a file id as Dray makes them: 64 lower-case hex digits (SHA-256). */
export function isFileId(value: string): boolean {
  if (value.length !== 64) return false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

function fileNotFound(pipelineId: string, fileId: string): DrayError {
  const shown = fileId.length > 80 ? `${fileId.slice(0, 80)}…` : fileId;
  return new DrayError("not_found", `file ${shown} of pipeline ${pipelineId} was not found`);
}

/** The API view of a stored file. */
export function pipelineFileView(row: typeof pipelineFiles.$inferSelect): PipelineFileView {
  return {
    fileId: row.fileId,
    filename: row.filename,
    format: row.format,
    compressed: row.compressed,
    sizeBytes: row.sizeBytes,
    state: row.state,
    error: row.error,
    pipelineToken: row.pipelineToken,
    publisherToken: row.publisherToken,
    rowsLoaded: row.rowsLoaded,
    rowsRejected: row.rowsRejected,
    uploadedAt: row.uploadedAt.toISOString(),
    finishedAt: row.finishedAt ? row.finishedAt.toISOString() : null,
  };
}

/**
 * A page of the files of the organisation's pipeline, newest first; `next` is
 * the cursor of the page after it, null on the last. `not_found` for an
 * unknown pipeline or one of another organisation.
 */
export async function listPipelineFiles(
  db: Db,
  organisationId: string,
  pipelineId: string,
  paging: { limit: number; cursor?: string | undefined },
): Promise<{ files: PipelineFileView[]; next: string | null }> {
  await getPipeline(db, organisationId, pipelineId);
  const after = paging.cursor
    ? keysetAfter(FILE_KEYS, decodeCursor(paging.cursor, FILE_LIST, FILE_KEYS.length))
    : undefined;
  const rows = await db
    .select({ row: pipelineFiles, position: keysetColumns(FILE_KEYS) })
    .from(pipelineFiles)
    .where(and(eq(pipelineFiles.pipelineId, pipelineId), after))
    .orderBy(...keysetOrderBy(FILE_KEYS))
    .limit(paging.limit + 1);
  const { items, next } = pageOf(rows, paging.limit, FILE_LIST, (r) => r.position);
  return { files: items.map((r) => pipelineFileView(r.row)), next };
}

/**
 * DROP FILE: deletes the record of the organisation's pipeline's file and its
 * staged bytes, so the same bytes load again when uploaded again. `not_found`
 * for an unknown pipeline or file; `failed_precondition` (409, with the
 * execution id and pipeline token in `details`) while the file's load is
 * queued or in progress. Returns the dropped file.
 */
export async function dropPipelineFile(
  db: Db,
  organisationId: string,
  pipelineId: string,
  fileId: string,
): Promise<PipelineFileView> {
  const pipeline = await getPipeline(db, organisationId, pipelineId);
  if (!isFileId(fileId)) throw fileNotFound(pipeline.id, fileId);
  return db.transaction(async (tx) => {
    const [file] = await tx
      .select()
      .from(pipelineFiles)
      .where(and(eq(pipelineFiles.pipelineId, pipeline.id), eq(pipelineFiles.fileId, fileId)))
      .for("update");
    if (!file) throw fileNotFound(pipeline.id, fileId);
    if (file.executionId) {
      // Locked, so the executor cannot claim the load between this check and the delete.
      const [load] = await tx
        .select({ id: executions.id, status: executions.status, pipelineToken: executions.pipelineToken })
        .from(executions)
        .where(eq(executions.id, file.executionId))
        .for("update");
      if (load && (load.status === "queued" || load.status === "in_progress")) {
        throw new DrayError(
          "failed_precondition",
          `the load of file ${file.filename} (pipeline token ${load.pipelineToken}) is ` +
            `${load.status === "queued" ? "queued" : "in progress"}: wait for it to end, or cancel it ` +
            `(POST /api/v1/executions/${load.id}/cancel), then drop the file`,
          { details: { executionId: load.id, pipelineToken: load.pipelineToken, status: load.status } },
        );
      }
    }
    await tx
      .delete(pipelineFiles)
      .where(and(eq(pipelineFiles.pipelineId, pipeline.id), eq(pipelineFiles.fileId, fileId)));
    if (file.uploadId) await tx.delete(stagedFileChunks).where(eq(stagedFileChunks.uploadId, file.uploadId));
    return pipelineFileView(file);
  });
}

/** What {@link purgeExpiredFiles} deleted. */
export interface PurgeResult {
  /** File records past the retention. */
  files: number;
  /** Staged chunks of those files. */
  chunks: number;
  /** Staged chunks no file record points to (failed or refused uploads). */
  orphanChunks: number;
}

/** File records deleted per statement of {@link purgeExpiredFiles}. */
const PURGE_BATCH = 500;

/**
 * Deletes the file records (not `Unloaded` ones) uploaded more than
 * `retentionDays` before `now` with their staged chunks, and staged chunks no
 * record points to that are older than a day. A purged file's bytes load again
 * when uploaded again.
 */
export async function purgeExpiredFiles(db: Db, now: Date, retentionDays: number): Promise<PurgeResult> {
  const cutoff = new Date(now.getTime() - retentionDays * 86_400_000);
  const result: PurgeResult = { files: 0, chunks: 0, orphanChunks: 0 };
  for (;;) {
    const expired = await db
      .select({ pipelineId: pipelineFiles.pipelineId, fileId: pipelineFiles.fileId })
      .from(pipelineFiles)
      .where(and(lt(pipelineFiles.uploadedAt, cutoff), ne(pipelineFiles.state, "Unloaded")))
      .limit(PURGE_BATCH);
    if (expired.length === 0) break;
    const deleted = await db.transaction(async (tx) => {
      const rows = await tx
        .delete(pipelineFiles)
        .where(
          and(
            sql`(${pipelineFiles.pipelineId}, ${pipelineFiles.fileId}) in (${sql.join(
              expired.map((e) => sql`(${e.pipelineId}::uuid, ${e.fileId})`),
              sql`, `,
            )})`,
            ne(pipelineFiles.state, "Unloaded"),
          ),
        )
        .returning({ uploadId: pipelineFiles.uploadId });
      const uploads = rows.map((r) => r.uploadId).filter((id): id is string => id !== null);
      const chunks =
        uploads.length === 0
          ? []
          : await tx
              .delete(stagedFileChunks)
              .where(inArray(stagedFileChunks.uploadId, uploads))
              .returning({ seq: stagedFileChunks.seq });
      return { files: rows.length, chunks: chunks.length };
    });
    result.files += deleted.files;
    result.chunks += deleted.chunks;
    if (expired.length < PURGE_BATCH) break;
  }
  const orphanCutoff = new Date(now.getTime() - ORPHAN_CHUNK_AGE_MS);
  const orphans = await db
    .delete(stagedFileChunks)
    .where(
      and(
        lt(stagedFileChunks.createdAt, orphanCutoff),
        sql`not exists (select 1 from ${pipelineFiles} where ${pipelineFiles.uploadId} = ${stagedFileChunks.uploadId})`,
      ),
    )
    .returning({ seq: stagedFileChunks.seq });
  result.orphanChunks = orphans.length;
  return result;
}

/** How often {@link startFilePurge} purges: hourly. */
export const FILE_PURGE_INTERVAL_MS = 3_600_000;

/** A running file purge; `stop()` clears its timer and waits for a purge in flight. */
export interface FilePurge {
  stop(): Promise<void>;
}

/**
 * Runs {@link purgeExpiredFiles} now and then every `intervalMs` (an unref'd
 * timer: it never keeps the process alive). Failures are logged and retried
 * at the next tick.
 *
 * @example
 * const purge = startFilePurge({ db, logger, retentionDays: config.fileRetentionDays });
 * await purge.stop();
 */
export function startFilePurge(options: {
  db: Db;
  logger: Logger;
  retentionDays: number;
  intervalMs?: number;
  now?: () => Date;
}): FilePurge {
  const now = options.now ?? (() => new Date());
  let running: Promise<void> | undefined;
  let stopped = false;
  const tick = () => {
    if (stopped || running) return;
    running = purgeExpiredFiles(options.db, now(), options.retentionDays)
      .then((purged) => {
        if (purged.files + purged.chunks + purged.orphanChunks > 0)
          options.logger.info("files purged", { ...purged });
      })
      .catch((error) =>
        options.logger.warn("file purge failed; retrying at the next tick", { error: String(error) }),
      )
      .finally(() => {
        running = undefined;
      });
  };
  const timer = setInterval(tick, options.intervalMs ?? FILE_PURGE_INTERVAL_MS);
  timer.unref();
  tick();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
