/** The tables printed at the end and written to RESULTS.md. */
import type { ProfileSummary } from "./cpu-profile.js";
import { PG_GROUPS, type PhaseStats } from "./proc-stats.js";
import { PROCESSES, type ScaleResult } from "./run-scale.js";

export type Table = { title: string; head: string[]; rows: string[][]; align?: ("l" | "r")[] };

const int = (n: number) => Math.round(n).toLocaleString("en");
const mib = (bytes: number | undefined) =>
  bytes === undefined ? "–" : `${(bytes / 1048576).toFixed(0)} MiB`;
const secs = (ms: number | undefined) => (ms === undefined ? "–" : (ms / 1000).toFixed(2));
const perSecond = (rows: number, ms: number | undefined) =>
  ms === undefined ? undefined : rows / (ms / 1000);

function ratio(dray: number | undefined, baseline: number | undefined): string {
  if (dray === undefined || baseline === undefined) return "–";
  const r = dray / baseline;
  return `${r.toFixed(3)} (${(1 / r).toFixed(1)}× slower)`;
}

/** Every repeat's seconds, when there were several. */
function all(ms: number[]): string {
  return ms.length > 1 ? ms.map((m) => (m / 1000).toFixed(2)).join(", ") : "–";
}

/** CPU of processes unrelated to the run, in cores on average: a disturbance when well above 0. */
function otherLoad(stats: PhaseStats | undefined): string {
  return stats && stats.wall > 0 ? (stats.otherLoad / stats.wall).toFixed(2) : "–";
}

export function throughputTable(results: ScaleResult[]): Table {
  const rows: string[][] = [];
  for (const r of results) {
    const base = perSecond(r.rows, r.baselineMs);
    rows.push([
      r.label,
      int(r.contacts),
      int(r.accounts),
      "COPY pipe (psql | psql)",
      secs(r.baselineMs),
      all(r.baselineAllMs),
      base === undefined ? "–" : int(base),
      "1",
      "–",
      r.baselineMs === undefined ? "–" : "yes",
      otherLoad(r.baselineStats),
    ]);
    for (const [name, run] of [
      ["Dray merge, empty target (all inserts)", r.merge],
      ["Dray re-run, same target (all updates)", r.rerun],
    ] as const) {
      const rate = perSecond(r.rows, run?.ms);
      rows.push([
        r.label,
        int(r.contacts),
        int(r.accounts),
        name,
        secs(run?.ms),
        all(run?.allMs ?? []),
        rate === undefined ? (r.error ? "FAILED" : "–") : int(rate),
        ratio(rate, base),
        run
          ? `${secs(run.serverMs ?? undefined)} (${int(run.totals.created)} created, ${int(run.totals.updated)} updated)`
          : "–",
        run ? (run.verified ? "yes" : "NO") : "–",
        otherLoad(run?.stats),
      ]);
    }
  }
  return {
    title:
      "Throughput (rows = accounts + contacts; seconds = the fastest repeat, from the request to completion; other load = CPU cores used meanwhile by processes not part of the copy)",
    head: [
      "scale",
      "contacts",
      "accounts",
      "run",
      "seconds",
      "all repeats",
      "rows/s",
      "Dray/baseline",
      "server-side s (counts)",
      "target = source",
      "other load",
    ],
    rows,
    align: ["l", "r", "r", "l", "r", "l", "r", "l", "l", "l", "r"],
  };
}

export function memoryTable(results: ScaleResult[]): Table {
  const rows: string[][] = [];
  for (const r of results)
    for (const p of PROCESSES)
      rows.push([
        r.label,
        p,
        mib(r.rssBefore[p]),
        mib(r.merge?.stats?.peakRss[p]),
        mib(r.rerun?.stats?.peakRss[p]),
        mib(r.hwm[p]),
      ]);
  return {
    title:
      "Memory of each Dray process (RSS; sampled every 200 ms during each run; VmHWM = peak over the process's life)",
    head: ["scale", "process", "RSS before runs", "peak RSS merge", "peak RSS re-run", "VmHWM (peak)"],
    rows,
    align: ["l", "l", "r", "r", "r", "r"],
  };
}

export function cpuTable(results: ScaleResult[], cores: number): Table {
  const rows: string[][] = [];
  for (const r of results)
    for (const [name, s] of [
      ["baseline", r.baselineStats],
      ["merge", r.merge?.stats],
      ["re-run", r.rerun?.stats],
    ] as const) {
      if (!s) continue;
      const cell = (cpu: number | undefined) =>
        cpu === undefined ? "–" : `${cpu.toFixed(1)} s (${((cpu / s.wall) * 100).toFixed(0)}%)`;
      rows.push([
        r.label,
        name,
        s.wall.toFixed(1),
        ...PROCESSES.map((p) => cell(s.cpu[p])),
        ...PG_GROUPS.map((g) => cell(s.pgCpu[g] ?? 0)),
        cell(s.benchCpu),
        cell(s.otherLoad),
        `${((s.machineBusy / (s.wall * cores)) * 100).toFixed(0)}% of ${cores}`,
      ]);
    }
  return {
    title:
      "CPU during each timed copy: CPU seconds (% of one core over the copy) of each Dray process, of the Postgres backends serving each database, autovacuum on them, Postgres background processes, psql, this benchmark process, and everything else (other load)",
    head: ["scale", "run", "wall s", ...PROCESSES, ...PG_GROUPS, "bench", "other load", "machine busy"],
    rows,
    align: [
      "l",
      "l",
      "r",
      ...PROCESSES.map(() => "r" as const),
      ...PG_GROUPS.map(() => "r" as const),
      "r",
      "r",
      "r",
    ],
  };
}

/** One line per process: VmHWM at 1× against 2×. */
export function flatnessLines(results: ScaleResult[]): string[] {
  const one = results[0];
  const two = results[1];
  if (!one || !two) return [];
  return PROCESSES.map((p) => {
    const a = one.hwm[p];
    const b = two.hwm[p];
    if (a === undefined || b === undefined) return `${p}: –`;
    return `${p}: VmHWM ${mib(a)} at ${one.label} → ${mib(b)} at ${two.label} (${b >= a ? "+" : ""}${(((b - a) / a) * 100).toFixed(0)}%)`;
  });
}

export function profileTables(results: ScaleResult[]): Table[] {
  const tables: Table[] = [];
  for (const r of results)
    for (const p of r.profiles as (ProfileSummary & { process: string })[]) {
      const title = `${r.label} ${p.process}: top ${p.top.length} functions by self time, of ${(p.busyMs / 1000).toFixed(1)} s CPU over the ${(p.totalMs / 1000).toFixed(1)} s of the Dray runs — ${p.file}`;
      tables.push({
        title,
        head: ["#", "self ms", "%", "function", "location"],
        rows: p.top.map((e, i) => [
          String(i + 1),
          int(e.selfMs),
          `${(e.share * 100).toFixed(1)}`,
          e.fn,
          e.location,
        ]),
        align: ["r", "r", "r", "l", "l"],
      });
      tables.push({
        title: `${r.label} ${p.process}: self time by package / area`,
        head: ["area", "self ms", "%"],
        rows: p.byArea.map((a) => [a.area, int(a.selfMs), (a.share * 100).toFixed(1)]),
        align: ["l", "r", "r"],
      });
    }
  return tables;
}

export function renderText(t: Table): string {
  const widths = t.head.map((h, i) => Math.max(h.length, ...t.rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (t.align?.[i] === "r" ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [t.title, line(t.head), widths.map((w) => "-".repeat(w)).join("  "), ...t.rows.map(line)].join("\n");
}

export function renderMarkdown(t: Table, withTitle = true): string {
  const esc = (s: string) => s.replace(/\|/g, "\\|");
  const sep = t.head.map((_, i) => (t.align?.[i] === "r" ? "---:" : "---"));
  return [
    ...(withTitle ? [`${t.title}:`, ""] : []),
    `| ${t.head.map(esc).join(" | ")} |`,
    `| ${sep.join(" | ")} |`,
    ...t.rows.map((r) => `| ${r.map(esc).join(" | ")} |`),
  ].join("\n");
}
