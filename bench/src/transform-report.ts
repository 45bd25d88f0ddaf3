/** `--transform`: the tables it prints (not recorded in RESULTS.md). */
import { PG_GROUPS } from "./proc-stats.js";
import type { Table } from "./report.js";
import { PROCESSES } from "./run-scale.js";
import type { TransformBenchResult, TransformRunName } from "./run-transform.js";
import { expectedTransformCpu, MIN_CHANGED, TRANSFORMATIONS } from "./transform-check.js";

/** Issue 11's targets: transform throughput over the pipe's, and over Dray's plain copy. */
export const TARGETS = { pipe: 0.7, plain: 0.85 } as const;

const int = (n: number) => Math.round(n).toLocaleString("en");
const secs = (ms: number | undefined) => (ms === undefined ? "–" : (ms / 1000).toFixed(2));
const OPTIONS = new Map(TRANSFORMATIONS.map((t) => [t.field, t.options]));
const NAMES: Record<TransformRunName, string> = {
  baseline: "COPY pipe (psql | psql)",
  copy: "Dray copy (action copy)",
  transform: "Dray transform (action transform, 3 fields)",
};

/** Throughput of `a` over `b` (b's time over a's), or undefined. */
function throughputRatio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined ? undefined : b / a;
}

const ratioCell = (r: number | undefined) => (r === undefined ? "–" : r.toFixed(3));

export function transformThroughputTable(r: TransformBenchResult): Table {
  const pipe = r.runs.baseline?.ms;
  const plain = r.runs.copy?.ms;
  const rows = (["baseline", "copy", "transform"] as const).map((name) => {
    const run = r.runs[name];
    const other = run?.stats && run.stats.wall > 0 ? (run.stats.otherLoad / run.stats.wall).toFixed(2) : "–";
    return [
      NAMES[name],
      secs(run?.ms),
      run && run.allMs.length > 1 ? run.allMs.map((m) => (m / 1000).toFixed(2)).join(", ") : "–",
      run ? int(r.rows / (run.ms / 1000)) : r.error ? "FAILED" : "–",
      ratioCell(throughputRatio(run?.ms, pipe)),
      name === "baseline" ? "–" : ratioCell(throughputRatio(run?.ms, plain)),
      run?.serverMs == null ? "–" : secs(run.serverMs),
      other,
    ];
  });
  return {
    title: `Throughput, ${int(r.contacts)} contacts + ${int(r.accounts)} accounts (rows/s counts both; seconds = the fastest repeat, request to completion; ratios are throughput over the pipe's and over Dray copy's; other load = cores used meanwhile by processes not part of the copy)`,
    head: ["run", "seconds", "all repeats", "rows/s", "× pipe", "× Dray copy", "server-side s", "other load"],
    rows,
    align: ["l", "r", "l", "r", "r", "r", "r", "r"],
  };
}

/** The verdict on issue 11's targets, one line each. */
export function targetLines(r: TransformBenchResult): string[] {
  const t = r.runs.transform?.ms;
  const pipe = throughputRatio(t, r.runs.baseline?.ms);
  const plain = throughputRatio(t, r.runs.copy?.ms);
  const line = (what: string, ratio: number | undefined, target: number) =>
    ratio === undefined
      ? `${what}: –`
      : `${what}: ${ratio.toFixed(3)} (target ≥ ${target}) ${ratio >= target ? "MET" : "MISSED"}`;
  return [
    line("transform / COPY pipe throughput", pipe, TARGETS.pipe),
    line("transform / Dray copy throughput", plain, TARGETS.plain),
  ];
}

export function speedTable(r: TransformBenchResult): Table {
  return {
    title:
      "Transformers in-process (compileTransformer's function over the source's values, one thread, process.cpuUsage; values/s per core)",
    head: [
      "field",
      "transformer",
      "options",
      "sample values",
      "calls",
      "values/s per core",
      "non-NULL share",
    ],
    rows: r.speeds.map((s) => {
      const options = JSON.stringify(OPTIONS.get(s.field) ?? {});
      return [
        `contacts.${s.field}`,
        s.transformer,
        options,
        int(s.samples),
        int(s.calls),
        int(s.perCpuSecond),
        `${(s.nonNullShare * 100).toFixed(0)}%`,
      ];
    }),
    align: ["l", "l", "l", "r", "r", "r", "r"],
  };
}

/** What the speeds predict for the source agent's extra CPU, against what it used. */
export function cpuCostLines(r: TransformBenchResult): string[] {
  if (!r.speeds.length) return [];
  const expected = expectedTransformCpu(r.speeds, r.contacts);
  const lines = [
    `transformers' CPU for ${int(r.contacts)} contacts at the speeds above: ${expected.toFixed(2)} s`,
  ];
  const a = r.runs.copy?.stats?.cpu["source-agent"];
  const b = r.runs.transform?.stats?.cpu["source-agent"];
  if (a !== undefined && b !== undefined)
    lines.push(
      `source agent CPU: ${a.toFixed(2)} s in the copy, ${b.toFixed(2)} s in the transform (+${(b - a).toFixed(2)} s)`,
    );
  return lines;
}

export function transformCpuTable(r: TransformBenchResult, cores: number): Table {
  const rows: string[][] = [];
  for (const name of ["baseline", "copy", "transform"] as const) {
    const s = r.runs[name]?.stats;
    if (!s) continue;
    const cell = (cpu: number | undefined) =>
      cpu === undefined ? "–" : `${cpu.toFixed(1)} s (${((cpu / s.wall) * 100).toFixed(0)}%)`;
    rows.push([
      NAMES[name],
      s.wall.toFixed(1),
      ...PROCESSES.map((p) => cell(s.cpu[p])),
      ...PG_GROUPS.map((g) => cell(s.pgCpu[g] ?? 0)),
      cell(s.otherLoad),
      `${((s.machineBusy / (s.wall * cores)) * 100).toFixed(0)}% of ${cores}`,
    ]);
  }
  return {
    title:
      "CPU during each fastest copy: CPU seconds (% of one core over the copy) of each Dray process, the Postgres backends per database, psql, and everything else (other load)",
    head: ["run", "wall s", ...PROCESSES, ...PG_GROUPS, "other load", "machine busy"],
    rows,
    align: ["l", "r", ...PROCESSES.map(() => "r" as const), ...PG_GROUPS.map(() => "r" as const), "r", "r"],
  };
}

export function checkTable(r: TransformBenchResult): Table | undefined {
  const c = r.check;
  if (!c) return undefined;
  const rows: string[][] = Object.entries(c.counts).map(([table, n]) => [
    `${table} rows`,
    `${int(n.source)} → ${int(n.target)}`,
    n.source === n.target ? "equal" : "DIFFER",
  ]);
  rows.push(["public.accounts (md5 of every row)", "–", c.accountsEqual ? "equal" : "DIFFER"]);
  rows.push(["public.contacts untouched columns (md5)", "–", c.untouchedEqual ? "equal" : "DIFFER"]);
  for (const f of c.fields) {
    const share = f.nonNull ? f.changed / f.nonNull : 1;
    rows.push([
      `contacts.${f.field} (${f.transformer})`,
      `${int(f.changed)} of ${int(f.nonNull)} non-NULL changed (${(share * 100).toFixed(3)}%)${f.nullMismatch ? `, ${f.nullMismatch} NULL on one side only` : ""}`,
      share >= MIN_CHANGED && f.nullMismatch === 0 ? "ok" : "WRONG",
    ]);
  }
  return {
    title: `Transformed target against the source (each transformed field must change in ≥ ${(MIN_CHANGED * 100).toFixed(1)}% of non-NULL rows)`,
    head: ["what", "source → target", "verdict"],
    rows,
    align: ["l", "l", "l"],
  };
}
