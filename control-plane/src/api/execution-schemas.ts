/** Zod schemas of executions, the seed-compatible job status and usage; they also make up the OpenAPI document. */
import { z } from "@hono/zod-openapi";
import { MAX_CANCEL_REASON_LENGTH } from "../executions/cancel-execution.js";
import { EXECUTION_STATUSES, RECORD_COUNTER_MEANINGS } from "../executions/execution-vocabulary.js";
import { MAX_DATE_PARAM_LENGTH, MAX_STATUS_FILTER_LENGTH } from "../executions/history-filter.js";
import { EntityNameText, Timestamp } from "./schemas.js";

const uuid = z.string().openapi({ format: "uuid" });
const pageParam = z.coerce
  .number()
  .int()
  .min(1)
  .default(1)
  .openapi({ description: "1-based page", example: 1 });
const pageSizeParam = (byDefault: number, max: number) =>
  z.coerce
    .number()
    .int()
    .min(1)
    .max(max)
    .default(byDefault)
    .openapi({ description: `Items per page (max ${max})` });
const paging = { page: z.number().int(), pageSize: z.number().int(), total: z.number().int() };

/** Body of POST /pipelines/{id}/executions (optional). */
export const StartExecution = z
  .strictObject({
    confirm: z
      .boolean()
      .optional()
      .openapi({ description: "Confirms a clean or delete against a protected target environment" }),
  })
  .openapi("StartExecution");

/** Answer of POST /pipelines/{id}/executions. */
export const StartedExecution = z
  .object({
    id: uuid,
    pipelineToken: z.string().openapi({ example: "pt-5f0c2b1e-8c3a-4d7e-9b1a-2f6d8e4c1a07" }),
    status: z.literal("queued"),
  })
  .openapi("StartedExecution");

/** Body of POST /executions/{id}/cancel (optional). */
export const CancelExecution = z
  .strictObject({ reason: z.string().max(MAX_CANCEL_REASON_LENGTH).optional() })
  .openapi("CancelExecution");

/** Who started or cancelled an execution. */
export const Actor = z
  .object({ tokenId: uuid, tokenName: z.string(), role: z.string() })
  .openapi("ExecutionActor");

const counters = {
  total: z
    .number()
    .int()
    .openapi({
      description:
        "Rows of the source to copy: counted at preflight, or, for a large table whose planner statistics know its " +
        "rows (the plan's totalEstimated), their estimate until the entity's first pass ends, then the rows it read",
    }),
  processed: z.number().int(),
  created: z.number().int(),
  updated: z.number().int(),
  skipped: z
    .number()
    .int()
    .openapi({ description: `Skipped: ${RECORD_COUNTER_MEANINGS.skipped}` }),
  failed: z
    .number()
    .int()
    .openapi({ description: `Failed: ${RECORD_COUNTER_MEANINGS.failed}` }),
};

const ExecutionStatus = z.enum(EXECUTION_STATUSES);

/** An execution with its per-entity breakdown. */
export const Execution = z
  .object({
    id: uuid,
    pipelineId: uuid,
    pipelineName: z.string(),
    pipelineToken: z.string(),
    kind: z.enum(["run", "continuous", "file"]).openapi({
      description:
        "run (a once run), continuous (a continuous pipeline's execution) or file (one uploaded file's load)",
    }),
    status: ExecutionStatus,
    cancelRequested: z.boolean(),
    continuous: z
      .object({
        polls: z.number().int().openapi({ description: "Polls of the source so far" }),
        lastPollAt: Timestamp.nullable(),
        stopRequested: z
          .boolean()
          .openapi({ description: "A stop was asked for: the run ends at a batch boundary" }),
        stoppedBy: Actor.nullable(),
      })
      .nullable()
      .openapi({ description: "Continuous executions only; null otherwise" }),
    fileId: z.string().nullable().openapi({ description: "File loads: SHA-256 of the file's bytes (hex)" }),
    publisherToken: z
      .string()
      .nullable()
      .openapi({ description: "File loads: the upload batch's publisher token" }),
    triggeredBy: Actor,
    cancelledBy: Actor.nullable(),
    reasonCode: z.string().nullable().openapi({ example: "monthly_record_limit" }),
    reason: z.string().nullable(),
    createdAt: Timestamp,
    startedAt: Timestamp.nullable(),
    finishedAt: Timestamp.nullable(),
    durationMs: z.number().int().nullable().openapi({ description: "finished (or now) − started" }),
    recordsProcessed: z.number().int(),
    throughput: z.number().openapi({ description: "Records processed per second" }),
    totals: z.object(counters),
    entities: z.array(
      z.object({
        entity: z.string(),
        level: z.number().int(),
        status: z.string(),
        pass: z.number().int(),
        ...counters,
        percent: z.number(),
      }),
    ),
    attempts: z.number().int(),
  })
  .openapi("Execution");

/** Query of GET /executions/{id}/errors. */
export const ErrorsQuery = z.object({
  severity: z
    .enum(["error", "warning"])
    .optional()
    .openapi({ description: "Only errors or only warnings; absent: both" }),
  entity: EntityNameText.optional(),
  page: pageParam,
  pageSize: pageSizeParam(50, 500),
});

/** A page of an execution's errors and warnings. */
export const ExecutionErrors = z
  .object({
    errors: z.array(
      z.object({
        id: z.number().int(),
        at: Timestamp,
        severity: z.enum(["error", "warning"]),
        entity: z.string().nullable(),
        recordKey: z.array(z.string()).nullable(),
        field: z.string().nullable(),
        code: z.string().nullable(),
        message: z.string(),
      }),
    ),
    ...paging,
  })
  .openapi("ExecutionErrors");

/** Query of GET /executions/{id}/batches. */
export const BatchesQuery = z.object({
  entity: EntityNameText.optional(),
  page: pageParam,
  pageSize: pageSizeParam(50, 500),
});

/** A page of an execution's batches. */
export const ExecutionBatches = z
  .object({
    batches: z.array(
      z.object({
        id: uuid,
        entity: z.string(),
        pass: z.number().int(),
        seq: z.number().int(),
        state: z.enum(["Succeeded", "Failed", "Cancelled", "In Progress", "Skipped"]).openapi({
          description:
            "Failed: given up after its retries and it stopped the run; Skipped: given up and the run went on " +
            "(stopOnError=false). The records of either count as failed.",
        }),
        cursorFrom: z.array(z.string()).nullable(),
        cursorTo: z.array(z.string()).nullable(),
        rows: z.number().int(),
        created: z.number().int(),
        updated: z.number().int(),
        rejected: z.number().int().openapi({
          description: "Records of this batch the target rejected one by one: they count as skipped",
        }),
        attempts: z.number().int(),
        durationMs: z.number().int().nullable(),
        error: z.string().nullable(),
        startedAt: Timestamp,
        finishedAt: Timestamp.nullable(),
      }),
    ),
    ...paging,
  })
  .openapi("ExecutionBatches");

/** Query of GET /pipelines/{id}/executions. */
export const HistoryQuery = z.object({
  status: z
    .string()
    .max(MAX_STATUS_FILTER_LENGTH)
    .optional()
    .openapi({ description: "Comma list of statuses", example: "failed,cancelled" }),
  from: z
    .string()
    .max(MAX_DATE_PARAM_LENGTH)
    .optional()
    .openapi({ description: "ISO date or datetime; createdAt at or after it" }),
  to: z
    .string()
    .max(MAX_DATE_PARAM_LENGTH)
    .optional()
    .openapi({ description: "ISO date (whole day) or datetime; createdAt at or before it" }),
  page: pageParam,
  pageSize: pageSizeParam(20, 100),
});

/** A page of a pipeline's run history, newest first. */
export const ExecutionHistory = z
  .object({
    executions: z.array(
      z.object({
        id: uuid,
        pipelineToken: z.string(),
        status: ExecutionStatus,
        createdAt: Timestamp,
        startedAt: Timestamp.nullable(),
        finishedAt: Timestamp.nullable(),
        durationMs: z.number().int().nullable(),
        recordsProcessed: z.number().int(),
        triggeredBy: Actor,
      }),
    ),
    ...paging,
  })
  .openapi("ExecutionHistory");

/** Query of GET /executions/{id}/events. */
export const EventsQuery = z.object({
  lastEventId: z
    .string()
    .max(32)
    .optional()
    .openapi({ description: "Resume after this seq (like the Last-Event-ID header)" }),
  token: z
    .string()
    .max(1024)
    .optional()
    .openapi({ description: "API token, for EventSource (which cannot send headers)" }),
});

/** Query of GET /pipeline/status. */
export const PipelineStatusQuery = z.object({
  pipelinetoken: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .openapi({ description: "A run's pipeline token (`pt-…`): its stage entries" }),
  pipelinename: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .openapi({ description: "A pipeline's name: the summaries of its runs (jobs)" }),
  page: pageParam.openapi({
    description:
      "Page: 20 job summaries per page with pipelinename, 500 stage entries per page with pipelinetoken",
  }),
});

/** One stage entry of a job (seed 02). */
export const StageStatusEntry = z
  .object({
    id: z.number().int(),
    dateTime: z.string().openapi({ example: "2026-03-15T10:00:00Z" }),
    pipeline: z.string(),
    processName: z.string().openapi({ example: "StreamNotifier" }),
    publisherToken: z.null(),
    pipelineToken: z.string(),
    filename: z.string(),
    state: z.enum(["begin", "processing", "end", "error"]),
    code: z.string(),
    description: z.string(),
    epoch: z.number().int(),
  })
  .openapi("StageStatusEntry");

/** One job summary of a pipeline (seed 02). */
export const JobSummary = z
  .object({
    createdAtTimestamp: z.string(),
    createdAt: z.number().int(),
    updatedAt: z.number().int(),
    pipeline: z.string(),
    pipelineToken: z.string(),
    process: z.string().nullable(),
    startTime: z.string().nullable(),
    endTime: z.string().nullable(),
    totalTime: z.string().nullable().openapi({ example: "2m 5s" }),
    status: z.string().nullable().openapi({
      example: "end",
      description: "The last stage entry's state; `error` for a failed job, `cancelled` for a cancelled one",
    }),
  })
  .openapi("JobSummary");

/** The organisation's usage of the current month. */
export const Usage = z
  .object({
    month: z.string().openapi({ example: "2026-05" }),
    used: z.number().int(),
    reserved: z.number().int(),
    limit: z.number().int(),
    remaining: z.number().int(),
  })
  .openapi("Usage");
