/** Memory and CPU of processes from /proc (Linux). */
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** A field of /proc/<pid>/status in bytes (VmRSS, VmHWM, …), or undefined once the process is gone. */
export function statusBytes(pid: number, field: "VmRSS" | "VmHWM"): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** User + system CPU seconds a process has used so far. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return (Number(rest[11]) + Number(rest[12])) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** User + system CPU seconds of a process's children that ended and were waited for (cutime + cstime). */
export function childrenCpuSeconds(pid: number): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return (Number(rest[13]) + Number(rest[14])) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds the whole machine (all cores) spent in user and system mode, from
 * /proc/stat — what per-process utime + stime add up to (interrupts, iowait and
 * steal left out).
 */
export function machineCpu(): { busy: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  return { busy: ((v[0] ?? 0) + (v[1] ?? 0) + (v[2] ?? 0)) / TICKS_PER_SECOND };
}

/**
 * Groups of the processes around the Dray ones whose CPU is reported: the
 * Postgres backends serving the benchmark's databases, autovacuum on them,
 * Postgres's own background processes (checkpointer, WAL writer…), server
 * processes that ended before they were sampled (short-lived backends, read
 * from the postmaster's children time), psql (the baseline, from this
 * process's children time) — and, as disturbance, backends and autovacuum of
 * other databases.
 */
export const PG_GROUPS = [
  "pg source db",
  "pg target db",
  "pg store db",
  "pg autovacuum",
  "pg background",
  "pg ended",
  "psql",
] as const;
export type PgGroup = (typeof PG_GROUPS)[number] | "pg other dbs";

/** The postmaster: the `postgres` process whose title is not `postgres: …`. */
export function postmasterPid(): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() !== "postgres") continue;
      if (!readFileSync(`/proc/${entry}/cmdline`, "utf8").startsWith("postgres:")) return Number(entry);
    } catch {}
  }
  return undefined;
}

/**
 * CPU seconds of every PostgreSQL server process (comm `postgres`) by pid,
 * with its group. Backends are told apart by their process title,
 * `postgres: [<cluster>: ]<user> <db> <host> <state>` or `… autovacuum worker <db>`;
 * `databases` maps the benchmark's database names to groups.
 */
export function postgresCpu(
  databases: Record<string, PgGroup>,
): Map<number, { group: PgGroup; cpu: number }> {
  const out = new Map<number, { group: PgGroup; cpu: number }>();
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return out;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      if (readFileSync(`/proc/${pid}/comm`, "utf8").trim() !== "postgres") continue;
      const cpu = cpuSeconds(pid);
      if (cpu === undefined) continue;
      const title = readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0+/g, " ").trim();
      const body = title.replace(/^postgres: (?:[^\s:]+: )?/, "");
      let group: PgGroup = "pg background";
      const autovacuum = /^autovacuum worker (\S+)/.exec(body);
      const backend = /^(\S+) (\S+) (?:\S+\(\d+\)|\[local\]) /.exec(body);
      if (autovacuum) group = databases[autovacuum[1]!] ? "pg autovacuum" : "pg other dbs";
      else if (backend) group = databases[backend[2]!] ?? "pg other dbs";
      out.set(pid, { group, cpu });
    } catch {}
  }
  return out;
}

/** Waits until the machine is idle — busy under `maxCores` cores over one second — or `maxMs` passed. */
export async function waitForQuiet(
  maxMs: number,
  maxCores = 0.25,
): Promise<{ waitedMs: number; cores: number }> {
  const started = performance.now();
  for (;;) {
    const a = machineCpu();
    const t = performance.now();
    await new Promise((r) => setTimeout(r, 1000));
    const cores = (machineCpu().busy - a.busy) / ((performance.now() - t) / 1000);
    const waitedMs = performance.now() - started;
    if (cores < maxCores || waitedMs >= maxMs) return { waitedMs, cores };
  }
}

export interface PhaseStats {
  /** Highest VmRSS sampled during the phase, per process name. */
  peakRss: Record<string, number>;
  /** CPU seconds used during the phase, per process name. */
  cpu: Record<string, number>;
  /** CPU seconds of PostgreSQL server processes and psql during the phase, per group. */
  pgCpu: Partial<Record<PgGroup, number>>;
  /** CPU seconds of this process (the benchmark: polling, sampling). */
  benchCpu: number;
  /**
   * CPU seconds of everything else: other databases' backends, other sessions'
   * processes… A disturbance: high values mean the figures are not clean.
   */
  otherLoad: number;
  /** CPU seconds the whole machine was busy during the phase (all processes, Postgres included). */
  machineBusy: number;
  /** Wall seconds of the phase. */
  wall: number;
}

/**
 * Samples VmRSS of named processes every `everyMs` and keeps the peak per
 * phase; `phase()` also takes CPU readings at its start and end.
 */
export class ProcessSampler {
  private timer: NodeJS.Timeout | undefined;
  private current:
    | {
        name: string;
        stats: PhaseStats;
        cpu0: Record<string, number>;
        bench0: number;
        children0: number;
        postmaster: number | undefined;
        postmaster0: number;
        pg0: Map<number, { group: PgGroup; cpu: number }>;
        /** Last reading of every Postgres process seen during the phase, so that one ending early still counts. */
        pgLast: Map<number, { group: PgGroup; cpu: number }>;
        machine0: number;
        t0: number;
      }
    | undefined;
  readonly phases = new Map<string, PhaseStats>();

  constructor(
    private readonly pids: Record<string, number>,
    /** Database name → group, for the CPU of PostgreSQL backends. */
    private readonly databases: Record<string, PgGroup> = {},
    private readonly everyMs = 200,
  ) {}

  /** Reads RSS and Postgres CPU; returns the Postgres pids alive. */
  private sample(): Set<number> {
    const alive = new Set<number>();
    if (!this.current) return alive;
    for (const [name, pid] of Object.entries(this.pids)) {
      const rss = statusBytes(pid, "VmRSS");
      if (rss !== undefined && rss > (this.current.stats.peakRss[name] ?? 0))
        this.current.stats.peakRss[name] = rss;
    }
    for (const [pid, reading] of postgresCpu(this.databases)) {
      alive.add(pid);
      // A title read while Postgres rewrites it (or before a new backend sets it) looks like a
      // background process: the first specific group seen for a pid sticks.
      const seen = this.current.pgLast.get(pid)?.group;
      const group = seen && seen !== "pg background" ? seen : reading.group;
      this.current.pgLast.set(pid, { group, cpu: reading.cpu });
    }
    return alive;
  }

  /** Starts a phase (ending the one running). */
  begin(name: string): void {
    this.end();
    const cpu0: Record<string, number> = {};
    for (const [n, pid] of Object.entries(this.pids)) cpu0[n] = cpuSeconds(pid) ?? 0;
    const postmaster = postmasterPid();
    this.current = {
      name,
      stats: { peakRss: {}, cpu: {}, pgCpu: {}, benchCpu: 0, otherLoad: 0, machineBusy: 0, wall: 0 },
      cpu0,
      bench0: cpuSeconds(process.pid) ?? 0,
      children0: childrenCpuSeconds(process.pid) ?? 0,
      postmaster,
      postmaster0: postmaster === undefined ? 0 : (childrenCpuSeconds(postmaster) ?? 0),
      pg0: postgresCpu(this.databases),
      pgLast: new Map(),
      machine0: machineCpu().busy,
      t0: performance.now(),
    };
    this.sample();
    this.timer = setInterval(() => this.sample(), this.everyMs);
  }

  /** Ends the running phase, if any. */
  end(): PhaseStats | undefined {
    const c = this.current;
    if (!c) return undefined;
    clearInterval(this.timer);
    const alive = this.sample();
    for (const [n, pid] of Object.entries(this.pids))
      c.stats.cpu[n] = (cpuSeconds(pid) ?? c.cpu0[n]!) - c.cpu0[n]!;
    let endedSampled = 0;
    for (const [pid, { group, cpu }] of c.pgLast) {
      // A process started during the phase counts from zero; one that ended counts until its last sample.
      const before = c.pg0.get(pid)?.cpu ?? 0;
      c.stats.pgCpu[group] = (c.stats.pgCpu[group] ?? 0) + Math.max(0, cpu - before);
      if (!alive.has(pid)) endedSampled += cpu;
    }
    // Server processes that ended during the phase add their whole CPU time to the postmaster's
    // children time; what their last samples did not cover is counted as "pg ended".
    if (c.postmaster !== undefined) {
      const ended = (childrenCpuSeconds(c.postmaster) ?? c.postmaster0) - c.postmaster0;
      c.stats.pgCpu["pg ended"] = Math.max(0, ended - endedSampled);
    }
    // psql (and the bash running the pipe): children of this process, waited for during the phase.
    c.stats.pgCpu.psql = (childrenCpuSeconds(process.pid) ?? c.children0) - c.children0;
    c.stats.machineBusy = machineCpu().busy - c.machine0;
    c.stats.benchCpu = (cpuSeconds(process.pid) ?? c.bench0) - c.bench0;
    const accounted =
      Object.values(c.stats.cpu).reduce((a, b) => a + b, 0) +
      PG_GROUPS.reduce((a, g) => a + (c.stats.pgCpu[g] ?? 0), 0) +
      c.stats.benchCpu;
    c.stats.otherLoad = Math.max(0, c.stats.machineBusy - accounted);
    c.stats.wall = (performance.now() - c.t0) / 1000;
    this.phases.set(c.name, c.stats);
    this.current = undefined;
    return c.stats;
  }

  /** VmHWM (peak resident set over the process's life) of each process now. */
  highWaterMarks(): Record<string, number | undefined> {
    const out: Record<string, number | undefined> = {};
    for (const [name, pid] of Object.entries(this.pids)) out[name] = statusBytes(pid, "VmHWM");
    return out;
  }
}
