/** Reads V8 .cpuprofile files (written by node --cpu-prof) into self-time tables. */
import { readFileSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface SelfTimeEntry {
  /** functionName (or "(anonymous)") and where it is. */
  fn: string;
  location: string;
  selfMs: number;
  /** Share of the non-idle sampled time. */
  share: number;
}

export interface ProfileSummary {
  file: string;
  pid: number;
  /** Wall time the summary covers (the window, or the whole profile). */
  totalMs: number;
  /** Sampled time not spent idle. */
  busyMs: number;
  top: SelfTimeEntry[];
  /** Self time grouped by package or source area. */
  byArea: { area: string; selfMs: number; share: number }[];
}

/** The repository root, without a trailing slash. */
const ROOT = fileURLToPath(new URL("../..", import.meta.url)).replace(/\/$/, "");

/** A url made short: repository-relative, or `pkg/path` inside node_modules, or node: internals. */
export function shortLocation(url: string): string {
  if (!url) return "";
  let path = url.startsWith("file://") ? decodeURIComponent(url.slice("file://".length)) : url;
  const nm = path.lastIndexOf("/node_modules/");
  if (nm >= 0) return path.slice(nm + "/node_modules/".length);
  if (path.startsWith(`${ROOT}/`)) path = path.slice(ROOT.length + 1);
  return path;
}

/** The package (node_modules), Dray package (agent/src, control-plane/src, …) or `node:` internals a url is in. */
export function areaOf(url: string, fn: string): string {
  if (!url) return /^\((garbage collector|program|idle|root)\)$/.test(fn) ? fn : "(native / V8 builtins)";
  const loc = shortLocation(url);
  if (loc.startsWith("node:")) return "node: internals";
  if (url.includes("/node_modules/")) {
    const parts = loc.split("/");
    return parts[0]!.startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  const parts = loc.split("/");
  return parts.length > 2 ? `${parts[0]}/${parts[1]}` : loc;
}

const sourceLines = new Map<string, string[] | null>();

/**
 * The line of a TypeScript function, found by name. tsx loads TypeScript with
 * esbuild's minifyWhitespace, so profiles place every function on line 1;
 * this finds its declaration in the source instead (shown as `:~N`).
 */
export function definitionLine(url: string, fn: string): number | undefined {
  if (!url.startsWith("file://") || !/\.[cm]?tsx?$/.test(url) || !/^[\w$]+$/.test(fn)) return undefined;
  const path = fileURLToPath(url);
  let lines = sourceLines.get(path);
  if (lines === undefined) {
    try {
      lines = readFileSync(path, "utf8").split("\n");
    } catch {
      lines = null;
    }
    sourceLines.set(path, lines);
  }
  if (!lines) return undefined;
  const name = fn.replace(/\$/g, "\\$");
  const patterns = [
    new RegExp(`\\bfunction\\s*\\*?\\s*${name}\\s*[<(]`),
    new RegExp(`\\b(?:const|let|var)\\s+${name}\\s*[:=]`),
    new RegExp(
      `^\\s*(?:(?:async|static|private|public|protected|readonly|get|set)\\s+)*\\*?${name}\\s*[<(](?!.*;\\s*$)`,
    ),
    new RegExp(`\\b${name}\\s*[:=]\\s*(?:async\\s*)?(?:function\\b|\\(|[\\w$]+\\s*=>)`),
    new RegExp(`\\bclass\\s+${name}\\b`),
  ];
  for (const pattern of patterns) {
    const at = lines.findIndex((line) => pattern.test(line));
    if (at >= 0) return at + 1;
  }
  return undefined;
}

/** Where a call frame is: `path:line`, or `path:~line` when the line was found by name. */
function locate(frame: CallFrame, fn: string): string {
  if (!frame.url) return "";
  const path = shortLocation(frame.url);
  if (/\.[cm]?tsx?$/.test(path) && frame.url.startsWith("file://") && frame.lineNumber === 0) {
    const line = definitionLine(frame.url, fn);
    return line === undefined ? path : `${path}:~${line}`;
  }
  return `${path}:${frame.lineNumber + 1}`;
}

/**
 * Self time per function: each sample's interval (the next sample's time
 * delta, as DevTools counts it) goes to the sampled node; nodes are merged by
 * function name and location. With `windows` (CLOCK_MONOTONIC µs, the clock of
 * V8's timestamps and of process.hrtime), only samples taken inside them count.
 */
export function summarise(
  profile: CpuProfile,
  topN = 15,
  windows?: { fromUs: number; toUs: number }[],
): Omit<ProfileSummary, "file" | "pid"> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parentOf = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
  /** An anonymous function is named after its nearest named caller: `(anonymous in prepareRows)`. */
  const nameOf = (node: ProfileNode): string => {
    if (node.callFrame.functionName) return node.callFrame.functionName;
    for (let id = parentOf.get(node.id); id !== undefined; id = parentOf.get(id)) {
      const caller = byId.get(id)?.callFrame.functionName;
      if (caller && !caller.startsWith("(")) return `(anonymous in ${caller})`;
    }
    return "(anonymous)";
  };
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  let windowUs = profile.endTime - profile.startTime;
  if (samples.length > 0) {
    let at = profile.startTime;
    for (let i = 0; i < samples.length; i++) {
      at += deltas[i] ?? 0;
      if (windows && !windows.some((w) => at >= w.fromUs && at <= w.toUs)) continue;
      const next = deltas[i + 1] ?? 0;
      selfUs.set(samples[i]!, (selfUs.get(samples[i]!) ?? 0) + Math.max(0, next));
    }
    if (windows)
      windowUs = windows.reduce(
        (sum, w) =>
          sum + Math.max(0, Math.min(w.toUs, profile.endTime) - Math.max(w.fromUs, profile.startTime)),
        0,
      );
  } else {
    // No samples: fall back to hit counts at the mean interval.
    const hits = profile.nodes.reduce((a, n) => a + (n.hitCount ?? 0), 0) || 1;
    const interval = (profile.endTime - profile.startTime) / hits;
    for (const n of profile.nodes) selfUs.set(n.id, (n.hitCount ?? 0) * interval);
  }
  const byFn = new Map<string, { fn: string; location: string; us: number }>();
  const byArea = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const { url } = node.callFrame;
    const fn = nameOf(node);
    if (fn === "(idle)") continue;
    busy += us;
    const location = locate(node.callFrame, fn);
    const key = `${fn}\u0000${location}`;
    const entry = byFn.get(key) ?? { fn, location, us: 0 };
    entry.us += us;
    byFn.set(key, entry);
    const area = areaOf(url, node.callFrame.functionName);
    byArea.set(area, (byArea.get(area) ?? 0) + us);
  }
  const share = (us: number) => (busy > 0 ? us / busy : 0);
  return {
    totalMs: Math.max(0, windowUs) / 1000,
    busyMs: busy / 1000,
    top: [...byFn.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, topN)
      .map((e) => ({ fn: e.fn, location: e.location, selfMs: e.us / 1000, share: share(e.us) })),
    byArea: [...byArea.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 10)
      .map(([area, us]) => ({ area, selfMs: us / 1000, share: share(us) })),
  };
}

/** Summaries of every profile in `dir`, main thread first per process (file names hold pid and thread). */
export async function readProfiles(
  dir: string,
  topN = 15,
  windows?: { fromUs: number; toUs: number }[],
): Promise<ProfileSummary[]> {
  const files = (await readdir(dir).catch(() => [] as string[]))
    .filter((f) => f.endsWith(".cpuprofile"))
    .sort();
  const out: ProfileSummary[] = [];
  for (const file of files) {
    // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile
    const pid = Number(file.split(".")[3]);
    const profile = JSON.parse(await readFile(join(dir, file), "utf8")) as CpuProfile;
    out.push({ file: join(dir, file), pid, ...summarise(profile, topN, windows) });
  }
  return out;
}
