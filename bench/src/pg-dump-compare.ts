/**
 * `pnpm bench --compare pg-restore` (issue 10): on the same generated data, in
 * the same run, times `pg_dump --data-only -Fc | pg_restore --data-only
 * --disable-triggers` into an empty copy of the schema, then a Dray merge of
 * every table into another empty copy, checks both targets equal the source,
 * and breaks Dray's time down from its stage log and batches.
 */
import { spawn } from "node:child_process";
import { mkdir } from "node:fs/promises";
import type { ApiClient } from "../../test/support/api-client.js";
import { createTestDatabase, type TestDatabase } from "../../test/support/databases.js";
import { readEventStream } from "../../test/support/executions.js";
import { readProfiles } from "./cpu-profile.js";
import { PG_GROUPS, type PhaseStats, ProcessSampler, waitForQuiet } from "./proc-stats.js";
import {
  differences,
  fingerprintShape,
  loadShape,
  type Shape,
  type ShapeDefinition,
  type ShapeOptions,
  sequenceStates,
  shapeDefinition,
} from "./real-schema-dataset.js";
import type { Table } from "./report.js";
import { type BenchStack, startBenchStack } from "./stack.js";

/** Dray's targets against pg_dump | pg_restore (issue 10): at most this many times its time. */
export const TARGET_RATIO: Record<Shape, number> = { small: 1.5, large: 1.0 };

export interface CompareOptions extends ShapeOptions {
  baseUrl: string;
  batchSize: number | undefined;
  /** Profile the Dray processes (--cpu-prof) into this directory, per shape; print their top functions. */
  cpuProfileDir?: ((shape: Shape) => string) | undefined;
  /** The Dray pipeline's loadOrder; undefined: Dray's default. */
  loadOrder: "dependencies" | "parallel" | undefined;
  keep: boolean;
  timeoutMs: number;
  quietWaitMs: number;
  /** Times each copy is timed (targets emptied in between); the fastest counts. */
  repeat: number;
  /** bench/logs/<run>-<shape> */
  logPrefix: (shape: Shape) => string;
  log: (line: string) => void;
  onInterrupt: (cleanup: () => Promise<void>) => () => void;
}

/** One stage-log entry, as GET /pipeline/status?pipelinetoken= gives it. */
export interface StageEntry {
  epoch: number;
  processName: string;
  state: string;
  code: string;
  filename: string;
  description: string;
}

/** One batch, as GET /executions/{id}/batches gives it. */
export interface BatchEntry {
  entity: string;
  pass: number;
  seq: number;
  state: string;
  rows: number;
  durationMs: number | null;
  startedAt: string;
  finishedAt: string | null;
}

/** One Dray run, with what the API says about it. */
export interface DrayCompareRun {
  /** From the POST of the execution to the poll that saw it end. */
  ms: number;
  status: string;
  /** Bench clock (epoch ms) of the POST. */
  requestedAt: number;
  /** Bench clock (epoch ms) of the poll that saw the end. */
  seenAt: number;
  view: Record<string, unknown>;
  /** CPU by process during the run (set by the caller). */
  stats?: PhaseStats;
  stages: StageEntry[];
  batches: BatchEntry[];
  error?: string;
}

export interface CompareResult {
  shape: Shape;
  describe: string;
  rows: number;
  tables: number;
  generateMs: number;
  /** Fastest pg_dump | pg_restore, and every repeat. */
  pgMs?: number;
  pgAllMs: number[];
  pgCheck?: string;
  pgSequences?: string;
  /** The fastest completed Dray run (or the failed one), and every repeat's time. */
  dray?: DrayCompareRun;
  /** Every Dray run in order (the first one runs on freshly started processes: cold). */
  drayRuns: DrayCompareRun[];
  drayAllMs: number[];
  drayCheck?: string;
  draySequences?: string;
  pipeline?: { batchSize: number; batchBytes: number; entityConcurrency: number; loadOrder?: string };
  /** CPU during the fastest pg_dump | pg_restore (each Dray run has its own). */
  pgStats?: PhaseStats;
  /** Cores busy (by anything) when each timed copy started, after the wait for quiet: above ~0.25 the figures are disturbed. */
  busyBefore: { pg: number[]; dray: number[] };
  databases: string[];
  logs: string[];
  error?: string;
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Runs a bash pipeline (pipefail); resolves with its elapsed ms, rejects with its stderr. */
function shell(command: string): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-o", "pipefail", "-c", command], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
    });
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      if (code === 0) resolve(performance.now() - started);
      else reject(new Error(`${command}\nexited with ${code ?? signal}: ${stderr.trim()}`));
    });
  });
}

/** The timed pipeline, as it is run and shown. */
export function pgRestoreCommand(sourceUrl: string, targetUrl: string): string {
  return `pg_dump --data-only -Fc -d ${quote(sourceUrl)} | pg_restore --data-only --disable-triggers -d ${quote(targetUrl)}`;
}

/** Copies the source's schema, without rows, into the target. */
function copySchema(sourceUrl: string, targetUrl: string): Promise<number> {
  return shell(
    `pg_dump --schema-only --no-owner --no-privileges -d ${quote(sourceUrl)} | psql -X -q -v ON_ERROR_STOP=1 -d ${quote(targetUrl)}`,
  );
}

/** Throws, saying what to install, when pg_dump, pg_restore or psql is missing. */
export async function checkClientTools(): Promise<string> {
  try {
    await shell("command -v pg_dump && command -v pg_restore && command -v psql");
  } catch {
    throw new Error(
      "--compare pg-restore needs pg_dump, pg_restore and psql on the PATH (Debian: apt-get install postgresql-client)",
    );
  }
  const version = await new Promise<string>((resolve) => {
    const child = spawn("pg_dump", ["--version"], { stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString("utf8");
    });
    child.on("exit", () => resolve(out.trim()));
    child.on("error", () => resolve("pg_dump (version unknown)"));
  });
  return version;
}

/** Empties every table of the shape and resets its sequences, so that a repeat starts from an empty copy. */
async function emptyTarget(sql: TestDatabase["sql"], def: ShapeDefinition): Promise<void> {
  await sql.unsafe(`truncate table ${def.tables.map((t) => t.entity).join(", ")} restart identity`);
}

async function verify(
  def: ShapeDefinition,
  source: TestDatabase,
  target: TestDatabase,
): Promise<{ check: string | undefined; sequences: string | undefined }> {
  const [a, b, sa, sb] = await Promise.all([
    fingerprintShape(source.sql, def),
    fingerprintShape(target.sql, def),
    sequenceStates(source.sql),
    sequenceStates(target.sql),
  ]);
  const seqDiff = Object.keys(sa)
    .filter((name) => sa[name] !== sb[name])
    .map((name) => `${name} ${sb[name] ?? "missing"} (source ${sa[name]})`);
  return { check: differences(def, a, b), sequences: seqDiff.length ? seqDiff.join(", ") : undefined };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function pages<T>(api: ApiClient, path: string, key: string, pageSize: number): Promise<T[]> {
  const out: T[] = [];
  for (let page = 1; page < 1000; page++) {
    const sep = path.includes("?") ? "&" : "?";
    const r = await api.get(`${path}${sep}page=${page}&pageSize=${pageSize}`);
    if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    const items = (Array.isArray(r.body) ? r.body : r.body[key]) as T[];
    out.push(...items);
    if (items.length < pageSize) break;
  }
  return out;
}

/** The stage log of a job, oldest first (500 per page). */
async function stageLog(api: ApiClient, pipelineToken: string): Promise<StageEntry[]> {
  const out: StageEntry[] = [];
  for (let page = 1; page < 100; page++) {
    const r = await api.get(
      `/api/v1/pipeline/status?pipelinetoken=${encodeURIComponent(pipelineToken)}&page=${page}`,
    );
    if (r.status !== 200) throw new Error(`GET /pipeline/status: ${r.status} ${JSON.stringify(r.body)}`);
    const items = r.body as StageEntry[];
    out.push(...items);
    if (items.length < 500) break;
  }
  return out;
}

/**
 * Starts the pipeline and waits until the execution ends, as `dray run --watch`
 * learns it: from the execution's event stream, which the control plane ends
 * with the final status. Should the stream end early or fail, it polls (every
 * 50 ms). Never throws for a failed run.
 */
async function runDray(stack: BenchStack, pipelineId: string, timeoutMs: number): Promise<DrayCompareRun> {
  const api = stack.api;
  const requestedAt = Date.now();
  const started = performance.now();
  const run = await api.post(`/api/v1/pipelines/${pipelineId}/executions`);
  if (run.status !== 202)
    throw new Error(`POST /pipelines/${pipelineId}/executions: ${run.status} ${JSON.stringify(run.body)}`);
  const id = run.body.id as string;
  const final = ["completed", "failed", "cancelled"];
  const stream = await readEventStream(`${stack.cp.httpUrl}/api/v1/executions/${id}/events`, stack.apiToken, {
    timeoutMs,
  }).catch(() => undefined);
  const endedWith = (e: { event: string | undefined; data: string }) => {
    if (e.event !== "execution.status") return false;
    try {
      return final.includes((JSON.parse(e.data) as { status?: string }).status ?? "");
    } catch {
      return false;
    }
  };
  // Only a stream that ended on the final status tells when the run ended.
  const streamedEnd = stream?.ended === true && stream.events.some(endedWith) ? performance.now() : undefined;
  let view: Record<string, unknown> & { status: string };
  for (;;) {
    const r = await api.get(`/api/v1/executions/${id}`);
    view = r.body;
    if (final.includes(view.status)) break;
    if (performance.now() - started > timeoutMs) {
      await api.post(`/api/v1/executions/${id}/cancel`, { reason: "bench timeout" }).catch(() => {});
      view = { ...view, status: "timed out" };
      break;
    }
    await sleep(50);
  }
  const ms = (streamedEnd ?? performance.now()) - started;
  const seenAt = requestedAt + Math.round(ms);
  const stages = await stageLog(api, run.body.pipelineToken).catch(() => []);
  const batches = await pages<BatchEntry>(api, `/api/v1/executions/${id}/batches`, "batches", 500).catch(
    () => [],
  );
  let error: string | undefined;
  if (view.status !== "completed") {
    const errors = await api.get(`/api/v1/executions/${id}/errors?pageSize=20`).catch(() => undefined);
    error = `execution ${id} ended ${view.status}: ${JSON.stringify({ reasonCode: view.reasonCode, reason: view.reason })}\nerrors: ${JSON.stringify(errors?.body)}`;
  }
  return { ms, status: view.status, requestedAt, seenAt, view, stages, batches, ...(error ? { error } : {}) };
}

export async function runCompareShape(shape: Shape, o: CompareOptions): Promise<CompareResult> {
  const def = shapeDefinition(shape, o);
  const result: CompareResult = {
    shape,
    describe: def.describe,
    rows: def.tables.reduce((s, t) => s + t.rows, 0),
    tables: def.tables.length,
    generateMs: 0,
    pgAllMs: [],
    drayAllMs: [],
    drayRuns: [],
    busyBefore: { pg: [], dray: [] },
    databases: [],
    logs: [],
  };
  let source: TestDatabase | undefined;
  let pgTarget: TestDatabase | undefined;
  let drayTarget: TestDatabase | undefined;
  let stack: BenchStack | undefined;
  let closed = false;
  const cleanup = async () => {
    if (closed) return;
    closed = true;
    if (stack) await stack.close({ keep: o.keep }).catch(() => {});
    for (const db of [source, pgTarget, drayTarget]) {
      if (!db) continue;
      if (o.keep) await db.sql.end({ timeout: 1 }).catch(() => {});
      else await db.drop().catch(() => {});
    }
  };
  const unregister = o.onInterrupt(cleanup);
  const tag = `[${shape}]`;
  const repeatTag = (i: number) => (o.repeat > 1 ? ` (${i}/${o.repeat})` : "");
  const quiet = async (what: string, into: number[]) => {
    const q = await waitForQuiet(Math.max(o.quietWaitMs, 1000));
    into.push(q.cores);
    if (q.waitedMs > 1500)
      o.log(
        `${tag} waited ${(q.waitedMs / 1000).toFixed(0)} s for the machine to go quiet before ${what} (${q.cores < 0.25 ? "quiet" : `still ${q.cores.toFixed(2)} cores busy`})`,
      );
  };
  try {
    source = await createTestDatabase(o.baseUrl, "dray_bench_src");
    pgTarget = await createTestDatabase(o.baseUrl, "dray_bench_dst");
    drayTarget = await createTestDatabase(o.baseUrl, "dray_bench_dst");
    result.databases.push(source.name, pgTarget.name, drayTarget.name);
    o.log(`${tag} generating: ${def.describe}`);
    const t = performance.now();
    await loadShape(source.sql, def);
    await copySchema(source.url, pgTarget.url);
    await copySchema(source.url, drayTarget.url);
    result.generateMs = performance.now() - t;
    o.log(
      `${tag} generated in ${(result.generateMs / 1000).toFixed(1)} s; schema copied to two empty targets`,
    );

    // 1. pg_dump | pg_restore.
    for (let i = 1; i <= o.repeat; i++) {
      if (i > 1) await emptyTarget(pgTarget.sql, def);
      await source.sql.unsafe("checkpoint");
      await quiet(`pg_dump | pg_restore${repeatTag(i)}`, result.busyBefore.pg);
      const sampler = new ProcessSampler(
        {},
        { [source.name]: "pg source db", [pgTarget.name]: "pg target db" },
      );
      sampler.begin("pg");
      let ms: number;
      try {
        ms = await shell(pgRestoreCommand(source.url, pgTarget.url));
      } finally {
        sampler.end();
      }
      result.pgAllMs.push(ms);
      if (result.pgMs === undefined || ms < result.pgMs) {
        result.pgMs = ms;
        result.pgStats = sampler.phases.get("pg");
      }
      const { check, sequences } = await verify(def, source, pgTarget);
      // Any repeat that went wrong is reported.
      result.pgCheck ??= check;
      result.pgSequences ??= sequences;
      o.log(
        `${tag} pg_dump | pg_restore: ${(ms / 1000).toFixed(2)} s${repeatTag(i)}; ${check ? `TARGET DIFFERS: ${check}` : "target equals source"}${sequences ? `; sequences differ: ${sequences}` : ""}`,
      );
    }

    // 2. Dray.
    const profileDir = o.cpuProfileDir?.(shape);
    if (profileDir) await mkdir(profileDir, { recursive: true });
    stack = await startBenchStack({
      baseUrl: o.baseUrl,
      logPrefix: o.logPrefix(shape),
      ...(profileDir ? { cpuProfileDir: profileDir } : {}),
    });
    result.databases.push(stack.store.name);
    const src = await stack.addEnvironment("source", source.url);
    const dst = await stack.addEnvironment("target", drayTarget.url);
    const pipeline = await stack.api.post("/api/v1/pipelines", {
      name: `bench-compare-${shape}`,
      sourceEnvironmentId: src.id,
      targetEnvironmentId: dst.id,
      writeStrategy: "merge",
      entities: def.tables.map((t) => t.entity),
      ...(o.batchSize !== undefined ? { batchSize: o.batchSize } : {}),
      ...(o.loadOrder !== undefined ? { loadOrder: o.loadOrder } : {}),
    });
    if (pipeline.status !== 201)
      throw new Error(`cannot create the pipeline: ${JSON.stringify(pipeline.body)}`);
    result.pipeline = {
      batchSize: pipeline.body.batchSize,
      batchBytes: pipeline.body.batchBytes,
      entityConcurrency: pipeline.body.entityConcurrency,
      loadOrder: pipeline.body.loadOrder,
    };
    for (let i = 1; i <= o.repeat; i++) {
      if (i > 1) await emptyTarget(drayTarget.sql, def);
      await source.sql.unsafe("checkpoint");
      await quiet(`the Dray merge${repeatTag(i)}`, result.busyBefore.dray);
      const pids = stack.pids();
      const sampler = new ProcessSampler(
        {
          "control-plane": pids["control-plane"]!,
          "source-agent": pids["source-agent"]!,
          "target-agent": pids["target-agent"]!,
        },
        {
          [source.name]: "pg source db",
          [drayTarget.name]: "pg target db",
          [stack.store.name]: "pg store db",
        },
      );
      sampler.begin("dray");
      let run: DrayCompareRun;
      try {
        run = await runDray(stack, pipeline.body.id, o.timeoutMs);
      } finally {
        sampler.end();
      }
      const stats = sampler.phases.get("dray");
      run.stats = stats;
      result.drayAllMs.push(run.ms);
      result.drayRuns.push(run);
      if (run.error) {
        result.dray = run;
        result.error = run.error;
        o.log(`${tag} Dray merge FAILED after ${(run.ms / 1000).toFixed(2)} s${repeatTag(i)}: ${run.error}`);
        break;
      }
      const { check, sequences } = await verify(def, source, drayTarget);
      result.drayCheck ??= check;
      result.draySequences ??= sequences;
      if (!result.dray || run.ms < result.dray.ms) {
        result.dray = run;
      }
      o.log(
        `${tag} Dray merge: ${(run.ms / 1000).toFixed(2)} s${repeatTag(i)}; ${check ? `TARGET DIFFERS: ${check}` : "target equals source"}${sequences ? `; sequences differ: ${sequences}` : ""}`,
      );
    }
  } catch (error) {
    result.error = error instanceof Error ? (error.stack ?? error.message) : String(error);
    o.log(`${tag} FAILED: ${result.error}`);
  } finally {
    const pids = stack?.pids() ?? {};
    const names = Object.keys(pids);
    await cleanup();
    unregister();
    result.logs = names.map((name) => `${o.logPrefix(shape)}-${name}.log`);
    const profileDir = o.cpuProfileDir?.(shape);
    if (profileDir) {
      const byPid = new Map(Object.entries(pids).map(([name, pid]) => [pid, name]));
      for (const p of await readProfiles(profileDir, 15)) {
        o.log(
          `${tag} CPU profile of ${byPid.get(p.pid) ?? `pid ${p.pid}`} (busy ${Math.round(p.busyMs)} ms):`,
        );
        for (const t of p.top) o.log(`    ${JSON.stringify(t)}`);
      }
    }
  }
  if (o.keep && result.databases.length) o.log(`${tag} kept databases: ${result.databases.join(", ")}`);
  return result;
}

// ---------------------------------------------------------------- report

const secs = (ms: number | undefined) => (ms === undefined ? "–" : (ms / 1000).toFixed(2));
const busy = (cores: number[]) => (cores.length ? cores.map((c) => c.toFixed(2)).join(", ") : "–");
const at = (iso: unknown) => (typeof iso === "string" ? Date.parse(iso) : Number.NaN);

/** Per dependency level (pass 1), then the back-fill pass: first loader begin → last loader end. */
function levelSpans(run: DrayCompareRun): { name: string; ms: number | undefined }[] {
  const levels = new Map(
    ((run.view.entities ?? []) as { entity: string; level: number }[]).map((v) => [v.entity, v.level]),
  );
  const groups = new Map<string, { entities: Set<string>; begin: number; end: number }>();
  for (const s of run.stages) {
    if (!s.processName.endsWith("Loader") || (s.state !== "begin" && s.state !== "end")) continue;
    const pass2 = s.description.startsWith("Back-filling") || s.description.endsWith("back-filled");
    const key = pass2 ? "back-fill pass" : `level ${levels.get(s.filename) ?? "?"}`;
    const g = groups.get(key) ?? { entities: new Set<string>(), begin: s.epoch, end: s.epoch };
    g.entities.add(s.filename);
    g.begin = Math.min(g.begin, s.epoch);
    g.end = Math.max(g.end, s.epoch);
    groups.set(key, g);
  }
  return [...groups.entries()].map(([key, g]) => ({
    name: `  ${key} (${g.entities.size} entit${g.entities.size === 1 ? "y" : "ies"}): first begin → last end`,
    ms: g.end - g.begin,
  }));
}

/** Dray's time split by what the API records (control-plane clock, same machine as the bench). */
export function phases(run: DrayCompareRun): { name: string; ms: number | undefined }[] {
  const created = at(run.view.createdAt);
  const started = at(run.view.startedAt);
  const finished = at(run.view.finishedAt);
  const preflightEnd = run.stages.find((s) => s.processName === "StreamNotifier" && s.state === "end")?.epoch;
  const runnerBegin = run.stages.find((s) => s.processName === "JobRunner" && s.state === "begin")?.epoch;
  const runnerEnd = run.stages.find((s) => s.processName === "JobRunner" && s.state === "end")?.epoch;
  const batchStarts = run.batches.map((b) => at(b.startedAt)).filter((n) => !Number.isNaN(n));
  const batchEnds = run.batches.map((b) => at(b.finishedAt)).filter((n) => !Number.isNaN(n));
  const firstBatch = batchStarts.length ? Math.min(...batchStarts) : undefined;
  const lastBatch = batchEnds.length ? Math.max(...batchEnds) : undefined;
  const d = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined || Number.isNaN(a) || Number.isNaN(b) ? undefined : b - a;
  const batchWork = run.batches.reduce((s, b) => s + (b.durationMs ?? 0), 0);
  return [
    { name: "request → created (API)", ms: d(run.requestedAt, created) },
    { name: "created → started (claimed by the executor)", ms: d(created, started) },
    { name: "started → preflight passed", ms: d(started, preflightEnd) },
    { name: "preflight passed → runner begin (target locks)", ms: d(preflightEnd, runnerBegin) },
    { name: "runner begin → first batch started", ms: d(runnerBegin, firstBatch) },
    { name: "request → first batch started (time to first batch)", ms: d(run.requestedAt, firstBatch) },
    { name: "first batch started → last batch finished", ms: d(firstBatch, lastBatch) },
    { name: `  of which batches' own durations (sum over ${run.batches.length} batches)`, ms: batchWork },
    ...levelSpans(run),
    { name: "last batch finished → runner end", ms: d(lastBatch, runnerEnd) },
    { name: "runner end → finished", ms: d(runnerEnd, finished) },
    { name: "finished → seen by the bench (event stream)", ms: d(finished, run.seenAt) },
    { name: "total, request → seen", ms: run.ms },
  ];
}

export function comparisonTable(results: CompareResult[]): Table {
  return {
    title:
      "pg_dump --data-only -Fc | pg_restore --data-only --disable-triggers against a Dray merge, same data, empty identical targets",
    head: [
      "shape",
      "rows",
      "tables",
      "pg_dump|pg_restore s",
      "Dray s",
      "Dray/pg",
      "target",
      "Dray to first batch s",
      "Dray server s",
      "batches",
      "targets equal source (pg / Dray)",
      "sequences equal (pg / Dray)",
      "cores busy before (pg / Dray)",
    ],
    align: ["l", "r", "r", "r", "r", "r", "r", "r", "r", "r", "l", "l", "l"],
    rows: results.map((r) => {
      const ok = r.dray && !r.dray.error;
      const first = r.dray
        ? phases(r.dray).find((p) => p.name.startsWith("request → first batch"))?.ms
        : undefined;
      const ratio = ok && r.pgMs ? r.dray!.ms / r.pgMs : undefined;
      return [
        r.shape,
        r.rows.toLocaleString("en"),
        String(r.tables),
        `${secs(r.pgMs)}${r.pgAllMs.length > 1 ? ` (${r.pgAllMs.map((m) => secs(m)).join(", ")})` : ""}`,
        ok
          ? `${secs(r.dray!.ms)}${r.drayAllMs.length > 1 ? ` (${r.drayAllMs.map((m) => secs(m)).join(", ")})` : ""}`
          : r.dray
            ? `FAILED (${r.dray.status}, ${secs(r.dray.ms)})`
            : "FAILED",
        ratio === undefined ? "–" : `${ratio.toFixed(2)}×`,
        `≤ ${TARGET_RATIO[r.shape].toFixed(1)}×${ratio === undefined ? "" : ratio <= TARGET_RATIO[r.shape] ? " met" : " missed"}`,
        secs(first),
        r.dray?.view.durationMs === undefined ? "–" : secs(r.dray.view.durationMs as number),
        r.dray ? String(r.dray.batches.length) : "–",
        `${r.pgMs === undefined ? "–" : r.pgCheck ? "NO" : "yes"} / ${!ok ? "–" : r.drayCheck ? "NO" : "yes"}`,
        `${r.pgMs === undefined ? "–" : r.pgSequences ? "NO" : "yes"} / ${!ok ? "–" : r.draySequences ? "NO" : "yes"}`,
        `${busy(r.busyBefore.pg)} / ${busy(r.busyBefore.dray)}`,
      ];
    }),
  };
}

export function phaseTable(r: CompareResult): Table | undefined {
  if (r.drayRuns.length === 0) return undefined;
  const columns = r.drayRuns.map((run) => phases(run));
  const fastest = r.dray ? r.drayRuns.indexOf(r.dray) : -1;
  return {
    title: `Dray ${r.shape}: where the time goes, per run (run 1 on freshly started processes; API timestamps, control plane and bench share the clock)`,
    head: [
      "phase",
      ...r.drayRuns.map(
        (_, i) =>
          `run ${i + 1}${i === 0 ? " (cold)" : ""}${i === fastest && r.drayRuns.length > 1 ? " fastest" : ""} s`,
      ),
    ],
    align: ["l", ...r.drayRuns.map(() => "r" as const)],
    rows: [...new Set(columns.flatMap((c) => c.map((p) => p.name)))].map((name) => [
      name,
      ...columns.map((c) => secs(c.find((p) => p.name === name)?.ms)),
    ]),
  };
}

/**
 * The stage log with offsets from the request, and per entity: its begin and
 * end entries, its batches and the time before its first batch and after its last.
 */
export function timelineTable(r: CompareResult, run: DrayCompareRun, label: string): Table {
  const t0 = run.requestedAt;
  const created = at(run.view.createdAt);
  const rows: string[][] = [];
  const ms = (n: number) => `+${((n - t0) / 1000).toFixed(3)}`;
  const events: { at: number; row: string[] }[] = [];
  if (!Number.isNaN(created))
    events.push({ at: created, row: [ms(created), "(execution)", "", "created", ""] });
  const started = at(run.view.startedAt);
  if (!Number.isNaN(started))
    events.push({ at: started, row: [ms(started), "(execution)", "", "started", ""] });
  for (const s of run.stages)
    events.push({
      at: s.epoch,
      row: [
        ms(s.epoch),
        s.processName,
        s.filename === `bench-compare-${r.shape}` ? "" : s.filename,
        `${s.state}/${s.code}`,
        s.description,
      ],
    });
  for (const b of run.batches) {
    const start = at(b.startedAt);
    events.push({
      at: start,
      row: [
        ms(start),
        "(batch)",
        b.entity,
        `pass ${b.pass} #${b.seq} ${b.state}`,
        `${b.rows} rows in ${b.durationMs ?? "?"} ms, finished ${b.finishedAt ? ms(at(b.finishedAt)) : "–"}`,
      ],
    });
  }
  const finished = at(run.view.finishedAt);
  if (!Number.isNaN(finished))
    events.push({ at: finished, row: [ms(finished), "(execution)", "", "finished", ""] });
  events.push({ at: run.seenAt, row: [ms(run.seenAt), "(bench)", "", "seen", run.status] });
  events.sort((a, b) => a.at - b.at);
  for (const e of events) rows.push(e.row);
  return {
    title: `Dray ${r.shape}, ${label}: stage log and batches (seconds from the POST of the execution; stage times are the store's now())`,
    head: ["at s", "process", "entity", "state/code", "description"],
    align: ["r", "l", "l", "l", "l"],
    rows,
  };
}

/** Per entity and pass: begin → end, batches, and the time around them (fixed overhead per entity). */
export function entityTable(r: CompareResult, run: DrayCompareRun, label: string): Table {
  const spans = new Map<string, { entity: string; pass: number; begin?: number; end?: number }>();
  for (const s of run.stages) {
    if (!s.processName.endsWith("Loader") || (s.state !== "begin" && s.state !== "end")) continue;
    const pass = s.description.startsWith("Back-filling") || s.description.endsWith("back-filled") ? 2 : 1;
    const key = `${s.filename}#${pass}`;
    const span = spans.get(key) ?? { entity: s.filename, pass };
    if (s.state === "begin") span.begin ??= s.epoch;
    else span.end = s.epoch;
    spans.set(key, span);
  }
  const levels = new Map(
    ((run.view.entities ?? []) as { entity: string; level: number }[]).map((v) => [v.entity, v.level]),
  );
  const t0 = run.requestedAt;
  const d = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined || Number.isNaN(a) || Number.isNaN(b)
      ? "–"
      : ((b - a) / 1000).toFixed(3);
  const rows: string[][] = [];
  for (const span of spans.values()) {
    const batches = run.batches.filter((b) => b.entity === span.entity && b.pass === span.pass);
    const starts = batches.map((b) => at(b.startedAt)).filter((n) => !Number.isNaN(n));
    const ends = batches.map((b) => at(b.finishedAt)).filter((n) => !Number.isNaN(n));
    rows.push([
      span.entity,
      String(span.pass),
      String(levels.get(span.entity) ?? "–"),
      span.begin === undefined ? "–" : `+${((span.begin - t0) / 1000).toFixed(3)}`,
      d(span.begin, span.end),
      String(batches.length),
      String(batches.reduce((s, b) => s + b.rows, 0)),
      d(span.begin, starts.length ? Math.min(...starts) : undefined),
      (batches.reduce((s, b) => s + (b.durationMs ?? 0), 0) / 1000).toFixed(3),
      d(ends.length ? Math.max(...ends) : undefined, span.end),
    ]);
  }
  return {
    title: `Dray ${r.shape}, ${label}: per entity and pass (loader begin → end; before first batch = begin → first batch started; after last = last batch finished → end)`,
    head: [
      "entity",
      "pass",
      "level",
      "begin at s",
      "begin → end s",
      "batches",
      "rows",
      "before first batch s",
      "batches s",
      "after last batch s",
    ],
    align: ["l", "r", "r", "r", "r", "r", "r", "r", "r", "r"],
    rows,
  };
}

/** CPU seconds by process during the fastest pg_dump | pg_restore and each Dray run. */
export function cpuCompareTable(r: CompareResult): Table | undefined {
  if (!r.pgStats && r.drayRuns.length === 0) return undefined;
  const names = ["control-plane", "source-agent", "target-agent"];
  const label = (g: string) => (g === "psql" ? "pg_dump + pg_restore (+ bash)" : g);
  const columns = [r.pgStats, ...r.drayRuns.map((run) => run.stats)];
  const row = (name: string, value: (st: PhaseStats) => number | undefined) => [
    name,
    ...columns.map((st) => {
      const v = st ? value(st) : undefined;
      return v === undefined ? "–" : v.toFixed(2);
    }),
  ];
  return {
    title: `${r.shape}: CPU seconds during the fastest pg_dump | pg_restore and each Dray run (other load: other sessions' work, a disturbance)`,
    head: ["process", "pg_dump|pg_restore", ...r.drayRuns.map((_, i) => `Dray run ${i + 1}`)],
    align: ["l", "r", ...r.drayRuns.map(() => "r" as const)],
    rows: [
      row("wall seconds", (st) => st.wall),
      ...names.map((n) => row(n, (st) => st.cpu[n])),
      ...PG_GROUPS.map((g) => row(label(g), (st) => st.pgCpu[g])),
      row("bench (polling)", (st) => st.benchCpu),
      row("other load", (st) => st.otherLoad),
      row("machine busy (2 cores: up to 2 × wall)", (st) => st.machineBusy),
    ],
  };
}
