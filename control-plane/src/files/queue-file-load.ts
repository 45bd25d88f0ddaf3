/**
 * Queuing the load of one uploaded file: a `file` execution (status `queued`,
 * a new pipeline token, the file frozen in its snapshot, a first `FileNotifier`
 * stage entry) and the file's pipeline_files row (state `Unloaded`), in one
 * transaction. The file id (SHA-256 of the bytes) is the row's key with the
 * pipeline: when the same bytes were uploaded before, nothing is queued and the
 * existing file is returned, so a re-upload loads nothing. The files of an
 * archive are queued together in one transaction ({@link queueFileLoads}).
 *
 * @example
 * const queued = await queueFileLoad(deps, pipeline, { staged, filename, format, compressed, publisherToken, actor }, now);
 * if (queued.duplicate) await deleteStaged(db, staged.uploadId);
 * // The files of an archive, together or not at all:
 * const all = await queueFileLoads(deps, pipeline, files, now);
 */
import { and, eq } from "drizzle-orm";
import { appendExecutionEvent } from "../executions/execution-events.js";
import type { Actor, PipelineRow } from "../executions/execution-records.js";
import { STAGES } from "../executions/execution-vocabulary.js";
import { appendStageLog, type StageLogRow, stageLogEvent } from "../executions/stage-log.js";
import {
  type ExecutionServiceDeps,
  newPipelineToken,
  pipelineSnapshot,
} from "../executions/start-execution.js";
import type { Db } from "../store/db.js";
import { newId } from "../store/ids.js";
import { executions, pipelineFiles } from "../store/schema.js";
import type { StagedUpload } from "./file-staging.js";

/** The stage that records a file's arrival (the first entry of a file load's stage log). */
export const FILE_NOTIFIER_STAGE = STAGES.fileIntake;

/** A file load's job status in the seed's vocabulary. */
export type FileJobStatus = "INITIALIZED" | "PROCESSING" | "COMPLETED";
/** A file's state (seed: PIPELINES_FILES). */
export type FileState = "Unloaded" | "Loaded" | "Skipped";

/**
 * The job status of a file load from its execution's status: queued →
 * INITIALIZED, in progress → PROCESSING, ended (completed, failed or
 * cancelled) → COMPLETED. Without an execution: INITIALIZED while the file is
 * Unloaded, COMPLETED otherwise.
 */
export function fileJobStatusOf(executionStatus: string | null | undefined, state: FileState): FileJobStatus {
  if (executionStatus === "queued") return "INITIALIZED";
  if (executionStatus === "in_progress") return "PROCESSING";
  if (executionStatus === undefined || executionStatus === null)
    return state === "Unloaded" ? "INITIALIZED" : "COMPLETED";
  return "COMPLETED";
}

/** The uploaded file to queue. */
export interface FileToQueue {
  staged: StagedUpload;
  /** The file's name as stored and shown (without a `.gz` of compressed files). */
  filename: string;
  format: string;
  compressed: boolean;
  publisherToken: string | null;
  actor: Actor;
}

/** The file as it is already recorded (re-upload of the same bytes). */
export interface ExistingFile {
  duplicate: true;
  fileId: string;
  filename: string;
  pipelineToken: string;
  publisherToken: string | null;
  state: FileState;
  status: FileJobStatus;
}

/** The file load queued by this upload. */
export interface QueuedFileLoad {
  duplicate: false;
  executionId: string;
  fileId: string;
  filename: string;
  pipelineToken: string;
  publisherToken: string | null;
  state: "Unloaded";
  status: "INITIALIZED";
}

/** A human size for the FileNotifier entry: `Received orders.csv (1234 bytes, sha256 0a1b2c3d4e5f)`. */
export function receivedDescription(file: {
  filename: string;
  sizeBytes: number;
  fileId: string;
  compressed: boolean;
}) {
  return `Received ${file.filename} (${file.sizeBytes} bytes${file.compressed ? ", gzip" : ""}, sha256 ${file.fileId.slice(0, 12)})`;
}

/** The recorded file of the pipeline with this id, with its load's execution status. */
async function existingFile(
  db: Pick<Db, "select">,
  pipelineId: string,
  fileId: string,
): Promise<ExistingFile> {
  const [row] = await db
    .select({ file: pipelineFiles, executionStatus: executions.status })
    .from(pipelineFiles)
    .leftJoin(executions, eq(executions.id, pipelineFiles.executionId))
    .where(and(eq(pipelineFiles.pipelineId, pipelineId), eq(pipelineFiles.fileId, fileId)))
    .limit(1);
  // The row's insert conflicted, so it exists: it was committed before this statement began.
  if (!row) throw new Error(`pipeline file ${fileId} conflicted but cannot be read`);
  return {
    duplicate: true,
    fileId,
    filename: row.file.filename,
    pipelineToken: row.file.pipelineToken,
    publisherToken: row.file.publisherToken,
    state: row.file.state,
    status: fileJobStatusOf(row.executionStatus, row.file.state),
  };
}

/** A load recorded in the transaction, announced once it commits. */
interface RecordedLoad {
  executionId: string;
  pipelineToken: string;
  entry: StageLogRow;
}

/** The database of a transaction (what drizzle hands to `transaction`'s callback). */
type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];

/**
 * Inserts the file's pipeline_files row, its `file` execution and its
 * FileNotifier entry in `tx`; or, when the pipeline has these bytes already,
 * returns the recorded file.
 */
async function recordFileLoad(
  tx: Tx,
  pipeline: PipelineRow,
  file: FileToQueue,
  now: Date,
): Promise<RecordedLoad | ExistingFile> {
  const { staged } = file;
  const executionId = newId();
  const pipelineToken = newPipelineToken();
  const inserted = await tx
    .insert(pipelineFiles)
    .values({
      pipelineId: pipeline.id,
      fileId: staged.fileId,
      organisationId: pipeline.organisationId,
      filename: file.filename,
      format: file.format,
      compressed: file.compressed,
      sizeBytes: staged.sizeBytes,
      state: "Unloaded",
      uploadId: staged.uploadId,
      executionId,
      pipelineToken,
      publisherToken: file.publisherToken,
      uploadedAt: now,
    })
    .onConflictDoNothing({ target: [pipelineFiles.pipelineId, pipelineFiles.fileId] })
    .returning({ fileId: pipelineFiles.fileId });
  if (inserted.length === 0) return existingFile(tx, pipeline.id, staged.fileId);
  await tx.insert(executions).values({
    id: executionId,
    organisationId: pipeline.organisationId,
    pipelineId: pipeline.id,
    pipelineToken,
    kind: "file",
    fileId: staged.fileId,
    publisherToken: file.publisherToken,
    status: "queued",
    triggeredBy: file.actor,
    snapshot: {
      ...pipelineSnapshot(pipeline),
      file: {
        fileId: staged.fileId,
        uploadId: staged.uploadId,
        filename: file.filename,
        format: file.format,
        compressed: file.compressed,
        sizeBytes: staged.sizeBytes,
      },
    },
    createdAt: now,
    updatedAt: now,
  });
  const entry = await appendStageLog(tx, {
    executionId,
    processName: FILE_NOTIFIER_STAGE,
    state: "begin",
    code: "begin",
    description: receivedDescription({ ...staged, filename: file.filename, compressed: file.compressed }),
    at: now,
  });
  return { executionId, pipelineToken, entry };
}

/** Logs a committed load and emits its queued status and stage events when `deps.bus` is set. */
async function announceQueued(
  deps: ExecutionServiceDeps,
  pipeline: PipelineRow,
  file: FileToQueue,
  load: RecordedLoad,
): Promise<void> {
  const { executionId, pipelineToken } = load;
  deps.logger.info("file load queued", {
    organisationId: pipeline.organisationId,
    pipelineId: pipeline.id,
    executionId,
    fileId: file.staged.fileId,
    sizeBytes: file.staged.sizeBytes,
  });
  if (!deps.bus) return;
  const events = { db: deps.db, bus: deps.bus, logger: deps.logger };
  const target = { executionId, organisationId: pipeline.organisationId };
  try {
    await appendExecutionEvent(events, target, "status", {
      type: "execution.status",
      status: "queued",
      pipelineId: pipeline.id,
      pipelineToken,
      triggeredBy: file.actor,
      fileId: file.staged.fileId,
    });
    await appendExecutionEvent(events, target, "log", stageLogEvent(load.entry));
  } catch (error) {
    deps.logger.warn("could not record the queued event", { executionId, error: String(error) });
  }
}

/**
 * Records the uploaded files of a `files` pipeline and queues their loads,
 * all in ONE transaction (the files of an archive are queued together or not
 * at all). A file whose bytes the pipeline has already (recorded before, or
 * earlier in `files`) queues nothing and comes back as the recorded file; the
 * caller then deletes its new staged bytes. Results are in the order of
 * `files`; the rows are written in file id order, so that concurrent
 * uploads sharing files wait on each other instead of deadlocking. Emits the
 * queued status and stage events after the commit when `deps.bus` is set.
 */
export async function queueFileLoads(
  deps: ExecutionServiceDeps,
  pipeline: PipelineRow,
  files: readonly FileToQueue[],
  now: Date,
): Promise<(QueuedFileLoad | ExistingFile)[]> {
  const order = files.map((_, i) => i);
  order.sort((a, b) => {
    const x = files[a]!.staged.fileId;
    const y = files[b]!.staged.fileId;
    return x < y ? -1 : x > y ? 1 : a - b;
  });
  const recorded = await deps.db.transaction(async (tx) => {
    const out: (RecordedLoad | ExistingFile)[] = new Array(files.length);
    for (const i of order) out[i] = await recordFileLoad(tx, pipeline, files[i]!, now);
    return out;
  });
  const results: (QueuedFileLoad | ExistingFile)[] = [];
  for (let i = 0; i < files.length; i++) {
    const load = recorded[i]!;
    const file = files[i]!;
    if ("duplicate" in load) {
      results.push(load);
      continue;
    }
    await announceQueued(deps, pipeline, file, load);
    results.push({
      duplicate: false,
      executionId: load.executionId,
      fileId: file.staged.fileId,
      filename: file.filename,
      pipelineToken: load.pipelineToken,
      publisherToken: file.publisherToken,
      state: "Unloaded",
      status: "INITIALIZED",
    });
  }
  return results;
}

/**
 * Records the uploaded file of a `files` pipeline and queues its load, or
 * returns the already recorded file when the pipeline has these bytes (the
 * caller then deletes the new staged bytes). Emits the queued status and
 * stage events when `deps.bus` is set.
 */
export async function queueFileLoad(
  deps: ExecutionServiceDeps,
  pipeline: PipelineRow,
  file: FileToQueue,
  now: Date,
): Promise<QueuedFileLoad | ExistingFile> {
  const [result] = await queueFileLoads(deps, pipeline, [file], now);
  return result!;
}
