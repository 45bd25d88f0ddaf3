import type { DrayClient, Pipeline } from "../client.js";
import { DrayApiError } from "../errors.js";
import { collect } from "../pages.js";
import { UsageError } from "./exit-codes.js";

/** An execution as `GET /executions/:id` answers it. */
export type FoundExecution = Awaited<ReturnType<DrayClient["executions"]["get"]>>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True for a pipeline token, `pt-<uuid>`. */
export function isPipelineToken(ref: string): boolean {
  return ref.startsWith("pt-");
}

function notFound(error: unknown): boolean {
  return error instanceof DrayApiError && error.status === 404;
}

/** A pipeline by id or by exact name. */
export async function resolvePipeline(client: DrayClient, ref: string): Promise<Pipeline> {
  if (UUID.test(ref)) return client.pipelines.get(ref);
  const pipelines = await collect(client.pipelines.listAll({ search: ref }));
  const match = pipelines.find((p) => p.name === ref);
  if (!match) throw new UsageError(`no pipeline named "${ref}"`, "see `dray pipeline list`");
  return match;
}

/** An environment by id or by exact name. */
export async function resolveEnvironment(client: DrayClient, ref: string) {
  if (UUID.test(ref)) return client.environments.get(ref);
  const environments = await collect(client.environments.listAll({ search: ref }));
  const match = environments.find((e) => e.name === ref);
  if (!match) throw new UsageError(`no environment named "${ref}"`, "see `dray env list`");
  return match;
}

/**
 * The execution a user means by `ref`: an execution id, a pipeline token (`pt-…`), or a
 * pipeline (name or id), meaning its running execution, else its latest one.
 *
 * @example
 * await resolveExecution(client, "pt-5f0c2b1e-8c3a-4d7e-9b1a-2f6d8e4c1a07");
 * await resolveExecution(client, "demo-crm");
 */
export async function resolveExecution(client: DrayClient, ref: string): Promise<FoundExecution> {
  if (isPipelineToken(ref)) return executionByToken(client, ref);
  if (UUID.test(ref)) {
    try {
      return await client.executions.get(ref);
    } catch (error) {
      if (!notFound(error)) throw error;
    }
    try {
      return await executionOfPipeline(client, await client.pipelines.get(ref));
    } catch (error) {
      if (!notFound(error)) throw error;
      throw new UsageError(`no execution or pipeline with id ${ref}`, "see `dray pipeline list`");
    }
  }
  return executionOfPipeline(client, await resolvePipeline(client, ref));
}

/**
 * The pipeline a user means by `ref`: a pipeline name or id, or an execution (id or token),
 * meaning its pipeline.
 */
export async function resolvePipelineOf(client: DrayClient, ref: string): Promise<Pipeline> {
  if (isPipelineToken(ref)) return client.pipelines.get((await executionByToken(client, ref)).pipelineId);
  if (UUID.test(ref)) {
    try {
      return await client.pipelines.get(ref);
    } catch (error) {
      if (!notFound(error)) throw error;
    }
    try {
      return await client.pipelines.get((await client.executions.get(ref)).pipelineId);
    } catch (error) {
      if (!notFound(error)) throw error;
      throw new UsageError(`no pipeline or execution with id ${ref}`, "see `dray pipeline list`");
    }
  }
  return resolvePipeline(client, ref);
}

/** The running execution of a pipeline (queued or in progress), else its latest. */
async function executionOfPipeline(client: DrayClient, pipeline: Pipeline): Promise<FoundExecution> {
  if (pipeline.running) {
    for (const status of ["in_progress", "queued"]) {
      const page = await client.pipelines.history(pipeline.id, { status, pageSize: 1 });
      const running = page.executions[0];
      if (running) return client.executions.get(running.id);
    }
  }
  if (!pipeline.lastExecution)
    throw new UsageError(
      `pipeline ${pipeline.name} has never run`,
      `start it with \`dray run ${pipeline.name}\``,
    );
  return client.executions.get(pipeline.lastExecution.id);
}

/**
 * The execution of a pipeline token: the latest run of a pipeline when it is that one
 * (the usual case), else through the status API (which names the token's pipeline) and that
 * pipeline's history.
 */
async function executionByToken(client: DrayClient, token: string): Promise<FoundExecution> {
  for await (const p of client.pipelines.listAll()) {
    if (p.lastExecution?.pipelineToken === token) return client.executions.get(p.lastExecution.id);
  }
  let entries: Awaited<ReturnType<DrayClient["status"]["byToken"]>>;
  try {
    entries = await client.status.byToken(token);
  } catch (error) {
    if (!notFound(error)) throw error;
    entries = [];
  }
  const name = entries[0]?.pipeline;
  if (name) {
    const pipeline = await resolvePipeline(client, name);
    for await (const run of client.pipelines.historyAll(pipeline.id, { pageSize: 100 })) {
      if (run.pipelineToken === token) return client.executions.get(run.id);
    }
  }
  throw new UsageError(`no execution with token ${token}`, "see `dray history <pipeline>`");
}
