/**
 * Loading one large uploaded CSV file through a `files` pipeline: a control
 * plane and a target agent as real processes (the test harness), a CSV of
 * about `--file-mb` MB generated on disk (streamed, never held in memory),
 * uploaded as a streamed multipart body (node:http, the file piped into the
 * request), then polled until the file is Loaded.
 *
 * Reports the upload rate (MB/s, from the first byte sent to the 202), the
 * load rate (rows/s, from the 202 to the poll that sees Loaded; and the
 * executor's own figure) and the peak resident memory of the control plane and
 * of the target agent (VmRSS sampled every 200 ms over each process tree, and
 * VmHWM at the end). Prints a Markdown block; records nothing by itself.
 *
 * Needs PostgreSQL (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres)
 * and NATS (BENCH_NATS_URL, default nats://127.0.0.1:4222).
 *
 * @example
 * pnpm exec tsx bench/file-load.ts --file-mb 200
 * pnpm exec tsx bench/file-load.ts            # 1024 MB, about 8.5 M rows
 */
import { once } from "node:events";
import { createReadStream, createWriteStream, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eventually } from "../test/support/api-client.js";
import { startDrayStack } from "../test/support/dray-stack.js";

const serverUrl = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const natsUrl = process.env.BENCH_NATS_URL ?? "nats://127.0.0.1:4222";
const MB = 1024 * 1024;

/** The fields of a pipeline file and of an execution that the bench reads. */
interface FileRow {
  pipelineToken: string;
  state: string;
  error: string | null;
  rowsLoaded: number;
  rowsRejected: number;
}
interface HistoryRow {
  id: string;
  pipelineToken: string;
}
interface UploadAnswer {
  pipelineToken?: string;
}

/** Command-line options. */
interface FileLoadOptions {
  fileMb: number;
  timeoutS: number;
  keepFile: boolean;
}

/** Parses `--file-mb N`, `--timeout S` and `--keep-file`. */
export function parseFileLoadOptions(argv: string[]): FileLoadOptions {
  const options: FileLoadOptions = { fileMb: 1024, timeoutS: 3600, keepFile: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const n = Number(argv[++i]);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${arg} needs a positive number`);
      return n;
    };
    if (arg === "--file-mb") options.fileMb = value();
    else if (arg === "--timeout") options.timeoutS = value();
    else if (arg === "--keep-file") options.keepFile = true;
    else if (arg === "--" || arg === "--file-load") continue;
    else throw new Error(`unknown option ${arg} (known: --file-mb N, --timeout S, --keep-file)`);
  }
  return options;
}

const TABLE_SQL = `create table public.file_rows (
  id bigint primary key,
  name text not null,
  amount integer not null,
  created_at timestamptz not null,
  note text
);`;

/** One CSV line of row `id` (about 120 bytes). */
function csvLine(id: number): string {
  const day = String((id % 28) + 1).padStart(2, "0");
  return `${id},customer-${id},${id % 100_000},2026-01-${day}T10:20:30Z,note for row ${id} with some filler text to widen it\n`;
}

/** Writes a CSV of at least `bytes` bytes to `path`, streamed; returns its rows and size. */
async function writeCsv(path: string, bytes: number): Promise<{ rows: number; size: number }> {
  const out = createWriteStream(path);
  let size = 0;
  let rows = 0;
  let chunk = "id,name,amount,created_at,note\n";
  while (size + chunk.length < bytes) {
    rows++;
    chunk += csvLine(rows);
    if (chunk.length >= 1 << 20) {
      size += chunk.length;
      if (!out.write(chunk)) await once(out, "drain");
      chunk = "";
    }
  }
  size += chunk.length;
  out.end(chunk);
  await once(out, "finish");
  return { rows, size };
}

/** Pids of `pid` and all its descendants (from /proc). */
function processTree(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    const child = Number(name);
    if (!Number.isInteger(child)) continue;
    try {
      const stat = readFileSync(`/proc/${child}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = parents.get(ppid) ?? [];
      list.push(child);
      parents.set(ppid, list);
    } catch {}
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) out.push(...(parents.get(out[i]!) ?? []));
  return out;
}

/** A /proc/<pid>/status field in bytes, 0 once the process is gone. */
function statusBytes(pid: number, field: "VmRSS" | "VmHWM"): number {
  try {
    const text = readFileSync(`/proc/${pid}/status`, "utf8");
    const at = text.indexOf(`${field}:`);
    if (at < 0) return 0;
    return Number.parseInt(text.slice(at + field.length + 1).trim(), 10) * 1024;
  } catch {
    return 0;
  }
}

/** Samples the summed VmRSS of each named process tree every 200 ms and keeps the peak. */
function sampleMemory(roots: Record<string, number>) {
  const peaks: Record<string, number> = {};
  const hwm: Record<string, number> = {};
  const tick = () => {
    for (const [name, pid] of Object.entries(roots)) {
      const tree = processTree(pid);
      const rss = tree.reduce((n, p) => n + statusBytes(p, "VmRSS"), 0);
      peaks[name] = Math.max(peaks[name] ?? 0, rss);
      hwm[name] = Math.max(hwm[name] ?? 0, ...tree.map((p) => statusBytes(p, "VmHWM")));
    }
  };
  tick();
  const timer = setInterval(tick, 200);
  return {
    stop() {
      clearInterval(timer);
      tick();
      return { peaks, hwm };
    },
  };
}

/** Uploads `path` to the pipeline as a streamed multipart body; resolves with the status and JSON body. */
async function uploadStreamed(
  baseUrl: string,
  token: string,
  pipeline: string,
  path: string,
  size: number,
): Promise<{ status: number; body: UploadAnswer }> {
  const boundary = `dray-bench-${Date.now().toString(16)}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="pipeline"\r\n\r\n${pipeline}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n` +
      "Content-Type: text/csv\r\n\r\n",
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const url = new URL("/api/v1/pipeline/upload", baseUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: "POST",
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": `multipart/form-data; boundary=${boundary}`,
          "content-length": String(head.length + size + tail.length),
        },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c) => {
          text += c;
        });
        res.on("end", () => {
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) });
          } catch {
            resolve({ status: res.statusCode ?? 0, body: { error: text } as UploadAnswer });
          }
        });
      },
    );
    req.on("error", reject);
    req.write(head);
    const file = createReadStream(path, { highWaterMark: 1 << 20 });
    file.on("error", reject);
    file.on("end", () => req.end(tail));
    file.pipe(req, { end: false });
  });
}

const mib = (bytes: number) => `${(bytes / MB).toFixed(0)} MiB`;

async function main() {
  const options = parseFileLoadOptions(process.argv.slice(2));
  const dir = await mkdtemp(join(tmpdir(), "dray-bench-file-"));
  const csv = join(dir, "big.csv");
  let t = performance.now();
  const { rows, size } = await writeCsv(csv, options.fileMb * MB);
  console.info(
    `generated ${csv}: ${rows} rows, ${mib(size)} in ${((performance.now() - t) / 1000).toFixed(1)} s`,
  );
  const stack = await startDrayStack(serverUrl, natsUrl);
  try {
    const target = await stack.addEnvironment("file-bench", TABLE_SQL);
    const created = await stack.api.post("/api/v1/pipelines", {
      name: "file-bench",
      sourceKind: "files",
      targetEnvironmentId: target.id,
      entities: ["public.file_rows"],
      writeStrategy: "insert",
      fileSettings: { format: "csv" },
    });
    if (created.status !== 201)
      throw new Error(`cannot create the pipeline: ${JSON.stringify(created.body)}`);
    const pipelineId = created.body.id as string;
    const sampler = sampleMemory({
      "control plane": stack.cp.child.pid!,
      "target agent": target.agent.child.pid!,
    });
    t = performance.now();
    const up = await uploadStreamed(stack.cp.httpUrl, stack.apiToken, "file-bench", csv, size);
    const uploadS = (performance.now() - t) / 1000;
    if (up.status !== 202) throw new Error(`upload answered ${up.status}: ${JSON.stringify(up.body)}`);
    console.info(`uploaded in ${uploadS.toFixed(1)} s (${(size / MB / uploadS).toFixed(1)} MiB/s)`);
    t = performance.now();
    const file = await eventually(
      async () => {
        const r = await stack.api.get<{ files?: FileRow[] }>(`/api/v1/pipelines/${pipelineId}/files`);
        const f = r.body.files?.find((x) => x.pipelineToken === up.body.pipelineToken);
        return f && f.state !== "Unloaded" ? f : undefined;
      },
      options.timeoutS * 1000,
      500,
    );
    const loadS = (performance.now() - t) / 1000;
    const memory = sampler.stop();
    const history = await stack.api.get<{ executions: HistoryRow[] }>(
      `/api/v1/pipelines/${pipelineId}/executions`,
    );
    const run = history.body.executions.find((e) => e.pipelineToken === up.body.pipelineToken);
    const view = run ? (await stack.api.get(`/api/v1/executions/${run.id}`)).body : undefined;
    const [count] = await target.db.sql<{ n: number }[]>`select count(*)::int as n from public.file_rows`;
    const lines = [
      `File load: ${rows} rows, ${mib(size)} CSV (5 columns, bigint primary key), insert, one file`,
      "",
      `- file state: ${file.state}${file.error ? ` (${file.error})` : ""}; rowsLoaded ${file.rowsLoaded}, rowsRejected ${file.rowsRejected}; target count ${count!.n}`,
      `- upload (streamed multipart, first byte → 202): ${uploadS.toFixed(1)} s, ${(size / MB / uploadS).toFixed(1)} MiB/s`,
      `- load (202 → Loaded seen, 500 ms polls): ${loadS.toFixed(1)} s, ${Math.round(rows / loadS)} rows/s` +
        (view ? `; executor: ${view.throughput} rows/s over ${view.durationMs} ms` : ""),
      `- upload + load: ${Math.round(rows / (uploadS + loadS))} rows/s end to end`,
      ...Object.keys(memory.peaks).map(
        (name) =>
          `- ${name}: peak VmRSS ${mib(memory.peaks[name]!)} (sampled every 200 ms), VmHWM ${mib(memory.hwm[name]!)}`,
      ),
    ];
    console.info(`\n${lines.join("\n")}`);
  } finally {
    await stack.close();
    if (!options.keepFile) await rm(dir, { recursive: true, force: true });
    else console.info(`kept ${csv} (${(await stat(csv)).size} bytes)`);
  }
}

await main();
