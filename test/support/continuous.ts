/**
 * Helpers of the continuous-pipeline tests (`test/continuous-*.test.ts`):
 * a table shape with a cursor field, start / stop / reconcile through the
 * API, the stage log, waits on the target catching up with the source, and a
 * per-row comparison of source and target.
 */
import type postgres from "postgres";
import type { ApiClient, ApiResponse } from "./api-client.js";
import { waitForExecution } from "./dray-stack.js";
import { executionOf, type TableDigest, tableDigest } from "./executions.js";

/** Sleeps `ms`. */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * DDL of a continuous test table `name` (source and target alike): a bigint
 * key, two payload columns and `updated_at`, with the (updated_at, id) index
 * a continuous read by updated_at uses.
 */
export function continuousTable(name: string): string {
  return `
    create table ${name} (
      id bigint primary key,
      label text not null,
      qty int not null,
      updated_at timestamptz not null default now()
    );
    create index ${name}_cursor on ${name} (updated_at, id);
  `;
}

/** Rows `from`..`to` of a {@link continuousTable}, all with the one `updated_at` given (SQL literal). */
export function continuousRows(name: string, from: number, to: number, updatedAt: string): string {
  return `
    insert into ${name} (id, label, qty, updated_at)
      select g, 'item ' || g, g % 97, ${updatedAt}
      from generate_series(${from}, ${to}) g;
    analyze ${name};
  `;
}

/** Settings of a continuous pipeline; the rest of the body is passed as given. */
export interface ContinuousPipelineBody {
  name: string;
  sourceEnvironmentId: string;
  targetEnvironmentId: string;
  entities: string[];
  cursorField?: string | null;
  batchSize?: number;
  batchIntervalMs?: number;
  safetyLagMs?: number;
  maxFailedPolls?: number;
  reconcileEveryPolls?: number;
  [setting: string]: unknown;
}

/** Creates a continuous `merge` pipeline (201 expected) and returns its id. */
export async function createContinuousPipeline(
  api: ApiClient,
  body: ContinuousPipelineBody,
): Promise<string> {
  const r = await api.post("/api/v1/pipelines", { mode: "continuous", writeStrategy: "merge", ...body });
  if (r.status !== 201)
    throw new Error(`cannot create a continuous pipeline: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.id as string;
}

/** POST /pipelines/:id/start, answered as is. */
export function postStart(api: ApiClient, pipelineId: string): Promise<ApiResponse> {
  return api.post(`/api/v1/pipelines/${pipelineId}/start`);
}

/** POST /pipelines/:id/stop, answered as is. */
export function postStop(api: ApiClient, pipelineId: string): Promise<ApiResponse> {
  return api.post(`/api/v1/pipelines/${pipelineId}/stop`);
}

/** POST /pipelines/:id/reconcile, answered as is. */
export function postReconcile(api: ApiClient, pipelineId: string): Promise<ApiResponse> {
  return api.post(`/api/v1/pipelines/${pipelineId}/reconcile`);
}

/** Starts a continuous pipeline (202 expected) and returns `{ id, pipelineToken, status }`. */
export async function startContinuous(
  api: ApiClient,
  pipelineId: string,
): Promise<{ id: string; pipelineToken: string; status: string }> {
  const r = await postStart(api, pipelineId);
  if (r.status !== 202) throw new Error(`cannot start: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Stops a continuous pipeline (202 expected) and waits for its execution to end; returns the final view. */
export async function stopAndWait(
  api: ApiClient,
  pipelineId: string,
  executionId: string,
  timeoutMs = 60_000,
) {
  const r = await postStop(api, pipelineId);
  if (r.status !== 202) throw new Error(`cannot stop: ${r.status} ${JSON.stringify(r.body)}`);
  return waitForExecution(api, executionId, timeoutMs);
}

/** Stops the pipeline if it still runs (clean-up; errors ignored). */
export async function stopQuietly(api: ApiClient, pipelineId: string | undefined): Promise<void> {
  if (!pipelineId) return;
  await postStop(api, pipelineId).catch(() => undefined);
}

/** One stage log entry (GET /pipeline/status?pipelinetoken=…). */
export interface StageEntry {
  processName: string;
  state: string;
  code: string;
  description: string;
}

/** Every stage log entry of the execution with `pipelineToken`, oldest first (all pages). */
export async function stageLog(api: ApiClient, pipelineToken: string): Promise<StageEntry[]> {
  const out: StageEntry[] = [];
  for (let page = 1; ; page++) {
    const r = await api.get(`/api/v1/pipeline/status?pipelinetoken=${pipelineToken}&page=${page}`);
    if (r.status !== 200) throw new Error(`GET stage log: ${r.status} ${JSON.stringify(r.body)}`);
    const entries = r.body as StageEntry[];
    out.push(...entries);
    if (entries.length < 500) return out;
  }
}

/** The rows each "Poll N: X rows copied" entry of the stage log reports, in order. */
export function polledRows(entries: readonly StageEntry[]): number[] {
  return entries
    .filter((e) => e.code === "poll")
    .map((e) => {
      const words = e.description.split(" ");
      // "Poll", "N:", "X", "rows", "copied"
      return Number(words[2]);
    });
}

/**
 * Waits until `table` of the target has the same digest (row count and md5
 * of the ordered rows) as the source; returns it and the time it took.
 */
export async function waitForSameRows(
  source: postgres.Sql,
  target: postgres.Sql,
  table: string,
  timeoutMs = 30_000,
): Promise<{ digest: TableDigest; ms: number }> {
  const started = Date.now();
  const until = started + timeoutMs;
  let last: { source: TableDigest; target: TableDigest } | undefined;
  for (;;) {
    const [s, t] = await Promise.all([tableDigest(source, table), tableDigest(target, table)]);
    if (s.rows === t.rows && s.md5 === t.md5) return { digest: s, ms: Date.now() - started };
    last = { source: s, target: t };
    if (Date.now() > until)
      throw new Error(
        `target ${table} did not match the source within ${timeoutMs} ms: ${JSON.stringify(last)}`,
      );
    await sleep(50);
  }
}

/** What differs between the source and the target table, row by row (md5 of each row's text). */
export interface RowDifferences {
  /** Source keys the target lacks. */
  missing: string[];
  /** Target keys the source lacks. */
  extra: string[];
  /** Keys in both whose rows differ. */
  changed: string[];
  /** Target rows minus distinct target keys. */
  duplicates: number;
}

async function rowHashes(sql: postgres.Sql, table: string): Promise<Map<string, string>> {
  const rows = await sql.unsafe<{ id: string; h: string }[]>(
    `select t.id::text as id, md5(t::text) as h from ${table} t`,
  );
  return new Map(rows.map((r) => [r.id, r.h]));
}

/** Compares every row of `table` between source and target by key. */
export async function rowDifferences(
  source: postgres.Sql,
  target: postgres.Sql,
  table: string,
): Promise<RowDifferences> {
  const [s, t] = await Promise.all([rowHashes(source, table), rowHashes(target, table)]);
  const [dup] = await target.unsafe<{ n: number }[]>(
    `select (count(*) - count(distinct id))::int as n from ${table}`,
  );
  const missing: string[] = [];
  const changed: string[] = [];
  for (const [id, h] of s) {
    const other = t.get(id);
    if (other === undefined) missing.push(id);
    else if (other !== h) changed.push(id);
  }
  const extra = [...t.keys()].filter((id) => !s.has(id));
  return { missing, extra, changed, duplicates: dup!.n };
}

/** Waits until the continuous execution is in progress with at least `polls` polls; returns its view. */
export async function waitForPolls(api: ApiClient, executionId: string, polls: number, timeoutMs = 30_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const view = await executionOf(api, executionId);
    if (["completed", "failed", "cancelled"].includes(view.status))
      throw new Error(`execution ended (${view.status}: ${view.reason}) before ${polls} polls`);
    if (view.status === "in_progress" && (view.continuous?.polls ?? 0) >= polls) return view;
    if (Date.now() > until)
      throw new Error(
        `execution did not reach ${polls} polls within ${timeoutMs} ms: ${JSON.stringify(view)}`,
      );
    await sleep(50);
  }
}

/**
 * A deterministic pseudo-random generator (mulberry32) so a run of a
 * randomised test can be repeated from its printed seed.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
