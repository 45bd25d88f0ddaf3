/**
 * Checks of the Prometheus text exposition format for the metrics tests:
 * `promtool check metrics` when promtool is installed (Debian's `prometheus`
 * package), and always a strict parser of the format (version 0.0.4) that
 * rejects what Prometheus would refuse to scrape and checks each histogram's
 * shape. The npm parser `parse-prometheus-text-format` was tried and left out:
 * it accepts malformed lines and drops histogram labels, so it cannot judge.
 */
import { spawnSync } from "node:child_process";

/** One sample line: `name{labels} value`. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A metric family: its # TYPE and # HELP and its samples. */
export interface Family {
  name: string;
  type: "counter" | "gauge" | "histogram" | "summary" | "untyped";
  help: string;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

function parseValue(text: string, line: string): number {
  // As Go's ParseFloat, which Prometheus uses: NaN and Inf in any case (prom-client writes `Nan`).
  if (/^\+?inf$/i.test(text)) return Number.POSITIVE_INFINITY;
  if (/^-inf$/i.test(text)) return Number.NEGATIVE_INFINITY;
  if (/^nan$/i.test(text)) return Number.NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`bad value in: ${line}`);
  return Number(text);
}

/** Parses `{a="x",b="y"}` (escapes \\, \" and \n), returning the labels and where the block ended. */
function parseLabels(
  text: string,
  start: number,
  line: string,
): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = start + 1;
  while (text[i] !== "}") {
    const eq = text.indexOf("=", i);
    if (eq < 0) throw new Error(`bad labels in: ${line}`);
    const name = text.slice(i, eq);
    if (!LABEL_NAME.test(name)) throw new Error(`bad label name ${JSON.stringify(name)} in: ${line}`);
    if (name in labels) throw new Error(`duplicate label ${name} in: ${line}`);
    if (text[eq + 1] !== '"') throw new Error(`unquoted label value in: ${line}`);
    let value = "";
    let j = eq + 2;
    for (; j < text.length && text[j] !== '"'; j++) {
      if (text[j] === "\\") {
        const next = text[++j];
        if (next === "n") value += "\n";
        else if (next === "\\" || next === '"') value += next;
        else throw new Error(`bad escape in: ${line}`);
      } else value += text[j];
    }
    if (j >= text.length) throw new Error(`unterminated label value in: ${line}`);
    labels[name] = value;
    i = j + 1;
    if (text[i] === ",") i++;
    else if (text[i] !== "}") throw new Error(`bad labels in: ${line}`);
  }
  return { labels, end: i + 1 };
}

function familyOf(sampleName: string, families: Map<string, Family>): Family | undefined {
  if (families.has(sampleName)) return families.get(sampleName);
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (sampleName.endsWith(suffix)) {
      const f = families.get(sampleName.slice(0, -suffix.length));
      if (f && (f.type === "histogram" || f.type === "summary")) return f;
    }
  }
  return undefined;
}

/** The samples of one histogram series (same labels but `le`), grouped. */
function checkHistogram(f: Family) {
  const series = new Map<string, { buckets: [number, number][]; sum?: number; count?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const entry = series.get(key) ?? { buckets: [] };
    series.set(key, entry);
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new Error(`${f.name}_bucket without le`);
      entry.buckets.push([parseValue(le, `le="${le}"`), s.value]);
    } else if (s.name === `${f.name}_sum`) entry.sum = s.value;
    else if (s.name === `${f.name}_count`) entry.count = s.value;
    else throw new Error(`sample ${s.name} in histogram ${f.name}`);
  }
  for (const [key, e] of series) {
    const inf = e.buckets.find(([le]) => le === Number.POSITIVE_INFINITY);
    if (!inf) throw new Error(`histogram ${f.name}${key} has no +Inf bucket`);
    if (e.count !== inf[1])
      throw new Error(`histogram ${f.name}${key}: _count ${e.count} != +Inf bucket ${inf[1]}`);
    if (e.sum === undefined) throw new Error(`histogram ${f.name}${key} has no _sum`);
    for (let i = 1; i < e.buckets.length; i++) {
      const [le0, n0] = e.buckets[i - 1]!;
      const [le1, n1] = e.buckets[i]!;
      if (!(le1 > le0) || n1 < n0) throw new Error(`histogram ${f.name}${key}: buckets not cumulative`);
    }
  }
}

/**
 * Parses the text format strictly: every line is a # HELP, a # TYPE, another
 * comment, blank, or a sample of a declared family; names, labels, escapes and
 * values are checked; a family's samples are contiguous and a series appears
 * once; histograms are cumulative with `_count` equal to the +Inf bucket.
 *
 * @throws Error naming the first line that breaks the format.
 */
export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  const closed = new Set<string>();
  let current: Family | undefined;
  if (!text.endsWith("\n")) throw new Error("the exposition must end with a newline");
  for (const line of text.split("\n")) {
    if (line === "") continue;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) continue;
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (!NAME.test(name)) throw new Error(`bad metric name in: ${line}`);
      let f = families.get(name);
      if (!f) {
        if (closed.has(name)) throw new Error(`family ${name} is split in: ${line}`);
        f = { name, type: "untyped", help: "", samples: [] };
        families.set(name, f);
      }
      if (current && current !== f) closed.add(current.name);
      current = f;
      if (kind === "TYPE") {
        if (!TYPES.has(rest)) throw new Error(`bad type in: ${line}`);
        if (f.samples.length > 0) throw new Error(`TYPE after samples in: ${line}`);
        f.type = rest as Family["type"];
      } else f.help = rest;
      continue;
    }
    const nameEnd = line.search(/[{ ]/);
    if (nameEnd <= 0) throw new Error(`bad sample line: ${line}`);
    const name = line.slice(0, nameEnd);
    if (!NAME.test(name)) throw new Error(`bad metric name in: ${line}`);
    let labels: Record<string, string> = {};
    let i = nameEnd;
    if (line[i] === "{") ({ labels, end: i } = parseLabels(line, i, line));
    const parts = line.slice(i).trim().split(/ +/);
    if (line[i] !== " " || parts.length < 1 || parts.length > 2) throw new Error(`bad sample line: ${line}`);
    const value = parseValue(parts[0]!, line);
    if (parts[1] !== undefined && !/^-?\d+$/.test(parts[1])) throw new Error(`bad timestamp in: ${line}`);
    const family = familyOf(name, families);
    if (!family) throw new Error(`sample of an undeclared family: ${line}`);
    if (family !== current) throw new Error(`samples of ${family.name} are not together: ${line}`);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(key)) throw new Error(`duplicate series: ${line}`);
    seen.add(key);
    family.samples.push({ name, labels, value });
  }
  for (const f of families.values()) if (f.type === "histogram") checkHistogram(f);
  return families;
}

/** The sum of the samples named `name` whose labels include `labels`. */
export function sampleSum(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number {
  let total = 0;
  for (const f of families.values())
    for (const s of f.samples)
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) total += s.value;
  return total;
}

/** Every label value of every sample (to assert that none is an id that must not be one). */
export function labelValues(families: Map<string, Family>): string[] {
  return [...families.values()].flatMap((f) => f.samples.flatMap((s) => Object.values(s.labels)));
}

/** True when `promtool` (Debian's `prometheus` package) is on the PATH. */
export function havePromtool(): boolean {
  return spawnSync("promtool", ["--version"], { stdio: "ignore" }).status === 0;
}

/**
 * prom-client's default metrics that promtool's linter names (gauges ending in
 * `_total`): they are the library's names, kept as every Node exporter has them.
 */
export const PROM_CLIENT_LINT_EXCEPTIONS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
];

/**
 * Runs `promtool check metrics` on the text. Exit 1 means it could not parse
 * the text; exit 3 means lint problems, returned except those of
 * {@link PROM_CLIENT_LINT_EXCEPTIONS}.
 */
export function promtoolCheck(text: string): { status: number | null; problems: string[] } {
  const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  const lines = `${r.stdout ?? ""}${r.stderr ?? ""}`.split("\n").filter((l) => l.trim() !== "");
  const problems = lines.filter((l) => !PROM_CLIENT_LINT_EXCEPTIONS.includes(l.split(" ")[0] ?? ""));
  return { status: r.status, problems };
}
