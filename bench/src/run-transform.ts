/**
 * `pnpm bench -- --transform` (issue 11): on one generated dataset, the COPY
 * pipe, a Dray copy (action copy) and a Dray transform copy (action transform,
 * three transformed contacts fields), each into the emptied target with the
 * same write strategy (merge), plus each transformer's speed in-process.
 */

import { mkdir } from "node:fs/promises";
import { createTestDatabase, type TestDatabase } from "../../test/support/databases.js";
import { runBaseline } from "./baseline.js";
import { type ProfileSummary, readProfiles } from "./cpu-profile.js";
import { createSchema, generateSource, TABLES, tableSizes, truncateTarget } from "./dataset.js";
import { type PhaseStats, ProcessSampler, waitForQuiet } from "./proc-stats.js";
import { checkpoint, PROCESSES, runExecution, sameData } from "./run-scale.js";
import { type BenchStack, startBenchStack } from "./stack.js";
import {
  checkTransformed,
  TRANSFORMATIONS,
  type TransformCheck,
  type TransformerSpeed,
  transformerSpeeds,
} from "./transform-check.js";
import { catalogueSpeeds } from "./transformer-catalogue-speeds.js";

export type TransformRunName = "baseline" | "copy" | "transform";

export interface TimedRun {
  /** The fastest repeat, ms. */
  ms: number;
  allMs: number[];
  /** The execution's own durationMs (Dray runs). */
  serverMs: number | null;
  /** CPU during the fastest repeat. */
  stats: PhaseStats | undefined;
  /** Before the fastest repeat: cores busy when the wait for quiet ended. */
  quietCores: number | undefined;
}

export interface TransformBenchResult {
  contacts: number;
  accounts: number;
  rows: number;
  sizes: string;
  generateMs: number;
  pipeline?: { batchSize: number; batchBytes: number; entityConcurrency: number };
  runs: Partial<Record<TransformRunName, TimedRun>>;
  /** The last transform run's check. */
  check?: TransformCheck;
  speeds: TransformerSpeed[];
  profiles: (ProfileSummary & { process: string })[];
  logs: string[];
  databases: string[];
  error?: string;
}

export interface TransformBenchOptions {
  baseUrl: string;
  contacts: number;
  accounts: number;
  batchSize: number | undefined;
  keep: boolean;
  timeoutMs: number;
  repeat: number;
  quietWaitMs: number;
  logPrefix: string;
  /** Profile the Dray processes into this directory (--cpu-prof); the summary covers the transform runs. */
  profileDir: string | undefined;
  log: (line: string) => void;
  onInterrupt: (cleanup: () => Promise<void>) => () => void;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export async function runTransformBench(o: TransformBenchOptions): Promise<TransformBenchResult> {
  const result: TransformBenchResult = {
    contacts: o.contacts,
    accounts: o.accounts,
    rows: o.contacts + o.accounts,
    sizes: "",
    generateMs: 0,
    runs: {},
    speeds: [],
    profiles: [],
    logs: [],
    databases: [],
  };
  let source: TestDatabase | undefined;
  let target: TestDatabase | undefined;
  let stack: BenchStack | undefined;
  let sampler: ProcessSampler | undefined;
  let closed = false;
  const windows: { fromUs: number; toUs: number }[] = [];
  const nowUs = () => Number(process.hrtime.bigint() / 1000n);
  const cleanup = async () => {
    if (closed) return;
    closed = true;
    sampler?.end();
    if (stack) await stack.close({ keep: o.keep }).catch(() => {});
    for (const db of [source, target]) {
      if (!db) continue;
      if (o.keep) await db.sql.end({ timeout: 1 }).catch(() => {});
      else await db.drop().catch(() => {});
    }
  };
  const unregister = o.onInterrupt(cleanup);
  const tag = (i: number) => (o.repeat > 1 ? ` (${i}/${o.repeat})` : "");

  /** Times one copy into the emptied target and keeps the fastest per name. */
  const timed = async (
    name: TransformRunName,
    i: number,
    s: ProcessSampler,
    copy: () => Promise<{ ms: number; serverMs: number | null }>,
  ) => {
    await truncateTarget(target!.sql);
    await checkpoint(source!.sql);
    const quiet = o.quietWaitMs > 0 ? await waitForQuiet(o.quietWaitMs) : undefined;
    if (quiet && quiet.waitedMs > 1500)
      o.log(
        `waited ${(quiet.waitedMs / 1000).toFixed(0)} s for the machine to go quiet before ${name}${tag(i)} (${quiet.cores < 0.25 ? "quiet" : `still ${quiet.cores.toFixed(2)} cores busy`})`,
      );
    const window = { fromUs: nowUs(), toUs: 0 };
    s.begin(name);
    let run: { ms: number; serverMs: number | null };
    let stats: PhaseStats | undefined;
    try {
      run = await copy();
    } finally {
      stats = s.end();
      window.toUs = nowUs();
      if (name === "transform") windows.push(window);
    }
    const previous = result.runs[name];
    const faster = !previous || run.ms < previous.ms;
    result.runs[name] = {
      ms: faster ? run.ms : previous.ms,
      allMs: [...(previous?.allMs ?? []), run.ms],
      serverMs: faster ? run.serverMs : previous.serverMs,
      stats: faster ? stats : previous.stats,
      quietCores: faster ? quiet?.cores : previous.quietCores,
    };
    return run.ms;
  };

  try {
    o.log(
      `[transform] generating ${o.contacts.toLocaleString("en")} contacts, ${o.accounts.toLocaleString("en")} accounts`,
    );
    source = await createTestDatabase(o.baseUrl, "dray_bench_src");
    target = await createTestDatabase(o.baseUrl, "dray_bench_dst");
    result.databases.push(source.name, target.name);
    const t = performance.now();
    await generateSource(source.sql, o.contacts, o.accounts);
    await createSchema(target.sql);
    result.generateMs = performance.now() - t;
    result.sizes = await tableSizes(source.sql);
    o.log(`[transform] generated in ${seconds(result.generateMs)} (${result.sizes})`);

    // Each transformer's speed, in this process (CPU time: the machine's load does not skew it).
    result.speeds = await transformerSpeeds(source);
    for (const s of result.speeds)
      o.log(
        `[transform] ${s.transformer} on contacts.${s.field}: ${s.perCpuSecond.toLocaleString("en")} values per CPU-second`,
      );
    // And every transformer of the catalogue, on generated values of its kind.
    for (const s of catalogueSpeeds())
      o.log(
        `[transform] catalogue: ${s.transformer} ${JSON.stringify(s.options)} on ${s.columnType}: ` +
          `${s.perCpuSecond.toLocaleString("en")} values per CPU-second`,
      );

    // The COPY pipe.
    const dbGroups = { [source.name]: "pg source db", [target.name]: "pg target db" } as const;
    const baselineSampler = new ProcessSampler({}, dbGroups);
    for (let i = 1; i <= o.repeat; i++) {
      const ms = await timed("baseline", i, baselineSampler, async () => ({
        ms: await runBaseline(source!.url, target!.url),
        serverMs: null,
      }));
      const wrong = await sameData(source, target);
      if (wrong) throw new Error(`baseline copy is wrong: ${wrong}`);
      o.log(`[transform] COPY pipe: ${seconds(ms)}${tag(i)}`);
    }

    // Dray: a copy pipeline and a transform pipeline, the same but for the transformations.
    if (o.profileDir) await mkdir(o.profileDir, { recursive: true });
    stack = await startBenchStack({
      baseUrl: o.baseUrl,
      logPrefix: o.logPrefix,
      ...(o.profileDir ? { cpuProfileDir: o.profileDir } : {}),
    });
    result.databases.push(stack.store.name);
    const src = await stack.addEnvironment("source", source.url);
    const dst = await stack.addEnvironment("target", target.url);
    const create = async (name: string, extra: object) => {
      const created = await stack!.api.post("/api/v1/pipelines", {
        name,
        sourceEnvironmentId: src.id,
        targetEnvironmentId: dst.id,
        writeStrategy: "merge",
        entities: [...TABLES],
        ...(o.batchSize !== undefined ? { batchSize: o.batchSize } : {}),
        ...extra,
      });
      if (created.status !== 201)
        throw new Error(`cannot create pipeline ${name}: ${created.status} ${JSON.stringify(created.body)}`);
      return created.body;
    };
    const plain = await create("bench-copy", { action: "copy" });
    const transform = await create("bench-transform", {
      action: "transform",
      transformations: TRANSFORMATIONS,
    });
    result.pipeline = {
      batchSize: plain.batchSize,
      batchBytes: plain.batchBytes,
      entityConcurrency: plain.entityConcurrency,
    };
    const pids = stack.pids();
    sampler = new ProcessSampler(Object.fromEntries(PROCESSES.map((p) => [p, pids[p]!])), {
      ...dbGroups,
      [stack.store.name]: "pg store db",
    });
    const dray = (id: string) => async () => {
      const { ms, view } = await runExecution(stack!.api, id, o.timeoutMs);
      return { ms, serverMs: (view.durationMs as number | null) ?? null };
    };
    // Interleaved, so that drift on a shared machine touches both alike.
    for (let i = 1; i <= o.repeat; i++) {
      const copyMs = await timed("copy", i, sampler, dray(plain.id));
      const wrong = await sameData(source, target);
      if (wrong) throw new Error(`Dray copy: target differs from source: ${wrong}`);
      o.log(`[transform] Dray copy: ${seconds(copyMs)}${tag(i)}`);
      const transformMs = await timed("transform", i, sampler, dray(transform.id));
      result.check = await checkTransformed(source, target);
      if (result.check.problem)
        throw new Error(`Dray transform: the target is not as expected: ${result.check.problem}`);
      o.log(`[transform] Dray transform: ${seconds(transformMs)}${tag(i)}`);
    }
  } catch (error) {
    result.error = error instanceof Error ? (error.stack ?? error.message) : String(error);
    o.log(`[transform] FAILED: ${result.error}`);
  } finally {
    const pids = stack?.pids() ?? {};
    await cleanup();
    unregister();
    if (stack) {
      result.logs = Object.keys(pids).map((name) => `${o.logPrefix}-${name}.log`);
      if (o.profileDir) {
        const byPid = new Map(Object.entries(pids).map(([name, pid]) => [pid, name]));
        for (const p of await readProfiles(o.profileDir, 15, windows.length ? windows : undefined))
          result.profiles.push({ ...p, process: byPid.get(p.pid) ?? `pid ${p.pid}` });
      }
    }
    if (o.keep && result.databases.length)
      o.log(`[transform] kept databases: ${result.databases.join(", ")}`);
  }
  return result;
}
