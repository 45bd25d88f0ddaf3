/**
 * One scale of the benchmark: generate the dataset, time the COPY pipe, then
 * start a fresh Dray stack and time a merge into the empty target and a re-run
 * (every row an update), sampling memory and CPU of each Dray process.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { ApiClient } from "../../test/support/api-client.js";
import { createTestDatabase, type TestDatabase } from "../../test/support/databases.js";
import { waitForExecution } from "../../test/support/dray-stack.js";
import { runBaseline } from "./baseline.js";
import { type ProfileSummary, readProfiles } from "./cpu-profile.js";
import { createSchema, fingerprint, generateSource, TABLES, tableSizes, truncateTarget } from "./dataset.js";
import { type PhaseStats, ProcessSampler, statusBytes, waitForQuiet } from "./proc-stats.js";
import { type BenchStack, startBenchStack } from "./stack.js";

/** Names of the Dray processes, as reported. */
export const PROCESSES = ["control-plane", "source-agent", "target-agent"] as const;

export interface DrayRun {
  /** From POST /pipelines/{id}/executions to the poll that saw `completed`: the fastest of the repeats. */
  ms: number;
  /** Every repeat's time, in order. */
  allMs: number[];
  /** The execution's own durationMs (started → finished, control-plane clock). */
  serverMs: number | null;
  totals: {
    total: number;
    processed: number;
    created: number;
    updated: number;
    skipped: number;
    failed: number;
  };
  /** Target equals source (row counts and a hash of every row). */
  verified: boolean;
  /** CPU of the fastest repeat; peak RSS over all repeats. */
  stats: PhaseStats | undefined;
}

export interface ScaleResult {
  label: string;
  contacts: number;
  accounts: number;
  /** accounts + contacts: the rows each run moves. */
  rows: number;
  generateMs: number;
  sizes: string;
  /** The fastest baseline copy. */
  baselineMs: number | undefined;
  baselineAllMs: number[];
  pipeline?: { batchSize: number; batchBytes: number; entityConcurrency: number };
  merge?: DrayRun;
  rerun?: DrayRun;
  /** CPU around the baseline (psql, Postgres, other load). */
  baselineStats?: PhaseStats;
  /** Before each timed copy: how long it waited for the machine to go quiet, and how busy it was then (cores). */
  quiet: Record<string, { waitedMs: number; cores: number }>;
  /** VmRSS of each Dray process once its environment is described, before any run. */
  rssBefore: Record<string, number | undefined>;
  /** VmHWM of each Dray process after the runs (peak over its life). */
  hwm: Record<string, number | undefined>;
  profiles: (ProfileSummary & { process: string })[];
  logs: string[];
  databases: string[];
  error?: string;
}

export interface ScaleOptions {
  label: string;
  baseUrl: string;
  contacts: number;
  accounts: number;
  batchSize: number | undefined;
  keep: boolean;
  cpuProf: boolean;
  timeoutMs: number;
  /** Times each copy is timed; the fastest counts. */
  repeat: number;
  /** Longest wait, before each timed copy, for the machine to go quiet (other sessions' work). */
  quietWaitMs: number;
  /** bench/logs/<run>-<label>, bench/profiles/<run>-<label> */
  logPrefix: string;
  profileDir: string;
  log: (line: string) => void;
  /** Registers cleanup for Ctrl-C; returns the unregister function. */
  onInterrupt: (cleanup: () => Promise<void>) => () => void;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** A CHECKPOINT, before each timed copy. */
export async function checkpoint(sql: TestDatabase["sql"]): Promise<void> {
  await sql.unsafe("checkpoint");
}

/** Why the target's tables differ from the source's (row counts, row hashes), or undefined. */
export async function sameData(source: TestDatabase, target: TestDatabase): Promise<string | undefined> {
  const [a, b] = await Promise.all([fingerprint(source.sql), fingerprint(target.sql)]);
  for (const table of TABLES) {
    if (a[table]!.rows !== b[table]!.rows)
      return `${table}: ${b[table]!.rows} rows in the target, ${a[table]!.rows} in the source`;
    if (a[table]!.hash !== b[table]!.hash) return `${table}: rows differ from the source (hash)`;
  }
  return undefined;
}

/** Starts a run of the pipeline and waits for it; throws unless it completes. */
export async function runExecution(
  api: ApiClient,
  pipelineId: string,
  timeoutMs: number,
): Promise<{ ms: number; view: Record<string, unknown> & { status: string } }> {
  const started = performance.now();
  const run = await api.post(`/api/v1/pipelines/${pipelineId}/executions`);
  if (run.status !== 202)
    throw new Error(`POST /pipelines/${pipelineId}/executions: ${run.status} ${JSON.stringify(run.body)}`);
  let view: Record<string, unknown> & { status: string };
  try {
    view = await waitForExecution(api, run.body.id, timeoutMs);
  } catch (error) {
    const last = await api.get(`/api/v1/executions/${run.body.id}`).catch(() => undefined);
    await api.post(`/api/v1/executions/${run.body.id}/cancel`, { reason: "bench timeout" }).catch(() => {});
    throw new Error(
      `execution ${run.body.id} did not finish within ${timeoutMs / 1000} s (${(error as Error).message}); last view: ${JSON.stringify(last?.body)}`,
    );
  }
  const ms = performance.now() - started;
  if (view.status !== "completed") {
    const errors = await api
      .get(`/api/v1/executions/${run.body.id}/errors?pageSize=20`)
      .catch(() => undefined);
    throw new Error(
      `execution ${run.body.id} ended ${view.status}: ${JSON.stringify({ reasonCode: view.reasonCode, reason: view.reason, totals: view.totals, entities: view.entities })}\nerrors: ${JSON.stringify(errors?.body)}`,
    );
  }
  return { ms, view };
}

export async function runScale(o: ScaleOptions): Promise<ScaleResult> {
  const result: ScaleResult = {
    label: o.label,
    contacts: o.contacts,
    accounts: o.accounts,
    rows: o.contacts + o.accounts,
    generateMs: 0,
    sizes: "",
    baselineMs: undefined,
    baselineAllMs: [],
    rssBefore: {},
    quiet: {},
    hwm: {},
    profiles: [],
    logs: [],
    databases: [],
  };
  let source: TestDatabase | undefined;
  let target: TestDatabase | undefined;
  let stack: BenchStack | undefined;
  let sampler: ProcessSampler | undefined;
  let closed = false;
  /** CLOCK_MONOTONIC µs from each Dray run's request to its end: what the profiles summarise. */
  const profileWindows: { fromUs: number; toUs: number }[] = [];
  const cleanup = async () => {
    if (closed) return;
    closed = true;
    sampler?.end();
    if (stack) {
      await stack.close({ keep: o.keep }).catch(() => {});
    }
    for (const db of [source, target]) {
      if (!db) continue;
      if (o.keep) await db.sql.end({ timeout: 1 }).catch(() => {});
      else await db.drop().catch(() => {});
    }
  };
  const unregister = o.onInterrupt(cleanup);
  const repeatTag = (i: number) => (o.repeat > 1 ? ` (${i}/${o.repeat})` : "");
  const quiet = async (phase: string) => {
    if (o.quietWaitMs <= 0) return;
    const q = await waitForQuiet(o.quietWaitMs);
    result.quiet[phase] = q;
    if (q.waitedMs > 1500)
      o.log(
        `[${o.label}] waited ${(q.waitedMs / 1000).toFixed(0)} s for the machine to go quiet before the ${phase} (${q.cores < 0.25 ? "quiet" : `still ${q.cores.toFixed(2)} cores busy`})`,
      );
  };
  try {
    // 1. Data.
    o.log(
      `[${o.label}] generating ${o.contacts.toLocaleString("en")} contacts, ${o.accounts.toLocaleString("en")} accounts`,
    );
    source = await createTestDatabase(o.baseUrl, "dray_bench_src");
    target = await createTestDatabase(o.baseUrl, "dray_bench_dst");
    result.databases.push(source.name, target.name);
    const t = performance.now();
    await generateSource(source.sql, o.contacts, o.accounts);
    await createSchema(target.sql);
    result.generateMs = performance.now() - t;
    result.sizes = await tableSizes(source.sql);
    o.log(`[${o.label}] generated in ${seconds(result.generateMs)} (${result.sizes})`);

    // 2a. Baseline, into the truncated target.
    const baselineSampler = new ProcessSampler(
      {},
      { [source.name]: "pg source db", [target.name]: "pg target db" },
    );
    for (let i = 1; i <= o.repeat; i++) {
      await truncateTarget(target.sql);
      await checkpoint(source.sql);
      await quiet(`baseline${repeatTag(i)}`);
      baselineSampler.begin("baseline");
      let ms: number;
      let stats: PhaseStats | undefined;
      try {
        ms = await runBaseline(source.url, target.url);
      } finally {
        stats = baselineSampler.end();
      }
      result.baselineAllMs.push(ms);
      if (result.baselineMs === undefined || ms < result.baselineMs) {
        result.baselineMs = ms;
        result.baselineStats = stats;
      }
      const baselineCheck = await sameData(source, target);
      if (baselineCheck) throw new Error(`baseline copy is wrong: ${baselineCheck}`);
      o.log(`[${o.label}] baseline COPY pipe: ${seconds(ms)}${repeatTag(i)}`);
    }
    await truncateTarget(target.sql);

    // 2b. Dray.
    if (o.cpuProf) await mkdir(o.profileDir, { recursive: true });
    stack = await startBenchStack({
      baseUrl: o.baseUrl,
      logPrefix: o.logPrefix,
      ...(o.cpuProf ? { cpuProfileDir: o.profileDir } : {}),
    });
    result.databases.push(stack.store.name);
    const src = await stack.addEnvironment("source", source.url);
    const dst = await stack.addEnvironment("target", target.url);
    const pipeline = await stack.api.post("/api/v1/pipelines", {
      name: `bench-${o.label}`,
      sourceEnvironmentId: src.id,
      targetEnvironmentId: dst.id,
      writeStrategy: "merge",
      entities: [...TABLES],
      ...(o.batchSize !== undefined ? { batchSize: o.batchSize } : {}),
    });
    if (pipeline.status !== 201)
      throw new Error(`cannot create the pipeline: ${JSON.stringify(pipeline.body)}`);
    result.pipeline = {
      batchSize: pipeline.body.batchSize,
      batchBytes: pipeline.body.batchBytes,
      entityConcurrency: pipeline.body.entityConcurrency,
    };
    const pids = stack.pids();
    const named: Record<string, number> = {
      "control-plane": pids["control-plane"]!,
      "source-agent": pids["source-agent"]!,
      "target-agent": pids["target-agent"]!,
    };
    for (const [name, pid] of Object.entries(named)) result.rssBefore[name] = statusBytes(pid, "VmRSS");
    sampler = new ProcessSampler(named, {
      [source.name]: "pg source db",
      [target.name]: "pg target db",
      [stack.store.name]: "pg store db",
    });
    const nowUs = () => Number(process.hrtime.bigint() / 1000n);

    const drayRun = async (phase: "merge" | "rerun", expect: "created" | "updated", i: number) => {
      await checkpoint(source!.sql);
      await quiet(`${phase}${repeatTag(i)}`);
      const window = { fromUs: nowUs(), toUs: 0 };
      sampler!.begin(phase);
      let ms: number;
      let view: Awaited<ReturnType<typeof runExecution>>["view"];
      let stats: PhaseStats | undefined;
      try {
        ({ ms, view } = await runExecution(stack!.api, pipeline.body.id, o.timeoutMs));
      } finally {
        stats = sampler!.end();
        window.toUs = nowUs();
        profileWindows.push(window);
      }
      const totals = view.totals as DrayRun["totals"];
      const wrong = await sameData(source!, target!);
      if (wrong) throw new Error(`Dray ${phase}: target differs from source: ${wrong}`);
      if (totals[expect] !== result.rows)
        o.log(`[${o.label}] note: ${phase} reported ${expect}=${totals[expect]} of ${result.rows} rows`);
      o.log(`[${o.label}] Dray ${phase === "merge" ? "merge" : "re-run"}: ${seconds(ms)}${repeatTag(i)}`);
      const previous = result[phase];
      const peakRss = { ...(previous?.stats?.peakRss ?? {}) };
      for (const [name, bytes] of Object.entries(stats?.peakRss ?? {}))
        peakRss[name] = Math.max(peakRss[name] ?? 0, bytes);
      const faster = !previous || ms < previous.ms;
      result[phase] = {
        ms: faster ? ms : previous.ms,
        allMs: [...(previous?.allMs ?? []), ms],
        serverMs: faster ? ((view.durationMs as number | null) ?? null) : previous.serverMs,
        totals: faster ? totals : previous.totals,
        verified: true,
        stats: faster ? stats && { ...stats, peakRss } : previous.stats && { ...previous.stats, peakRss },
      };
    };
    for (let i = 1; i <= o.repeat; i++) {
      if (i > 1) await truncateTarget(target.sql);
      await drayRun("merge", "created", i);
      // 2c. Re-run: every row conflicts, so every row is an update.
      await drayRun("rerun", "updated", i);
    }
    result.hwm = sampler.highWaterMarks();
  } catch (error) {
    result.error = error instanceof Error ? (error.stack ?? error.message) : String(error);
    if (sampler) result.hwm = sampler.highWaterMarks();
    o.log(`[${o.label}] FAILED: ${result.error}`);
  } finally {
    const pids = stack?.pids() ?? {};
    await cleanup();
    unregister();
    if (stack) {
      result.logs = Object.keys(pids).map((name) => `${o.logPrefix}-${name}.log`);
      if (o.cpuProf) {
        const byPid = new Map(Object.entries(pids).map(([name, pid]) => [pid, name]));
        const windows = profileWindows.length > 0 ? profileWindows : undefined;
        // Kept with the profiles, to summarise them again over the same windows.
        await writeFile(
          join(o.profileDir, "windows.json"),
          `${JSON.stringify({ pids, windows }, null, 2)}\n`,
        ).catch(() => {});
        for (const p of await readProfiles(o.profileDir, 15, windows)) {
          result.profiles.push({ ...p, process: byPid.get(p.pid) ?? `pid ${p.pid}` });
        }
        result.profiles.sort(
          (a, b) => PROCESSES.indexOf(a.process as never) - PROCESSES.indexOf(b.process as never),
        );
      }
    }
  }
  return result;
}

export const profileDirFor = (benchDir: string, run: string, label: string) =>
  join(benchDir, "profiles", `${run}-${label}`);
