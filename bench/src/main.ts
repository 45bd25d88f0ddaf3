/**
 * `pnpm bench`: Dray against a raw COPY pipe on a generated CRM dataset, at 1×
 * and 2× the rows. See bench/README.md.
 */
import { execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describeMachine, type Machine } from "./machine.js";
import { accountsFor, type BenchOptions, parseOptions, USAGE } from "./options.js";
import {
  checkClientTools,
  comparisonTable,
  cpuCompareTable,
  entityTable,
  phaseTable,
  runCompareShape,
  timelineTable,
} from "./pg-dump-compare.js";
import {
  cpuTable,
  flatnessLines,
  memoryTable,
  profileTables,
  renderMarkdown,
  renderText,
  throughputTable,
} from "./report.js";
import {
  latencyTable as routingLatencyTable,
  routingMarkdown,
  memoryTable as routingMemoryTable,
  verdictLines as routingVerdictLines,
} from "./routing-report.js";
import { runRoutingBench } from "./run-routing.js";
import { profileDirFor, runScale, type ScaleResult } from "./run-scale.js";
import { runTransformBench } from "./run-transform.js";
import { quantile, runUiLatencyBench } from "./run-ui-latency.js";
import {
  checkTable,
  cpuCostLines,
  speedTable,
  targetLines,
  transformCpuTable,
  transformThroughputTable,
} from "./transform-report.js";

const BENCH_DIR = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
const RESULTS = join(BENCH_DIR, "RESULTS.md");
const DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/postgres";
const RESULTS_HEADER = `# Bench results

Newest first. Each section is written by \`pnpm bench\` (\`bench/src/main.ts\`) with the command that
produced it; notes under a section were added by hand. See \`bench/README.md\` for what is measured.
`;

function commandLine(o: BenchOptions): string {
  const env = process.env.BENCH_DATABASE_URL ? `BENCH_DATABASE_URL=${process.env.BENCH_DATABASE_URL} ` : "";
  const args = o.argv.join(" ");
  if (process.env.npm_lifecycle_event === "bench") return `${env}pnpm bench${args ? ` -- ${args}` : ""}`;
  return `${env}tsx bench/src/main.ts${args ? ` ${args}` : ""}`;
}

/** Ctrl-C: run the registered cleanups (stop processes, drop databases), then exit. */
const cleanups = new Set<() => Promise<void>>();
let interrupted = false;
function onInterrupt(cleanup: () => Promise<void>) {
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.on(signal, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write(`\n${signal}: stopping the Dray processes and dropping the databases…\n`);
    void Promise.allSettled([...cleanups].map((c) => c())).then(() => process.exit(130));
  });

function markdownSection(
  o: BenchOptions,
  machine: Machine,
  startedAt: Date,
  elapsedMs: number,
  results: ScaleResult[],
): string {
  const scales = results.map((r) => `${r.label} = ${r.contacts.toLocaleString("en")} contacts`).join(", ");
  const p = results.find((r) => r.pipeline)?.pipeline;
  const lines = [
    `## ${startedAt.toISOString().slice(0, 16).replace("T", " ")} UTC — ${scales}${o.cpuProf ? " (--cpu-prof: timings inflated by profiling)" : ""}`,
    "",
    `- Command: \`${commandLine(o)}\` (whole run ${(elapsedMs / 60000).toFixed(1)} min)`,
    `- Machine: ${machine.nproc} CPUs (${machine.cpu}), ${machine.memory} RAM, ${machine.kernel}; Node ${machine.node}; ${machine.postgres} on 127.0.0.1 (${machine.postgresSettings})`,
    `- Dray: git ${machine.git}; control plane with a Postgres store on the same server, in-process event bus; two agents with default settings; every process a separate \`node\` running TypeScript through tsx`,
    `- Pipeline: merge of public.accounts then public.contacts${p ? `, batchSize ${p.batchSize}, batchBytes ${p.batchBytes}, entityConcurrency ${p.entityConcurrency}` : ""}`,
    `- Data: ${results.map((r) => `${r.label}: ${r.sizes}`).join(" — ")}`,
    `- Timing: ${o.repeat > 1 ? `each copy timed ${o.repeat} times, the fastest reported (all in "all repeats"); ` : "each copy timed once; "}a CHECKPOINT before each; the target checked equal to the source after each`,
    `- Disturbance: ${quietSummary(o, results)}`,
    "",
    renderMarkdown(throughputTable(results)),
    "",
    renderMarkdown(memoryTable(results)),
    "",
  ];
  const flat = flatnessLines(results);
  if (flat.length)
    lines.push(
      "Memory at 1× against 2× (fresh processes at each scale):",
      "",
      ...flat.map((l) => `- ${l}`),
      "",
    );
  lines.push(renderMarkdown(cpuTable(results, machine.nproc)), "");
  for (const r of results)
    if (r.error)
      lines.push(
        `**${r.label} failed** (logs: ${r.logs.map((l) => `\`${l.replace(`${BENCH_DIR}/`, "bench/")}\``).join(", ") || "none"}):`,
        "",
        "```",
        r.error,
        "```",
        "",
      );
  const profiles = profileTables(results);
  if (profiles.length) {
    lines.push("### CPU profiles (self time per function, idle excluded)", "");
    for (const t of profiles)
      lines.push(`${t.title.replace(`${BENCH_DIR}/`, "bench/")}:`, "", renderMarkdown(t, false), "");
  }
  return `${lines.join("\n").trimEnd()}\n`;
}

/** How quiet the machine was: the waits before each timed copy and the other load during them. */
function quietSummary(o: BenchOptions, results: ScaleResult[]): string {
  const waits = results.flatMap((r) =>
    Object.entries(r.quiet)
      .filter(([, q]) => q.waitedMs > 1500)
      .map(
        ([phase, q]) =>
          `${r.label} ${phase} ${(q.waitedMs / 1000).toFixed(0)} s${q.cores >= 0.25 ? ` (still ${q.cores.toFixed(2)} cores busy)` : ""}`,
      ),
  );
  const head =
    o.quietWaitSeconds > 0
      ? `before each timed copy the bench waited up to ${o.quietWaitSeconds} s for the machine to be idle (< 0.25 cores busy)${waits.length ? `; it waited: ${waits.join(", ")}` : "; it was"}`
      : "no wait for an idle machine (--quiet-wait 0)";
  return `${head}. "other load" is CPU used during a copy by processes not part of it (other sessions' tests and databases); above ~0.1 cores the figure is disturbed.`;
}

async function record(section: string): Promise<void> {
  let text = await readFile(RESULTS, "utf8").catch(() => "");
  if (!text.trim()) text = RESULTS_HEADER;
  const at = text.search(/^## /m);
  const next =
    at < 0 ? `${text.trimEnd()}\n\n${section}` : `${text.slice(0, at)}${section}\n${text.slice(at)}`;
  await writeFile(RESULTS, next);
  // Biome formats Markdown too (`pnpm lint` checks it): align the new tables the way it wants.
  const biome = join(BENCH_DIR, "..", "node_modules", ".bin", "biome");
  await new Promise<void>((resolve) =>
    execFile(biome, ["format", "--write", RESULTS], (error, _stdout, stderr) => {
      if (error)
        process.stderr.write(`bench: could not format ${RESULTS} with biome: ${stderr || error.message}\n`);
      resolve();
    }),
  );
}

/**
 * `--compare pg-restore`: each shape against pg_dump | pg_restore; prints the
 * comparison, Dray's phases, and the small shape's stage log (not recorded).
 */
async function compare(
  o: BenchOptions,
  baseUrl: string,
  runId: string,
  log: (line: string) => void,
): Promise<number> {
  log(`client tools: ${await checkClientTools()}`);
  const results = [];
  const t0 = performance.now();
  for (const shape of o.shapes) {
    results.push(
      await runCompareShape(shape, {
        baseUrl,
        partitions: o.partitions,
        triggers: o.triggers,
        loadOrder: o.loadOrder,
        cpuProfileDir: o.cpuProf ? (s) => profileDirFor(BENCH_DIR, runId, `compare-${s}`) : undefined,
        batchSize: o.batchSize,
        keep: o.keep,
        timeoutMs: o.timeoutSeconds * 1000,
        quietWaitMs: o.quietWaitSeconds * 1000,
        repeat: o.repeat,
        logPrefix: (s) => join(BENCH_DIR, "logs", `${runId}-compare-${s}`),
        log,
        onInterrupt,
      }),
    );
  }
  const out: string[] = [""];
  for (const r of results) out.push(`${r.shape}: ${r.describe}`);
  const p = results.find((r) => r.pipeline)?.pipeline;
  if (p)
    out.push(
      `Dray pipeline: merge of every table, batchSize ${p.batchSize}, batchBytes ${p.batchBytes}, entityConcurrency ${p.entityConcurrency}, loadOrder ${p.loadOrder ?? "(not reported)"}`,
    );
  out.push("", renderText(comparisonTable(results)), "");
  for (const r of results) {
    const phases = phaseTable(r);
    if (phases) out.push(renderText(phases), "");
    const cpu = cpuCompareTable(r);
    if (cpu) out.push(renderText(cpu), "");
    // The first run (cold processes) and the fastest, when they differ.
    const shown = [...new Set([r.drayRuns[0], r.dray])].filter((run) => run !== undefined);
    for (const run of shown) {
      const label = `run ${r.drayRuns.indexOf(run) + 1}${run === r.drayRuns[0] ? " (cold)" : " (fastest)"}`;
      out.push(renderText(entityTable(r, run, label)), "");
      if (r.shape === "small" || run.error) out.push(renderText(timelineTable(r, run, label)), "");
    }
    if (r.pgCheck) out.push(`${r.shape}: pg_restore target differs: ${r.pgCheck}`);
    if (r.pgSequences) out.push(`${r.shape}: pg_restore target sequences differ: ${r.pgSequences}`);
    if (r.drayCheck) out.push(`${r.shape}: Dray target differs: ${r.drayCheck}`);
    if (r.draySequences) out.push(`${r.shape}: Dray target sequences differ: ${r.draySequences}`);
    if (r.error) out.push(`${r.shape} FAILED:\n${r.error}\nlogs: ${r.logs.join(", ") || "none"}`, "");
  }
  out.push(`whole run: ${((performance.now() - t0) / 60000).toFixed(1)} min (not recorded in RESULTS.md)`);
  process.stdout.write(`${out.join("\n")}\n`);
  return results.some((r) => r.error || r.pgCheck || r.drayCheck) ? 1 : 0;
}

/**
 * `--transform`: the COPY pipe, a Dray copy and a Dray transform copy at --rows,
 * the transformers' speeds and the check of the transformed target (not recorded).
 */
async function transform(
  o: BenchOptions,
  machine: Machine,
  baseUrl: string,
  runId: string,
  log: (line: string) => void,
): Promise<number> {
  const t0 = performance.now();
  const r = await runTransformBench({
    baseUrl,
    contacts: o.rows,
    accounts: accountsFor(o.rows),
    batchSize: o.batchSize,
    keep: o.keep,
    timeoutMs: o.timeoutSeconds * 1000,
    repeat: o.repeat,
    quietWaitMs: o.quietWaitSeconds * 1000,
    logPrefix: join(BENCH_DIR, "logs", `${runId}-transform`),
    profileDir: o.cpuProf ? profileDirFor(BENCH_DIR, runId, "transform") : undefined,
    log,
    onInterrupt,
  });
  const out: string[] = ["", `data: ${r.sizes}`];
  if (r.pipeline)
    out.push(
      `Dray pipelines: writeStrategy merge into the emptied target, accounts then contacts, batchSize ${r.pipeline.batchSize}, batchBytes ${r.pipeline.batchBytes}, entityConcurrency ${r.pipeline.entityConcurrency}`,
    );
  out.push("", renderText(transformThroughputTable(r)), "", ...targetLines(r), "");
  if (r.speeds.length) out.push(renderText(speedTable(r)), "", ...cpuCostLines(r), "");
  out.push(renderText(transformCpuTable(r, machine.nproc)), "");
  const check = checkTable(r);
  if (check) out.push(renderText(check), "");
  if (r.profiles.length)
    for (const t of profileTables([
      { label: "[transform runs]", profiles: r.profiles } as unknown as ScaleResult,
    ]))
      out.push(renderText(t), "");
  if (r.error) out.push(`FAILED:\n${r.error}\nlogs: ${r.logs.join(", ") || "none"}`, "");
  out.push(`whole run: ${((performance.now() - t0) / 60000).toFixed(1)} min (not recorded in RESULTS.md)`);
  process.stdout.write(`${out.join("\n")}\n`);
  return r.error || r.check?.problem ? 1 : 0;
}

/** `--ui-latency`: batch commit → Execution Monitor DOM delays in Chromium (not recorded). */
async function uiLatency(
  o: BenchOptions,
  baseUrl: string,
  runId: string,
  log: (line: string) => void,
): Promise<number> {
  const r = await runUiLatencyBench({
    baseUrl,
    contacts: o.rows,
    accounts: accountsFor(o.rows),
    batchSize: o.batchSize ?? 2000,
    logPrefix: join(BENCH_DIR, "logs", `${runId}-ui-latency`),
    log,
  });
  if (r.error) {
    process.stdout.write(`FAILED:\n${r.error}\n`);
    return 1;
  }
  const ms = (q: number) => `${Math.round(quantile(r.delaysMs, q))} ms`;
  process.stdout.write(
    [
      "",
      `run: ${(r.runMs / 1000).toFixed(1)} s, ${r.batches} batches settled, ${r.domUpdates} page updates, ` +
        `${r.delaysMs.length} batches seen on the page`,
      `batch commit → Execution Monitor DOM: median ${ms(0.5)}, 95th percentile ${ms(0.95)}, max ${ms(1)}` +
        " (target: median under 1 s)",
      "",
    ].join("\n"),
  );
  return 0;
}

/** `--routing`: routed-command latency over replicas and one replica's RSS with many agents (issue 13). */
async function routing(
  o: BenchOptions,
  machine: Machine,
  baseUrl: string,
  runId: string,
  startedAt: Date,
  log: (line: string) => void,
): Promise<number> {
  const t0 = performance.now();
  if (o.cpuProf) await mkdir(profileDirFor(BENCH_DIR, runId, "routing"), { recursive: true });
  const r = await runRoutingBench({
    baseUrl,
    natsUrl: process.env.BENCH_NATS_URL || "nats://127.0.0.1:4222",
    replicas: o.routingReplicas,
    agents: o.routingAgents,
    commands: o.routingCommands,
    concurrency: o.routingConcurrency,
    perReplicaAgents: o.routingPerReplicaAgents,
    quietWaitMs: o.quietWaitSeconds * 1000,
    keep: o.keep,
    cpuProfileDir: o.cpuProf ? profileDirFor(BENCH_DIR, runId, "routing") : undefined,
    bundle: o.routingBundle,
    logPrefix: join(BENCH_DIR, "logs", `${runId}-routing`),
    log,
    onInterrupt,
  });
  const elapsedMs = performance.now() - t0;
  const out = ["", renderText(routingLatencyTable(r)), "", renderText(routingMemoryTable(r)), ""];
  out.push(...routingVerdictLines(r), "");
  for (const t of profileTables([
    { label: "[routed commands]", profiles: r.profiles } as unknown as ScaleResult,
  ]))
    out.push(renderText(t), "");
  if (r.error) out.push(`FAILED:\n${r.error}\nlogs: ${r.logs.join(", ") || "none"}`, "");
  out.push(`whole run: ${(elapsedMs / 60000).toFixed(1)} min`);
  process.stdout.write(`${out.join("\n")}\n`);
  if (o.record && r.relay.length > 0) {
    await record(routingMarkdown(r, machine, startedAt, commandLine(o), elapsedMs));
    log(`recorded in ${RESULTS}`);
  } else if (o.record) log("not recorded: the run failed before any command was routed");
  const missed =
    r.relay.reduce((n, f) => n + f.lost, r.relay.length ? 0 : 1) +
    (r.api?.lost ?? 0) +
    (r.memory?.commands.lost ?? 0);
  return r.error || missed > 0 ? 1 : 0;
}

async function main(): Promise<number> {
  // `--file-load` (issue 14) is its own script: one large CSV through a files pipeline.
  if (process.argv.includes("--file-load")) {
    await import("../file-load.js");
    return 0;
  }
  let options: BenchOptions | "help";
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message}\n`);
    return 2;
  }
  if (options === "help") {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const o = options;
  const baseUrl = process.env.BENCH_DATABASE_URL || DEFAULT_URL;
  const startedAt = new Date();
  const runId = startedAt.toISOString().replace(/[-:]/g, "").replace(/\..*$/, "").replace("T", "-");
  await mkdir(join(BENCH_DIR, "logs"), { recursive: true });
  const machine = await describeMachine(baseUrl);
  const log = (line: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
  log(`bench ${runId}: ${commandLine(o)}`);
  log(
    `${machine.nproc} CPUs, ${machine.memory}, ${machine.postgres}, Node ${machine.node}, git ${machine.git}`,
  );

  if (o.compare === "pg-restore") return compare(o, baseUrl, runId, log);
  if (o.transform) return transform(o, machine, baseUrl, runId, log);
  if (o.uiLatency) return uiLatency(o, baseUrl, runId, log);
  if (o.routing) return routing(o, machine, baseUrl, runId, startedAt, log);

  const scales = [{ label: "1×", factor: 1 }, ...(o.double ? [{ label: "2×", factor: 2 }] : [])];
  const results: ScaleResult[] = [];
  const t0 = performance.now();
  for (const { label, factor } of scales) {
    const contacts = o.rows * factor;
    const tag = factor === 1 ? "1x" : "2x";
    const result = await runScale({
      label,
      baseUrl,
      contacts,
      accounts: accountsFor(contacts),
      batchSize: o.batchSize,
      keep: o.keep,
      cpuProf: o.cpuProf,
      timeoutMs: o.timeoutSeconds * 1000,
      quietWaitMs: o.quietWaitSeconds * 1000,
      repeat: o.repeat,
      logPrefix: join(BENCH_DIR, "logs", `${runId}-${tag}`),
      profileDir: profileDirFor(BENCH_DIR, runId, tag),
      log,
      onInterrupt,
    });
    results.push(result);
    if (o.keep && result.databases.length) log(`[${label}] kept databases: ${result.databases.join(", ")}`);
    if (result.error) break;
  }
  const elapsedMs = performance.now() - t0;

  const out: string[] = ["", renderText(throughputTable(results)), "", renderText(memoryTable(results)), ""];
  const flat = flatnessLines(results);
  if (flat.length) out.push("Memory at 1× against 2×:", ...flat.map((l) => `  ${l}`), "");
  out.push(renderText(cpuTable(results, machine.nproc)), "");
  for (const t of profileTables(results)) out.push(renderText(t), "");
  for (const r of results)
    if (r.error) out.push(`${r.label} FAILED:\n${r.error}\nlogs: ${r.logs.join(", ") || "none"}`, "");
  out.push(`whole run: ${(elapsedMs / 60000).toFixed(1)} min`);
  process.stdout.write(`${out.join("\n")}\n`);

  // A run that failed before any Dray process started (bad options, database trouble) is not recorded.
  const setupFailed = results.length > 0 && results.every((r) => r.error && !r.pipeline);
  if (o.record && !setupFailed) {
    await record(markdownSection(o, machine, startedAt, elapsedMs, results));
    log(`recorded in ${RESULTS}`);
  } else if (o.record) log("not recorded: the run failed before Dray started");
  return results.some((r) => r.error) ? 1 : 0;
}

process.exitCode = await main();
