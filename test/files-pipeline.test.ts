/**
 * File pipelines end to end (control plane and agent as real processes): CSV,
 * NDJSON and gzip uploads load into a real Postgres target; the file states,
 * stage entries and error log say what happened; a bad row is skipped by line;
 * a value the target cannot take skips the file; DROP FILE lets the same bytes
 * load again; the same bytes twice load once; a publisher token rolls up its
 * files; and loads into one table are serialised.
 */
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { eventually } from "./support/api-client.js";
import { type DrayStack, type StackEnvironment, startDrayStack } from "./support/dray-stack.js";
import { countRows, createPipeline } from "./support/executions.js";

/** One table per test, so that each test owns its target rows. */
const TABLES = ["t_csv", "t_ndjson", "t_gzip", "t_badrow", "t_badvalue", "t_dup", "t_pub", "t_serial"];
const SETUP_SQL = [
  ...TABLES.map(
    (t) => `create table public.${t} (id integer primary key, name text not null, amount integer);`,
  ),
  // A constraint the target enforces on its own: a file breaking it fails until the constraint goes.
  "create table public.t_fixed (id integer primary key, name text not null, amount integer, constraint amount_small check (amount < 100));",
].join("\n");

let stack: DrayStack;
let target: StackEnvironment;

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"));
  target = await stack.addEnvironment("files-target", SETUP_SQL);
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

/** Creates a files pipeline into `public.<table>` and returns its id and name. */
async function filesPipeline(
  table: string,
  fileSettings: Record<string, unknown>,
  writeStrategy: "insert" | "merge" = "insert",
): Promise<{ id: string; name: string }> {
  const name = `files-${table.replaceAll("_", "-")}`;
  const id = await createPipeline(stack.api, {
    name,
    sourceKind: "files",
    targetEnvironmentId: target.id,
    entities: [`public.${table}`],
    writeStrategy,
    fileSettings,
  });
  return { id, name };
}

/** Uploads `bytes` as the form field `file` (multipart) and returns the answer. */
async function upload(
  pipeline: string,
  filename: string,
  bytes: Uint8Array | string,
  publisherToken?: string,
): Promise<{ status: number; body: any; ms: number }> {
  const form = new FormData();
  form.append("pipeline", pipeline);
  if (publisherToken) form.append("publishertoken", publisherToken);
  form.append("file", new Blob([bytes]), filename);
  const started = performance.now();
  const response = await fetch(`${stack.cp.httpUrl}/api/v1/pipeline/upload`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.apiToken}` },
    body: form,
  });
  const text = await response.text();
  const ms = performance.now() - started;
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: response.status, body, ms };
}

/** The files of a pipeline (first page). */
async function filesOf(pipelineId: string): Promise<any[]> {
  const r = await stack.api.get(`/api/v1/pipelines/${pipelineId}/files?limit=100`);
  expect(r.status).toBe(200);
  return r.body.files;
}

/** Waits until the file with this token is no longer Unloaded and returns it. */
async function settledFile(pipelineId: string, pipelineToken: string, timeoutMs = 90_000): Promise<any> {
  return eventually(
    async () => {
      const file = (await filesOf(pipelineId)).find((f) => f.pipelineToken === pipelineToken);
      return file && file.state !== "Unloaded" ? file : undefined;
    },
    timeoutMs,
    200,
  );
}

/** The stage entries of a job by its pipeline token. */
async function stagesOf(pipelineToken: string): Promise<any[]> {
  const r = await stack.api.get(`/api/v1/pipeline/status?pipelinetoken=${encodeURIComponent(pipelineToken)}`);
  expect(r.status).toBe(200);
  return r.body;
}

/** The execution id of the job with this pipeline token. */
async function executionIdOf(pipelineId: string, pipelineToken: string): Promise<string> {
  const r = await stack.api.get(`/api/v1/pipelines/${pipelineId}/executions?pageSize=100`);
  expect(r.status).toBe(200);
  const run = r.body.executions.find((e: any) => e.pipelineToken === pipelineToken);
  expect(run).toBeDefined();
  return run.id;
}

/** CSV text with a header and rows `id,name-<id>,<id*10>` for ids from..to. */
function csvRows(from: number, to: number): string {
  let text = "id,name,amount\n";
  for (let id = from; id <= to; id++) text += `${id},name-${id},${id * 10}\n`;
  return text;
}

async function rowsOf(table: string): Promise<{ id: number; name: string; amount: number | null }[]> {
  return target.db.sql.unsafe(`select id, name, amount from public.${table} order by id`) as any;
}

describe("file pipelines", () => {
  it("loads an uploaded CSV: target rows equal the file, file Loaded, seed stage entries", async () => {
    const p = await filesPipeline("t_csv", { format: "csv" });
    const up = await upload(p.name, "people.csv", csvRows(1, 50));
    expect(up.status).toBe(202);
    expect(up.body).toMatchObject({ status: "INITIALIZED", filename: "people.csv", state: "Unloaded" });
    expect(up.body.pipelineToken).toEqual(expect.any(String));
    expect(up.body.fileId).toMatch(/^[0-9a-f]{64}$/);

    const file = await settledFile(p.id, up.body.pipelineToken);
    expect(file).toMatchObject({
      fileId: up.body.fileId,
      filename: "people.csv",
      format: "csv",
      compressed: false,
      state: "Loaded",
      error: null,
      rowsLoaded: 50,
      rowsRejected: 0,
      publisherToken: null,
    });
    const rows = await rowsOf("t_csv");
    expect(rows).toHaveLength(50);
    expect(rows[0]).toEqual({ id: 1, name: "name-1", amount: 10 });
    expect(rows[49]).toEqual({ id: 50, name: "name-50", amount: 500 });
    expect(rows.every((r) => r.name === `name-${r.id}` && r.amount === r.id * 10)).toBe(true);

    const stages = await stagesOf(up.body.pipelineToken);
    const keys = [
      "id",
      "dateTime",
      "pipeline",
      "processName",
      "publisherToken",
      "pipelineToken",
      "filename",
      "state",
      "code",
      "description",
      "epoch",
    ];
    for (const s of stages) {
      expect(Object.keys(s).sort()).toEqual([...keys].sort());
      expect(s).toMatchObject({
        pipeline: p.name,
        pipelineToken: up.body.pipelineToken,
        filename: "people.csv",
      });
      expect(typeof s.epoch).toBe("number");
      expect(Date.parse(s.dateTime)).not.toBeNaN();
    }
    const has = (processName: string, state: string) =>
      stages.some((s) => s.processName === processName && s.state === state);
    expect(has("FileNotifier", "begin")).toBe(true);
    expect(has("FileNotifier", "end")).toBe(true);
    expect(has("JobRunner", "begin")).toBe(true);
    expect(has("JobRunner", "end")).toBe(true);
    expect(has("PostgresLoader", "begin")).toBe(true);
    expect(has("PostgresLoader", "end")).toBe(true);
    expect(stages[0].processName).toBe("FileNotifier");
    expect(stages.some((s) => s.processName === "DataQuality")).toBe(false);
  });

  it("loads NDJSON and a gzip-compressed CSV", async () => {
    const nd = await filesPipeline("t_ndjson", { format: "ndjson" });
    const lines = Array.from({ length: 20 }, (_, i) =>
      JSON.stringify({ id: i + 1, name: `json-${i + 1}`, amount: i % 2 === 0 ? null : i }),
    );
    const upNd = await upload(nd.name, "rows.ndjson", `${lines.join("\n")}\n`);
    expect(upNd.status).toBe(202);

    const gz = await filesPipeline("t_gzip", { format: "csv" });
    const upGz = await upload(gz.name, "rows.csv.gz", gzipSync(Buffer.from(csvRows(1, 30))), "pub-gzip-1");
    expect(upGz.status).toBe(202);
    expect(upGz.body).toMatchObject({ status: "accepted", publisherToken: "pub-gzip-1" });
    expect(upGz.body.files).toHaveLength(1);
    expect(upGz.body.files[0]).toMatchObject({ filename: "rows.csv", state: "Unloaded" });

    const fileNd = await settledFile(nd.id, upNd.body.pipelineToken);
    expect(fileNd).toMatchObject({ state: "Loaded", format: "ndjson", rowsLoaded: 20, rowsRejected: 0 });
    const ndRows = await rowsOf("t_ndjson");
    expect(ndRows).toHaveLength(20);
    expect(ndRows[0]).toEqual({ id: 1, name: "json-1", amount: null });
    expect(ndRows[1]).toEqual({ id: 2, name: "json-2", amount: 1 });

    const fileGz = await settledFile(gz.id, upGz.body.files[0].pipelineToken);
    expect(fileGz).toMatchObject({
      state: "Loaded",
      compressed: true,
      filename: "rows.csv",
      rowsLoaded: 30,
      publisherToken: "pub-gzip-1",
    });
    const gzRows = await rowsOf("t_gzip");
    expect(gzRows).toHaveLength(30);
    expect(gzRows[29]).toEqual({ id: 30, name: "name-30", amount: 300 });
  });

  it("skips a row with the wrong number of columns, reports it by line and loads the rest", async () => {
    const p = await filesPipeline("t_badrow", { format: "csv" });
    // Line 1 is the header; line 3 has one column too many.
    const text = "id,name,amount\n1,a,10\n2,b,20,extra\n3,c,30\n4,d,40\n";
    const up = await upload(p.name, "bad-row.csv", text);
    expect(up.status).toBe(202);
    const file = await settledFile(p.id, up.body.pipelineToken);
    expect(file).toMatchObject({ state: "Loaded", rowsLoaded: 3, rowsRejected: 1, error: null });
    expect((await rowsOf("t_badrow")).map((r) => r.id)).toEqual([1, 3, 4]);

    const executionId = await executionIdOf(p.id, up.body.pipelineToken);
    const errors = await stack.api.get(`/api/v1/executions/${executionId}/errors`);
    expect(errors.status).toBe(200);
    const bad = errors.body.errors.filter((e: any) => e.code === "bad_row");
    expect(bad).toHaveLength(1);
    expect(bad[0].recordKey).toEqual(["line 3"]);
    const stages = await stagesOf(up.body.pipelineToken);
    expect(stages.some((s) => s.processName === "DataQuality")).toBe(true);
  });

  it("skips a file with a value the target cannot take; DROP FILE lets the same bytes load again", async () => {
    const p = await filesPipeline("t_badvalue", { format: "csv" });
    const bad = "id,name,amount\n1,a,10\n2,b,abc\n";
    const first = await upload(p.name, "bad-value.csv", bad);
    expect(first.status).toBe(202);
    const skipped = await settledFile(p.id, first.body.pipelineToken, 120_000);
    expect(skipped.state).toBe("Skipped");
    expect(skipped.error).toEqual(expect.any(String));
    console.info(`skipped file error: ${skipped.error}`);
    expect(skipped.error).toMatch(/abc/);
    expect(await countRows(target.db.sql, "t_badvalue")).toBe(0);
    const stages = await stagesOf(first.body.pipelineToken);
    expect(stages.some((s) => s.processName === "FileNotifier" && s.state === "error")).toBe(true);
    expect(stages.some((s) => s.processName === "JobRunner" && s.state === "error")).toBe(true);

    // Without a drop, the same bytes are a duplicate.
    const again = await upload(p.name, "bad-value.csv", bad);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ duplicate: true, pipelineToken: first.body.pipelineToken });

    const dropped = await stack.api.delete(`/api/v1/pipelines/${p.id}/files/${first.body.fileId}`);
    expect(dropped.status).toBe(204);
    expect((await filesOf(p.id)).some((f) => f.fileId === first.body.fileId)).toBe(false);

    const reload = await upload(p.name, "bad-value.csv", bad);
    expect(reload.status).toBe(202);
    expect(reload.body.fileId).toBe(first.body.fileId);
    expect(reload.body.pipelineToken).not.toBe(first.body.pipelineToken);
    expect(reload.body.state).toBe("Unloaded");
    const skippedAgain = await settledFile(p.id, reload.body.pipelineToken, 120_000);
    expect(skippedAgain.state).toBe("Skipped");

    const good = await upload(p.name, "good-value.csv", "id,name,amount\n1,a,10\n2,b,20\n");
    expect(good.status).toBe(202);
    const loaded = await settledFile(p.id, good.body.pipelineToken);
    expect(loaded).toMatchObject({ state: "Loaded", rowsLoaded: 2, rowsRejected: 0 });
    expect(await rowsOf("t_badvalue")).toEqual([
      { id: 1, name: "a", amount: 10 },
      { id: 2, name: "b", amount: 20 },
    ]);
  });

  it("seed 03: a file Skipped after its retries loads once the cause is fixed, DROP FILE, and the same bytes again", async () => {
    const p = await filesPipeline("t_fixed", { format: "csv" });
    const bytes = "id,name,amount\n1,a,10\n2,b,500\n";
    const first = await upload(p.name, "big-amounts.csv", bytes);
    expect(first.status).toBe(202);
    const skipped = await settledFile(p.id, first.body.pipelineToken, 120_000);
    expect(skipped.state).toBe("Skipped");
    expect(skipped.error).toMatch(/amount_small/);
    expect(await countRows(target.db.sql, "t_fixed")).toBe(0);

    // Loaded or Skipped files are not loaded again until DROP FILE (the same bytes answer their old token).
    await target.db.sql.unsafe("alter table public.t_fixed drop constraint amount_small");
    const same = await upload(p.name, "big-amounts.csv", bytes);
    expect(same.status).toBe(200);
    expect(same.body).toMatchObject({
      duplicate: true,
      pipelineToken: first.body.pipelineToken,
      state: "Skipped",
    });
    expect((await stack.api.delete(`/api/v1/pipelines/${p.id}/files/${first.body.fileId}`)).status).toBe(204);

    const reload = await upload(p.name, "big-amounts.csv", bytes);
    expect(reload.status).toBe(202);
    expect(reload.body.fileId).toBe(first.body.fileId);
    const loaded = await settledFile(p.id, reload.body.pipelineToken, 120_000);
    expect(loaded).toMatchObject({ state: "Loaded", rowsLoaded: 2, rowsRejected: 0, error: null });
    expect(await rowsOf("t_fixed")).toEqual([
      { id: 1, name: "a", amount: 10 },
      { id: 2, name: "b", amount: 500 },
    ]);
  });

  it("loads the same bytes once: the second upload answers 200 duplicate with the same token", async () => {
    const p = await filesPipeline("t_dup", { format: "csv" }, "merge");
    const bytes = csvRows(1, 25);
    const first = await upload(p.name, "dup.csv", bytes);
    expect(first.status).toBe(202);
    await settledFile(p.id, first.body.pipelineToken);
    expect(await countRows(target.db.sql, "t_dup")).toBe(25);
    // The file turns Loaded in the transaction that ends its job: never Loaded while the job is PROCESSING.
    const runs = await stack.api.get(`/api/v1/pipelines/${p.id}/executions`);
    expect(runs.body.executions.map((e: { status: string }) => e.status)).toEqual(["completed"]);

    const second = await upload(p.name, "dup-again.csv", bytes);
    console.info(`duplicate upload answered in ${second.ms.toFixed(1)} ms`);
    expect(second.status).toBe(200);
    expect(second.body).toMatchObject({
      duplicate: true,
      pipelineToken: first.body.pipelineToken,
      fileId: first.body.fileId,
      state: "Loaded",
      status: "COMPLETED",
    });
    expect(second.ms).toBeLessThan(1000);
    const files = await filesOf(p.id);
    expect(files).toHaveLength(1);
    const history = await stack.api.get(`/api/v1/pipelines/${p.id}/executions`);
    expect(history.body.executions).toHaveLength(1);
    expect(await countRows(target.db.sql, "t_dup")).toBe(25);
  });

  it("rolls up a publisher token: allDone once both files are Loaded", async () => {
    const p = await filesPipeline("t_pub", { format: "csv" });
    const token = "pub-batch-42";
    const a = await upload(p.name, "a.csv", csvRows(1, 10), token);
    const b = await upload(p.name, "b.csv", csvRows(11, 25), token);
    expect(a.status).toBe(202);
    expect(b.status).toBe(202);
    const status = await eventually(
      async () => {
        const r = await stack.api.get(`/api/v1/pipeline/status?publishertoken=${token}`);
        expect(r.status).toBe(200);
        return r.body.allDone ? r.body : undefined;
      },
      90_000,
      200,
    );
    expect(status.publisherToken).toBe(token);
    expect(status.files).toHaveLength(2);
    for (const f of status.files)
      expect(f).toMatchObject({ state: "Loaded", status: "COMPLETED", error: null });
    expect(status.files.map((f: any) => f.pipelineToken).sort()).toEqual(
      [a.body.pipelineToken, b.body.pipelineToken].sort(),
    );
    expect(await countRows(target.db.sql, "t_pub")).toBe(25);
    const stages = await stagesOf(a.body.pipelineToken);
    expect(stages.every((s) => s.publisherToken === token)).toBe(true);
  });

  it("serialises loads into one table: three quick uploads all load, row count is their sum", async () => {
    const p = await filesPipeline("t_serial", { format: "csv" });
    const ups = await Promise.all([
      upload(p.name, "s1.csv", csvRows(1, 300)),
      upload(p.name, "s2.csv", csvRows(301, 700)),
      upload(p.name, "s3.csv", csvRows(701, 1200)),
    ]);
    for (const u of ups) expect(u.status).toBe(202);
    const files = await Promise.all(ups.map((u) => settledFile(p.id, u.body.pipelineToken)));
    expect(files.map((f) => f.state)).toEqual(["Loaded", "Loaded", "Loaded"]);
    expect(files.map((f) => f.rowsLoaded)).toEqual([300, 400, 500]);
    expect(files.every((f) => f.rowsRejected === 0 && f.error === null)).toBe(true);
    expect(await countRows(target.db.sql, "t_serial")).toBe(1200);
    // The loader windows (PostgresLoader begin → end, taken under the target lock) do not overlap.
    const windows = [];
    for (const u of ups) {
      const stages = await stagesOf(u.body.pipelineToken);
      const begin = stages.find((s) => s.processName === "PostgresLoader" && s.state === "begin");
      const end = stages.find((s) => s.processName === "PostgresLoader" && s.state === "end");
      windows.push({ begin: begin.epoch as number, end: end.epoch as number });
    }
    windows.sort((x, y) => x.begin - y.begin);
    for (let i = 1; i < windows.length; i++)
      expect(windows[i]!.begin).toBeGreaterThanOrEqual(windows[i - 1]!.end);
    for (const u of ups) {
      const id = await executionIdOf(p.id, u.body.pipelineToken);
      const errors = await stack.api.get(`/api/v1/executions/${id}/errors`);
      expect(errors.body.errors).toEqual([]);
    }
  });
});
