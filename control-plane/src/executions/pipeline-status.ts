/**
 * The seed-compatible job status API (seed 02, GET /pipeline/status): stage
 * entries of one job by pipeline token, and job summaries of a pipeline by
 * name, 20 per page, newest first. Field names are exactly the seed's.
 */
import { DrayError } from "@dray/common";
import { and, asc, desc, eq, inArray, sql } from "drizzle-orm";
import { type FileJobStatus, type FileState, fileJobStatusOf } from "../files/queue-file-load.js";
import type { Db } from "../store/db.js";
import { executionLog, executions, pipelineFiles, pipelines } from "../store/schema.js";
import type { StageState } from "./execution-vocabulary.js";
import {
  formatTotalTime,
  isoSeconds,
  isoSecondsOrNull,
  type JobStatus,
  jobStatusOf,
} from "./status-format.js";

/** Job summaries per page of the by-name query. */
export const STATUS_PAGE_SIZE = 20;

/** One stage entry (seed 02, query by pipeline token). */
export interface StageStatusEntry {
  id: number;
  dateTime: string;
  pipeline: string;
  processName: string;
  /** The upload batch of a file load; null for other jobs. */
  publisherToken: string | null;
  pipelineToken: string;
  filename: string;
  state: StageState;
  code: string;
  description: string;
  epoch: number;
}

/** One job summary (seed 02, query by pipeline name). */
export interface JobSummary {
  createdAtTimestamp: string;
  createdAt: number;
  updatedAt: number;
  pipeline: string;
  pipelineToken: string;
  process: string | null;
  startTime: string | null;
  endTime: string | null;
  totalTime: string | null;
  /** The last stage entry's state; `error` for a failed job, `cancelled` for a cancelled one. */
  status: JobStatus | null;
}

/** Stage entries per page of `GET /pipeline/status?pipelinetoken=` (`page` selects further ones). */
export const STAGE_PAGE_SIZE = 500;

/**
 * The stage entries of the organisation's job with this pipeline token, oldest
 * first, {@link STAGE_PAGE_SIZE} per `page`; `not_found` for an unknown token or
 * one of another organisation.
 */
export async function stageStatusByToken(
  db: Db,
  organisationId: string,
  pipelineToken: string,
  page = 1,
): Promise<StageStatusEntry[]> {
  const [job] = await db
    .select({
      id: executions.id,
      pipeline: pipelines.name,
      publisherToken: executions.publisherToken,
      // A file load's file, as frozen when it was queued (files/queue-file-load.ts).
      filename: sql<string | null>`${executions.snapshot}->'file'->>'filename'`,
    })
    .from(executions)
    .innerJoin(pipelines, eq(pipelines.id, executions.pipelineId))
    .where(and(eq(executions.pipelineToken, pipelineToken), eq(executions.organisationId, organisationId)))
    .limit(1);
  if (!job) throw new DrayError("not_found", `no job has the pipeline token "${pipelineToken}"`);
  const entries = await db
    .select()
    .from(executionLog)
    .where(eq(executionLog.executionId, job.id))
    .orderBy(asc(executionLog.id))
    .limit(STAGE_PAGE_SIZE)
    .offset((page - 1) * STAGE_PAGE_SIZE);
  return entries.map((e) => ({
    id: e.id,
    dateTime: isoSeconds(e.at),
    pipeline: job.pipeline,
    processName: e.processName,
    publisherToken: job.publisherToken,
    pipelineToken,
    // A file load's entries name its file; other jobs' name the entity, or the pipeline.
    filename: job.filename ?? e.entity ?? job.pipeline,
    state: e.state,
    code: e.code,
    description: e.description,
    epoch: e.at.getTime(),
  }));
}

/**
 * Summaries of the jobs of the organisation's pipeline named `name`, newest
 * first, {@link STATUS_PAGE_SIZE} per 1-based page; [] for an unknown name.
 */
export async function jobSummariesByName(
  db: Db,
  organisationId: string,
  name: string,
  page: number,
): Promise<JobSummary[]> {
  const [pipeline] = await db
    .select({ id: pipelines.id, name: pipelines.name })
    .from(pipelines)
    .where(and(eq(pipelines.organisationId, organisationId), eq(pipelines.name, name)))
    .limit(1);
  if (!pipeline) return [];
  const jobs = await db
    .select()
    .from(executions)
    .where(eq(executions.pipelineId, pipeline.id))
    .orderBy(desc(executions.createdAt), desc(executions.id))
    .limit(STATUS_PAGE_SIZE)
    .offset((page - 1) * STATUS_PAGE_SIZE);
  if (jobs.length === 0) return [];
  const last = await db
    .selectDistinctOn([executionLog.executionId], {
      executionId: executionLog.executionId,
      at: executionLog.at,
      processName: executionLog.processName,
      state: executionLog.state,
    })
    .from(executionLog)
    .where(
      inArray(
        executionLog.executionId,
        jobs.map((j) => j.id),
      ),
    )
    .orderBy(executionLog.executionId, desc(executionLog.id));
  const lastOf = new Map(last.map((l) => [l.executionId, l]));
  return jobs.map((job) => {
    const entry = lastOf.get(job.id);
    const updatedAt = Math.max(job.updatedAt.getTime(), entry?.at.getTime() ?? 0);
    const from = job.startedAt ?? job.createdAt;
    return {
      createdAtTimestamp: isoSeconds(job.createdAt),
      createdAt: job.createdAt.getTime(),
      updatedAt,
      pipeline: pipeline.name,
      pipelineToken: job.pipelineToken,
      process: entry?.processName ?? null,
      startTime: isoSecondsOrNull(job.startedAt),
      endTime: isoSecondsOrNull(job.finishedAt),
      totalTime: job.finishedAt ? formatTotalTime(job.finishedAt.getTime() - from.getTime()) : null,
      status: jobStatusOf(job.status, entry?.state ?? null),
    };
  });
}

/** One file of an upload batch (`GET /pipeline/status?publishertoken=`). */
export interface PublisherFileStatus {
  filename: string;
  fileId: string;
  pipelineToken: string;
  /** INITIALIZED (queued), PROCESSING (in progress) or COMPLETED (ended). */
  status: FileJobStatus;
  state: FileState;
  /** Why the file was skipped; null otherwise. */
  error: string | null;
}

/** The files of one upload batch and whether all of them are done. */
export interface PublisherStatus {
  publisherToken: string;
  /** True when every file's load has ended (status COMPLETED). */
  allDone: boolean;
  files: PublisherFileStatus[];
}

/** Most files listed for one publisher token. */
export const PUBLISHER_FILES_LIMIT = 10_000;

/**
 * The files the organisation received with this publisher token, oldest
 * first, with their load status; `not_found` when no file has it.
 */
export async function publisherStatus(
  db: Db,
  organisationId: string,
  publisherToken: string,
): Promise<PublisherStatus> {
  const rows = await db
    .select({ file: pipelineFiles, executionStatus: executions.status })
    .from(pipelineFiles)
    .leftJoin(executions, eq(executions.id, pipelineFiles.executionId))
    .where(
      and(eq(pipelineFiles.organisationId, organisationId), eq(pipelineFiles.publisherToken, publisherToken)),
    )
    .orderBy(asc(pipelineFiles.uploadedAt), asc(pipelineFiles.fileId))
    .limit(PUBLISHER_FILES_LIMIT);
  if (rows.length === 0)
    throw new DrayError("not_found", `no file has the publisher token "${publisherToken}"`);
  const files = rows.map(({ file, executionStatus }) => ({
    filename: file.filename,
    fileId: file.fileId,
    pipelineToken: file.pipelineToken,
    status: fileJobStatusOf(executionStatus, file.state),
    state: file.state,
    error: file.error,
  }));
  return { publisherToken, allDone: files.every((f) => f.status === "COMPLETED"), files };
}
