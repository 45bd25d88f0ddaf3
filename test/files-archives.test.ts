/**
 * Archives uploaded to file pipelines, end to end (control plane and agent as
 * real processes): each regular entry of a .tar.gz or tar becomes its own
 * file (own id, token and load) into a real Postgres target; the same archive
 * again answers every entry as a duplicate; one bad entry is Skipped while
 * the others load; a publisher token rolls the entries up; a zip, a damaged
 * archive and an archive of too many files answer 400 with nothing queued or
 * staged.
 */
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { eventually } from "./support/api-client.js";
import { type DrayStack, type StackEnvironment, startDrayStack } from "./support/dray-stack.js";
import { countRows, createPipeline } from "./support/executions.js";

const TABLES = ["t_arch", "t_arch_bad", "t_arch_refused"];
const SETUP_SQL = TABLES.map(
  (t) => `create table public.${t} (id integer primary key, name text not null, amount integer);`,
).join("\n");

let stack: DrayStack;
let target: StackEnvironment;

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"));
  target = await stack.addEnvironment("archives-target", SETUP_SQL);
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

/** One ustar header block. */
function tarHeader(name: string, size: number, type = "0"): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, "utf8");
  h.write("0000644\0", 100, "latin1");
  h.write("0000000\0", 108, "latin1");
  h.write("0000000\0", 116, "latin1");
  h.write(`${size.toString(8).padStart(11, "0")}\0`, 124, "latin1");
  h.write("14771734401\0", 136, "latin1");
  h.write(type, 156, "latin1");
  h.write("ustar\u000000", 257, "latin1");
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  return h;
}

/** A tar of these entries (a `type` of "5" is a directory), with its end-of-archive blocks. */
function tarOf(entries: { name: string; data?: string | Buffer; type?: string }[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const data = typeof e.data === "string" ? Buffer.from(e.data) : (e.data ?? Buffer.alloc(0));
    blocks.push(
      tarHeader(e.name, data.length, e.type),
      data,
      Buffer.alloc((512 - (data.length % 512)) % 512),
    );
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** CSV text with a header and rows `id,name-<id>,<id*10>` for ids from..to. */
function csvRows(from: number, to: number): string {
  let text = "id,name,amount\n";
  for (let id = from; id <= to; id++) text += `${id},name-${id},${id * 10}\n`;
  return text;
}

const sha = (bytes: string | Buffer) => createHash("sha256").update(bytes).digest("hex");

/** Creates a files pipeline into `public.<table>` and returns its id and name. */
async function filesPipeline(table: string): Promise<{ id: string; name: string }> {
  const name = `files-${table.replaceAll("_", "-")}`;
  const id = await createPipeline(stack.api, {
    name,
    sourceKind: "files",
    targetEnvironmentId: target.id,
    entities: [`public.${table}`],
    writeStrategy: "insert",
    fileSettings: { format: "csv" },
  });
  return { id, name };
}

/** Uploads `bytes` as the form field `file` (multipart) and returns the answer. */
async function upload(
  pipeline: string,
  filename: string,
  bytes: Uint8Array,
  publisherToken?: string,
): Promise<{ status: number; body: any }> {
  const form = new FormData();
  form.append("pipeline", pipeline);
  if (publisherToken) form.append("publishertoken", publisherToken);
  form.append("file", new Blob([bytes as Uint8Array<ArrayBuffer>]), filename);
  const response = await fetch(`${stack.cp.httpUrl}/api/v1/pipeline/upload`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.apiToken}` },
    body: form,
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: response.status, body };
}

/** The files of a pipeline (first page). */
async function filesOf(pipelineId: string): Promise<any[]> {
  const r = await stack.api.get(`/api/v1/pipelines/${pipelineId}/files?limit=100`);
  expect(r.status).toBe(200);
  return r.body.files;
}

/** The executions of a pipeline (first page). */
async function executionsOf(pipelineId: string): Promise<any[]> {
  const r = await stack.api.get(`/api/v1/pipelines/${pipelineId}/executions?pageSize=100`);
  expect(r.status).toBe(200);
  return r.body.executions;
}

/** Waits until every file with these tokens is no longer Unloaded and returns them in token order. */
async function settledFiles(pipelineId: string, tokens: string[]): Promise<any[]> {
  return eventually(
    async () => {
      const files = await filesOf(pipelineId);
      const found = tokens.map((t) => files.find((f) => f.pipelineToken === t));
      return found.every((f) => f && f.state !== "Unloaded") ? found : undefined;
    },
    120_000,
    200,
  );
}

/** Rows of the control plane's staged_file_chunks. */
async function stagedChunkCount(): Promise<number> {
  const [row] = await stack.store.sql`select count(*)::int as n from staged_file_chunks`;
  return row!.n as number;
}

describe("archives uploaded to file pipelines", () => {
  it("loads each CSV of a .tar.gz as its own file; the same archive again is all duplicates", async () => {
    const p = await filesPipeline("t_arch");
    const csv = [csvRows(1, 10), csvRows(11, 30), csvRows(31, 35)];
    const archive = gzipSync(
      tarOf([
        { name: "batch/", type: "5" },
        { name: "batch/one.csv", data: csv[0] },
        { name: "batch/._one.csv", data: "\u0000\u0005\u0016\u0007 apple double" },
        { name: "__MACOSX/batch/two.csv", data: "resource fork" },
        { name: "batch/two.csv", data: csv[1] },
        { name: "batch/three.csv", data: csv[2] },
      ]),
    );
    const up = await upload(p.name, "batch.tar.gz", archive, "pub-archive-1");
    expect(up.status).toBe(202);
    expect(up.body).toEqual({
      status: "accepted",
      publisherToken: "pub-archive-1",
      files: ["one", "two", "three"].map((n, i) => ({
        filename: `batch/${n}.csv`,
        fileId: sha(csv[i]!),
        pipelineToken: expect.stringMatching(/^pt-/),
        state: "Unloaded",
      })),
    });
    const tokens = up.body.files.map((f: any) => f.pipelineToken);
    expect(new Set(tokens).size).toBe(3);

    const files = await settledFiles(p.id, tokens);
    expect(files.map((f) => [f.filename, f.state, f.rowsLoaded, f.compressed, f.publisherToken])).toEqual([
      ["batch/one.csv", "Loaded", 10, false, "pub-archive-1"],
      ["batch/two.csv", "Loaded", 20, false, "pub-archive-1"],
      ["batch/three.csv", "Loaded", 5, false, "pub-archive-1"],
    ]);
    expect(await countRows(target.db.sql, "t_arch")).toBe(35);
    expect(await executionsOf(p.id)).toHaveLength(3);

    // The publisher token rolls the entries up (allDone once every load's execution has ended).
    const status = await eventually(
      async () => {
        const r = await stack.api.get("/api/v1/pipeline/status?publishertoken=pub-archive-1");
        expect(r.status).toBe(200);
        return r.body.allDone ? r.body : undefined;
      },
      30_000,
      200,
    );
    expect(status.files.map((f: any) => f.pipelineToken).sort()).toEqual([...tokens].sort());
    for (const f of status.files) expect(f).toMatchObject({ state: "Loaded", status: "COMPLETED" });

    // The same archive again: every entry answers its first token, nothing is queued or staged.
    const chunksBefore = await stagedChunkCount();
    const again = await upload(p.name, "batch-again.tar.gz", archive);
    expect(again.status).toBe(202);
    expect(again.body.publisherToken).toMatch(/^pub-/);
    expect(again.body.files).toEqual(
      up.body.files.map((f: any) => ({ ...f, state: "Loaded", duplicate: true })),
    );
    expect(await executionsOf(p.id)).toHaveLength(3);
    expect(await filesOf(p.id)).toHaveLength(3);
    expect(await stagedChunkCount()).toBe(chunksBefore);
    expect(await countRows(target.db.sql, "t_arch")).toBe(35);
  });

  it("skips the one bad entry of a tar and loads the others (a gzip entry included)", async () => {
    const p = await filesPipeline("t_arch_bad");
    const good = csvRows(1, 4);
    const bad = "id,name,amount\n100,x,10\n101,y,abc\n";
    const zipped = gzipSync(csvRows(200, 202));
    const up = await upload(
      p.name,
      "mixed.tar",
      tarOf([
        { name: "good.csv", data: good },
        { name: "bad.csv", data: bad },
        { name: "more.csv.gz", data: zipped },
        { name: "copy/good.csv", data: good },
      ]),
    );
    expect(up.status).toBe(202);
    expect(up.body.files.map((f: any) => [f.filename, f.fileId])).toEqual([
      ["good.csv", sha(good)],
      ["bad.csv", sha(bad)],
      ["more.csv.gz", sha(zipped)],
      ["copy/good.csv", sha(good)],
    ]);
    // The same bytes twice in one archive: the second answers the first's token.
    expect(up.body.files[3]).toMatchObject({
      duplicate: true,
      state: "Unloaded",
      pipelineToken: up.body.files[0].pipelineToken,
    });
    expect(await executionsOf(p.id)).toHaveLength(3);
    const [g, b, z] = await settledFiles(
      p.id,
      up.body.files.slice(0, 3).map((f: any) => f.pipelineToken),
    );
    expect(g).toMatchObject({ state: "Loaded", rowsLoaded: 4, compressed: false });
    expect(b.state).toBe("Skipped");
    expect(b.error).toMatch(/abc/);
    expect(z).toMatchObject({ filename: "more.csv", state: "Loaded", rowsLoaded: 3, compressed: true });
    const ids = (await target.db.sql`select id from public.t_arch_bad order by id`).map((r) => r.id);
    expect(ids).toEqual([1, 2, 3, 4, 200, 201, 202]);

    const status = await eventually(
      async () => {
        const r = await stack.api.get(`/api/v1/pipeline/status?publishertoken=${up.body.publisherToken}`);
        return r.body.allDone ? r.body : undefined;
      },
      30_000,
      200,
    );
    expect(status.files.map((f: any) => f.state).sort()).toEqual(["Loaded", "Loaded", "Skipped"]);
  });

  it("answers 400 to a zip, a damaged archive and too many files, with nothing queued or staged", async () => {
    const p = await filesPipeline("t_arch_refused");
    const chunksBefore = await stagedChunkCount();

    const zip = Buffer.concat([Buffer.from("PK\u0003\u0004"), Buffer.alloc(100, 1)]);
    const zipped = await upload(p.name, "files.zip", zip);
    expect(zipped.status).toBe(400);
    expect(zipped.body.error).toMatchObject({
      code: "invalid_argument",
      message: "zip archives are not supported: upload the files, or a .tar.gz of them",
    });

    // Two good entries, then the stream breaks off inside the third.
    const tar = tarOf([
      { name: "a.csv", data: csvRows(1, 1000) },
      { name: "b.csv", data: csvRows(1001, 2000) },
      { name: "c.csv", data: csvRows(2001, 3000) },
    ]);
    const truncated = gzipSync(tar).subarray(0, Math.floor(gzipSync(tar).length * 0.8));
    const broken = await upload(p.name, "broken.tar.gz", truncated);
    expect(broken.status).toBe(400);
    expect(broken.body.error.code).toBe("invalid_argument");
    expect(broken.body.error.message).toMatch(/^the archive is not valid gzip/);

    // A damaged header after a good entry (valid gzip, invalid tar).
    const damaged = Buffer.from(tar);
    const second = 512 + Math.ceil(Buffer.byteLength(csvRows(1, 1000)) / 512) * 512;
    damaged[second + 10] = damaged[second + 10]! ^ 0xff;
    const bad = await upload(p.name, "damaged.tar.gz", gzipSync(damaged));
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/^the archive is not a valid tar: .*checksum/);

    const many = tarOf(Array.from({ length: 1001 }, (_, i) => ({ name: `f${i}.csv`, data: `id\n${i}\n` })));
    const tooMany = await upload(p.name, "many.tar.gz", gzipSync(many));
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.error.message).toMatch(/more than 1000 files/);

    const traversal = await upload(p.name, "evil.tar", tarOf([{ name: "../../etc/x.csv", data: "id\n1\n" }]));
    expect(traversal.status).toBe(400);
    expect(traversal.body.error.message).toMatch(/leaves the archive/);

    expect(await filesOf(p.id)).toEqual([]);
    expect(await executionsOf(p.id)).toEqual([]);
    expect(await stagedChunkCount()).toBe(chunksBefore);
    expect(await countRows(target.db.sql, "t_arch_refused")).toBe(0);
  });
});
