/**
 * Helpers of the real-schema end-to-end tests (test/real-schemas-*.test.ts):
 * exact table digests that need no `id` column, row versions (xmin) to prove a
 * re-run rewrote nothing, a run from pipeline creation to its final view, the
 * plan and the stage log.
 */
import type postgres from "postgres";
import type { ApiClient } from "./api-client.js";
import { type DrayStack, waitForExecution } from "./dray-stack.js";
import { createPipeline, startRun } from "./executions.js";

/** Row count and md5 of a relation's rows ordered by their whole text. */
export interface RowsDigest {
  rows: number;
  md5: string | null;
}

/**
 * Count and `md5(string_agg(t::text, E'\n' order by t::text))` of `from`, a
 * relation as SQL (e.g. `payment`, `only item`), so tables without an `id`
 * and with duplicate rows compare exactly.
 */
export async function rowsDigest(sql: postgres.Sql, from: string): Promise<RowsDigest> {
  const [row] = await sql.unsafe<{ rows: number; md5: string | null }[]>(
    `select count(*)::int as rows, md5(string_agg(t::text, E'\\n' order by t::text)) as md5 from ${from} t`,
  );
  return { rows: row!.rows, md5: row!.md5 };
}

/** {@link rowsDigest} of several relations, by the SQL that names each. */
export async function rowsDigests(
  sql: postgres.Sql,
  froms: readonly string[],
): Promise<Record<string, RowsDigest>> {
  const out: Record<string, RowsDigest> = {};
  for (const from of froms) out[from] = await rowsDigest(sql, from);
  return out;
}

/** The row versions of a relation: `xmin::text` of every row, ordered by `orderBy`. */
export async function rowVersions(sql: postgres.Sql, from: string, orderBy: string): Promise<string[]> {
  const rows = await sql.unsafe<{ v: string }[]>(
    `select t.xmin::text as v from ${from} t order by ${orderBy}`,
  );
  return rows.map((r) => r.v);
}

/** Row versions of several relations, each `[from, orderBy]`. */
export async function rowVersionsOf(
  sql: postgres.Sql,
  relations: readonly (readonly [string, string])[],
): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const [from, orderBy] of relations) out[from] = await rowVersions(sql, from, orderBy);
  return out;
}

/** A finished run: its pipeline, ids and final execution view. */
export interface FinishedRun {
  pipelineId: string;
  id: string;
  pipelineToken: string;
  view: any;
  durationMs: number;
}

/** Starts a run of an existing pipeline and waits for its final view. */
export async function runAndWait(
  api: ApiClient,
  pipelineId: string,
  timeoutMs = 90_000,
): Promise<FinishedRun> {
  const started = Date.now();
  const run = await startRun(api, pipelineId);
  const view = await waitForExecution(api, run.id, timeoutMs);
  return { pipelineId, id: run.id, pipelineToken: run.pipelineToken, view, durationMs: Date.now() - started };
}

/** Creates a pipeline from `body` (source/target filled in) and runs it once. */
export async function createAndRun(
  stack: DrayStack,
  body: Record<string, unknown>,
  timeoutMs = 90_000,
): Promise<FinishedRun> {
  const pipelineId = await createPipeline(stack.api, body);
  return runAndWait(stack.api, pipelineId, timeoutMs);
}

/** GET /pipelines/{id}/plan (200 expected). */
export async function planOf(api: ApiClient, pipelineId: string): Promise<any> {
  const r = await api.get(`/api/v1/pipelines/${pipelineId}/plan`);
  if (r.status !== 200) throw new Error(`GET plan: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** The index of the plan level holding `entity`, or -1. */
export function levelIndex(plan: { levels: string[][] }, entity: string): number {
  return plan.levels.findIndex((level) => level.includes(entity));
}

/** The stage log of a run (GET /pipeline/status?pipelinetoken=, every page). */
export async function stageLog(api: ApiClient, pipelineToken: string): Promise<any[]> {
  const out: any[] = [];
  for (let page = 1; ; page++) {
    const r = await api.get(
      `/api/v1/pipeline/status?pipelinetoken=${encodeURIComponent(pipelineToken)}&page=${page}`,
    );
    if (r.status !== 200) throw new Error(`GET stage log: ${r.status} ${JSON.stringify(r.body)}`);
    out.push(...r.body);
    if (r.body.length < 500) return out;
  }
}

/** Every page of an execution's error log. */
export async function errorLog(api: ApiClient, executionId: string): Promise<any[]> {
  const out: any[] = [];
  for (let page = 1; ; page++) {
    const r = await api.get(`/api/v1/executions/${executionId}/errors?page=${page}&pageSize=500`);
    if (r.status !== 200) throw new Error(`GET errors: ${r.status} ${JSON.stringify(r.body)}`);
    out.push(...r.body.errors);
    if (out.length >= r.body.total || r.body.errors.length === 0) return out;
  }
}

/** A short account of a view, for assertion messages: status, reason and per-entity counters. */
export function describeRun(view: any): string {
  const entities = (view.entities ?? [])
    .map((e: any) => `${e.entity}:${e.status} c${e.created} u${e.updated} s${e.skipped} f${e.failed}`)
    .join("; ");
  return `${view.status} (${view.reasonCode ?? "-"}: ${view.reason ?? "-"}) [${entities}]`;
}
