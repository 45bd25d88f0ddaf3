/**
 * Loading one uploaded file (a `file` execution, seed 02's job): the staged
 * bytes are read back from the store chunk by chunk, parsed (CSV or NDJSON,
 * gunzipped when compressed) into batches of COPY text, and each batch is
 * written by the target agent as one transaction under its ledger id, like
 * any batch: reserved against the monthly limit, retried, settled in order
 * with a checkpoint (records consumed). A control plane that dies mid-file
 * resumes from the checkpoint; the batch it left in flight is cut again
 * identically (same start, same limits) and written under the same id, so it
 * commits exactly once. Rows that cannot be parsed are reported by line and
 * skipped. When the pipeline has data-quality rules (on target fields), the
 * control plane checks every parsed row against them (files have no source
 * agent to do it) and skips, by line, the rows that fail one (the DataQuality
 * stage). The file ends `Loaded`, or `Skipped` (with the error) when its load
 * fails after the retries.
 *
 * The rule compiler and the DataQuality entries are in `file-quality.ts`,
 * the target's one-entity plan in `file-plan.ts`.
 */
import { randomUUID } from "node:crypto";
import { DrayError } from "@dray/common";
import { and, count, desc, eq, inArray } from "drizzle-orm";
import { STAGES } from "../executions/execution-vocabulary.js";
import { validateFileSettings } from "../files/file-settings.js";
import { readStagedFile } from "../files/file-staging.js";
import { type FileBatch, type FileRowCheck, fileBatches } from "../files/parse-file.js";
import { raiseLimitHint, utcMonth } from "../pipelines/record-limit.js";
import type { Db } from "../store/db.js";
import {
  environments,
  executionBatches,
  executionEntities,
  executionErrors,
  pipelineFiles,
} from "../store/schema.js";
import { reserveBatch } from "./batch-bookkeeping.js";
import { startWrite } from "./batch-write.js";
import type { ClaimedExecution } from "./execution-lease.js";
import { planFileLoad } from "./file-plan.js";
import {
  BAD_ROW,
  DATA_QUALITY,
  fileRowCheck,
  qualityBeginEntry,
  qualityEndEntry,
  rejectEntries,
} from "./file-quality.js";
import type { EntityRunPlan, RunContext } from "./run-context.js";
import { abortKindOf, RecordLimitReached, reasonCodeOf } from "./run-errors.js";
import type { RunOutcome } from "./run-execution.js";
import { settleWrite } from "./settle-batch.js";
import { acquireTargetLocks } from "./target-locks.js";

/** The file of a `file` execution, frozen in its snapshot at upload. */
export interface StagedFileRef {
  fileId: string;
  uploadId: string;
  filename: string;
  format: "csv" | "ndjson";
  compressed: boolean;
  sizeBytes: number;
}

const INTAKE = STAGES.fileIntake;

async function resumeState(ctx: RunContext, entity: string) {
  const [row] = await ctx.db
    .select({ checkpoint: executionEntities.checkpoint })
    .from(executionEntities)
    .where(and(eq(executionEntities.executionId, ctx.executionId), eq(executionEntities.entity, entity)));
  const ofEntity = and(
    eq(executionBatches.executionId, ctx.executionId),
    eq(executionBatches.entity, entity),
  );
  const [last] = await ctx.db
    .select()
    .from(executionBatches)
    .where(ofEntity)
    .orderBy(desc(executionBatches.seq))
    .limit(1);
  const unfinished = last?.state === "in_progress" ? last : undefined;
  const done = Number(row?.checkpoint?.[0] ?? 0);
  return {
    // An unfinished batch is cut again from where it started.
    skipRecords: unfinished ? Number(unfinished.cursorFrom?.[0] ?? 0) : done,
    lastSeq: last?.seq ?? 0,
    unfinished,
  };
}

/**
 * The write that ends the file in `state`, with its row counts as they stand
 * now; the run applies it in the transaction that records its end (see
 * RunOutcome), so a file is Loaded or Skipped exactly when its job is
 * COMPLETED or FAILED.
 */
async function fileStateWrite(
  ctx: RunContext,
  pipelineId: string,
  file: StagedFileRef,
  state: "Loaded" | "Skipped",
  error: string | null,
): Promise<(tx: Db) => Promise<void>> {
  const entity = ctx.plan?.entities[0]?.entity;
  const c = entity === undefined ? undefined : ctx.counters.get(entity);
  // Rows the parser could not read (code bad_row) or that failed a data-quality rule (code data_quality) are
  // in the error log, the target's rejects in the counters.
  // Should the store not answer that count, the rejects stay unknown rather than the state unwritten.
  const skipped =
    c === undefined ? undefined : await skippedRows(ctx, [BAD_ROW, DATA_QUALITY]).catch(() => undefined);
  const counts = {
    ...(c === undefined ? {} : { rowsLoaded: c.created + c.updated }),
    ...(c === undefined || skipped === undefined ? {} : { rowsRejected: c.skipped + c.failed + skipped }),
  };
  return async (tx) => {
    await tx
      .update(pipelineFiles)
      .set({ state, error, ...counts, finishedAt: new Date() })
      .where(and(eq(pipelineFiles.pipelineId, pipelineId), eq(pipelineFiles.fileId, file.fileId)));
  };
}

/** Rows of this execution in the error log under one of `codes` (all attempts), once the journal is written. */
async function skippedRows(ctx: RunContext, codes: string[]): Promise<number> {
  await ctx.journal.flush();
  const [row] = await ctx.db
    .select({ n: count() })
    .from(executionErrors)
    .where(and(eq(executionErrors.executionId, ctx.executionId), inArray(executionErrors.code, codes)));
  return row?.n ?? 0;
}

/**
 * Runs a claimed `file` execution to its end and returns how it ended; the
 * caller records the final status (as for any run).
 */
export async function runFileLoad(
  base: Omit<RunContext, "plan">,
  execution: ClaimedExecution,
): Promise<RunOutcome> {
  const ctx = base as RunContext;
  const file = (execution.snapshot as { file?: StagedFileRef }).file;
  if (!file)
    return { status: "failed", reasonCode: "internal", reason: "the file execution names no staged file" };
  const [targetRow] = await ctx.db
    .select({ name: environments.name, platform: environments.platform })
    .from(environments)
    .where(eq(environments.id, ctx.settings.targetEnvironmentId));
  const targetName = targetRow?.name ?? ctx.settings.targetEnvironmentId;
  try {
    if (execution.attempts === 1) {
      await ctx.journal.status("in_progress");
      await ctx.journal.stage({
        processName: INTAKE,
        state: "processing",
        code: "processing",
        description: `Reading ${file.filename} (${file.format}${file.compressed ? ", gzip" : ""})`,
      });
    }
    const planned = await planFileLoad(base, targetName, targetRow?.platform ?? "postgres");
    ctx.plan = planned.plan;
    const entity = ctx.plan.entities[0]!;
    const quality = fileRowCheck(ctx.settings.qualityRules ?? [], entity, planned.types);
    await ctx.db
      .insert(executionEntities)
      .values({ executionId: ctx.executionId, entity: entity.entity, level: 0, status: "in_progress" })
      .onConflictDoNothing();
    const [counters] = await ctx.db
      .select()
      .from(executionEntities)
      .where(
        and(eq(executionEntities.executionId, ctx.executionId), eq(executionEntities.entity, entity.entity)),
      );
    ctx.counters.set(entity.entity, {
      total: counters?.total ?? 0,
      processed: counters?.processed ?? 0,
      created: counters?.created ?? 0,
      updated: counters?.updated ?? 0,
      skipped: counters?.skipped ?? 0,
      failed: counters?.failed ?? 0,
    });
    await acquireTargetLocks(ctx);
    const loader = STAGES.loader(ctx.plan.targetPlatform);
    await ctx.journal.stage({
      processName: STAGES.jobRunner,
      state: "begin",
      code: "begin",
      description: `Loading ${file.filename} into ${entity.entity} in ${targetName}`,
    });
    await ctx.journal.stage({
      processName: loader,
      state: "begin",
      code: "begin",
      entity: entity.entity,
      description: `Loading ${entity.entity}`,
    });
    if (quality) await ctx.journal.stage(qualityBeginEntry(entity.entity, file.filename, quality.rules));
    await loadBatches(ctx, entity, file, quality?.check);
    const c = ctx.counters.get(entity.entity)!;
    // A file's size in rows is known once it is read: the entity ends complete, at 100%.
    c.total = c.processed + c.skipped + c.failed;
    await ctx.db
      .update(executionEntities)
      .set({ status: "completed", total: c.total, finishedAt: new Date() })
      .where(
        and(eq(executionEntities.executionId, ctx.executionId), eq(executionEntities.entity, entity.entity)),
      );
    await ctx.journal.stage({
      processName: loader,
      state: "end",
      code: "end",
      entity: entity.entity,
      description: `${entity.entity}: ${c.created} created, ${c.updated} updated, ${c.skipped} skipped, ${c.failed} failed`,
    });
    if (quality) {
      const failed = await skippedRows(ctx, [DATA_QUALITY]);
      await ctx.journal.stage(qualityEndEntry(entity.entity, quality.rules, failed));
    }
    const loaded = await fileStateWrite(ctx, execution.pipelineId, file, "Loaded", null);
    await ctx.journal.stage({
      processName: INTAKE,
      state: "end",
      code: "end",
      description: `${file.filename}: Loaded`,
    });
    await ctx.journal.stage({
      processName: STAGES.jobRunner,
      state: "end",
      code: "end",
      description: "Process completed",
    });
    return { status: "completed", alsoWhenFinished: loaded };
  } catch (error) {
    const kind = abortKindOf(ctx.signal);
    if (kind === "lost" || kind === "shutdown") return { status: "lost" };
    const e = DrayError.from(error);
    const reason =
      kind === "cancel"
        ? `the load was cancelled: ${e.message}`
        : `the load failed after its retries: ${e.message}`;
    const skipped = await fileStateWrite(ctx, execution.pipelineId, file, "Skipped", reason);
    await ctx.journal
      .stage({
        processName: INTAKE,
        state: "error",
        code: "skipped",
        description: `${file.filename}: Skipped (${reason})`,
      })
      .catch(() => {});
    if (kind === "cancel") return { status: "cancelled", reason: e.message, alsoWhenFinished: skipped };
    const reasonCode = reasonCodeOf(error) === "internal" ? e.code : reasonCodeOf(error);
    await ctx.journal
      .stage({ processName: STAGES.jobRunner, state: "error", code: reasonCode, description: e.message })
      .catch(() => {});
    return { status: "failed", reasonCode, reason: e.message, alsoWhenFinished: skipped };
  }
}

/** Journals the rejects of a batch (its rows that were not read, or failed a rule) and their DataQuality entries. */
async function journalRejects(
  ctx: RunContext,
  entity: EntityRunPlan,
  file: StagedFileRef,
  batch: FileBatch,
): Promise<void> {
  const { errors, stages } = rejectEntries(entity.entity, file.filename, batch);
  await ctx.journal.errors(errors);
  for (const stage of stages) await ctx.journal.stage(stage);
}

/** Cuts the file into batches and writes them one after the other from the checkpoint. */
async function loadBatches(
  ctx: RunContext,
  entity: EntityRunPlan,
  file: StagedFileRef,
  rowCheck: FileRowCheck | undefined,
): Promise<void> {
  const settings = validateFileSettings(ctx.settings.fileSettings);
  const { skipRecords, lastSeq, unfinished } = await resumeState(ctx, entity.entity);
  let seq = lastSeq;
  let consumed = skipRecords;
  let resumed = unfinished;
  const batches = fileBatches(readStagedFile(ctx.db, file.uploadId), {
    settings,
    compressed: file.compressed,
    targetFields: entity.fields,
    maxRows: ctx.settings.batchSize,
    maxBytes: ctx.settings.batchBytes,
    skipRecords,
    ...(rowCheck ? { rowCheck } : {}),
  });
  for await (const batch of batches) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    const cursorFrom = [String(consumed)];
    consumed += batch.records;
    const cursorTo = [String(consumed)];
    // A resumed batch's rejects were journaled when it was first cut.
    if (batch.rejects.length > 0 && !resumed) await journalRejects(ctx, entity, file, batch);
    const rows = ctx.agents.copyTextRows(batch.fields, batch.data, batch.rowCount);
    let rowId: string;
    let batchId: string;
    let priorAttempts = 0;
    if (resumed) {
      ({ id: rowId, batchId, seq } = resumed);
      priorAttempts = resumed.attempts;
      resumed = undefined;
    } else {
      seq += 1;
      rowId = randomUUID();
      batchId = `${ctx.executionId}:${entity.entity}:1:${seq}`;
      const reserved = await reserveBatch(ctx.db, {
        id: rowId,
        executionId: ctx.executionId,
        organisationId: ctx.organisationId,
        entity: entity.entity,
        pass: 1,
        seq,
        batchId,
        cursorFrom,
        cursorTo,
        rows: batch.rowCount,
        bytes: batch.data.byteLength,
        reserve: batch.rowCount,
        month: utcMonth(new Date()),
      });
      if (!reserved.ok)
        throw new RecordLimitReached(
          `monthly record limit reached: ${reserved.used} of ${reserved.limit} records used this month, and the next ` +
            `batch of ${file.filename} needs ${reserved.needed}. ${raiseLimitHint(ctx.organisationId)}, then upload the file again after DROP FILE.`,
          { ...reserved, entity: entity.entity },
        );
    }
    const pending = { rowId, batchId, seq, rows, priorAttempts, qualityRejected: [] };
    const outcome = await startWrite(ctx, entity, 1, pending);
    await settleWrite(ctx, entity, 1, pending, outcome);
    ctx.onProgress();
  }
}
