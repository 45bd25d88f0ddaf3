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
 * skipped. The file ends `Loaded`, or `Skipped` (with the error) when its load
 * fails after the retries.
 */
import { randomUUID } from "node:crypto";
import { DrayError } from "@dray/common";
import { and, count, desc, eq } from "drizzle-orm";
import { STAGES } from "../executions/execution-vocabulary.js";
import { validateFileSettings } from "../files/file-settings.js";
import { readStagedFile } from "../files/file-staging.js";
import { fileBatches } from "../files/parse-file.js";
import { raiseLimitHint, utcMonth } from "../pipelines/record-limit.js";
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
import type { EntityRunPlan, ExecutionPlan, RunContext } from "./run-context.js";
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

/** Describes the target and builds the one-entity plan of the load. */
async function planFileLoad(
  ctx: Omit<RunContext, "plan">,
  targetName: string,
  platform: ExecutionPlan["targetPlatform"],
): Promise<ExecutionPlan> {
  const snapshot = await ctx.agents.describe(ctx.settings.targetEnvironmentId, {
    signal: ctx.signal,
    timeoutMs: ctx.options.taskTimeoutMs,
  });
  const name = ctx.settings.entities[0]!;
  const target = snapshot.entities.find((e) => e.entity === name);
  if (!target)
    throw new DrayError(
      "failed_precondition",
      `target entity ${name} does not exist in ${targetName}: create it, or point the pipeline at another entity`,
    );
  const keyFields = target.rowKey ?? target.primaryKey;
  const entity: EntityRunPlan = {
    entity: name,
    schema: target.schema,
    name: target.name,
    level: 0,
    keyFields,
    fields: target.fields.filter((f) => !f.generated).map((f) => f.name),
    deferredFields: [],
    uncheckedReferences: [],
    dependsOn: [],
    transforms: [],
  };
  return {
    levels: [[name]],
    entities: [entity],
    targetPlatform: platform,
    sourcePlatform: platform,
    targetName,
    sourceName: "uploaded files",
  };
}

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

async function setFileState(
  ctx: RunContext,
  pipelineId: string,
  file: StagedFileRef,
  state: "Loaded" | "Skipped",
  error: string | null,
) {
  const c = ctx.counters.get(ctx.plan.entities[0]!.entity);
  // Rows the parser could not read are in the error log (code bad_row), the target's rejects in the counters.
  await ctx.journal.flush();
  const [bad] = await ctx.db
    .select({ n: count() })
    .from(executionErrors)
    .where(and(eq(executionErrors.executionId, ctx.executionId), eq(executionErrors.code, "bad_row")));
  await ctx.db
    .update(pipelineFiles)
    .set({
      state,
      error,
      rowsLoaded: (c?.created ?? 0) + (c?.updated ?? 0),
      rowsRejected: (c?.skipped ?? 0) + (c?.failed ?? 0) + (bad?.n ?? 0),
      finishedAt: new Date(),
    })
    .where(and(eq(pipelineFiles.pipelineId, pipelineId), eq(pipelineFiles.fileId, file.fileId)));
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
    ctx.plan = await planFileLoad(base, targetName, targetRow?.platform ?? "postgres");
    const entity = ctx.plan.entities[0]!;
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
    await loadBatches(ctx, entity, file);
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
    await setFileState(ctx, execution.pipelineId, file, "Loaded", null);
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
    return { status: "completed" };
  } catch (error) {
    const kind = abortKindOf(ctx.signal);
    if (kind === "lost" || kind === "shutdown") return { status: "lost" };
    const e = DrayError.from(error);
    const reason =
      kind === "cancel"
        ? `the load was cancelled: ${e.message}`
        : `the load failed after its retries: ${e.message}`;
    if (ctx.plan) await setFileState(ctx, execution.pipelineId, file, "Skipped", reason).catch(() => {});
    else
      await ctx.db
        .update(pipelineFiles)
        .set({ state: "Skipped", error: reason, finishedAt: new Date() })
        .where(and(eq(pipelineFiles.pipelineId, execution.pipelineId), eq(pipelineFiles.fileId, file.fileId)))
        .catch(() => {});
    await ctx.journal
      .stage({
        processName: INTAKE,
        state: "error",
        code: "skipped",
        description: `${file.filename}: Skipped (${reason})`,
      })
      .catch(() => {});
    if (kind === "cancel") return { status: "cancelled", reason: e.message };
    const reasonCode = reasonCodeOf(error) === "internal" ? e.code : reasonCodeOf(error);
    await ctx.journal
      .stage({ processName: STAGES.jobRunner, state: "error", code: reasonCode, description: e.message })
      .catch(() => {});
    return { status: "failed", reasonCode, reason: e.message };
  }
}

/** Cuts the file into batches and writes them one after the other from the checkpoint. */
async function loadBatches(ctx: RunContext, entity: EntityRunPlan, file: StagedFileRef): Promise<void> {
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
  });
  for await (const batch of batches) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    const cursorFrom = [String(consumed)];
    consumed += batch.records;
    const cursorTo = [String(consumed)];
    if (batch.rejects.length > 0 && !resumed) {
      await ctx.journal.errors(
        batch.rejects.map((r) => ({
          severity: "error" as const,
          entity: entity.entity,
          recordKey: [`line ${r.line}`],
          code: "bad_row",
          message: `${file.filename} line ${r.line}: ${r.message}`,
        })),
      );
      await ctx.journal.stage({
        processName: STAGES.dataQuality,
        state: "processing",
        code: "rows_skipped",
        entity: entity.entity,
        description: `${batch.rejects.length} row(s) of lines ${batch.firstLine}–${batch.lastLine} could not be read and were skipped (error log, code bad_row)`,
      });
    }
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
