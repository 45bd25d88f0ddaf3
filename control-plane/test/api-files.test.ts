/**
 * File pipelines over the API against a fresh Postgres database: upload
 * (streamed staging, idempotent by content, gzip), the files list, DROP FILE,
 * the publisher-token status, the size limit, and the staging and purge
 * services. No executor runs: loads stay queued unless a test settles them.
 */
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { and, count, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiApp } from "../src/api/index.js";
import { createMemoryEventBus } from "../src/events/memory-event-bus.js";
import { purgeExpiredFiles } from "../src/files/file-records.js";
import { deleteStaged, readStagedFile, stageUpload } from "../src/files/file-staging.js";
import {
  type Db,
  environments,
  executionEvents,
  executionLog,
  executions,
  newId,
  pipelineFiles,
  pipelines,
  stagedFileChunks,
} from "../src/store/index.js";
import { type ApiHarness, createTestDatabase, openApiHarness, TEST_CONFIG } from "./api-test-harness.js";

const UPLOAD_LIMIT = 1.5 * 1024 * 1024;

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let h: ApiHarness;
let db: Db;
let app: ReturnType<typeof createApiApp>;
const queued: string[] = [];
let org: { id: string; admin: string; operator: string; viewer: string };
let other: typeof org;
let filesPipeline: typeof pipelines.$inferSelect;

async function insertFilesPipeline(
  organisationId: string,
  name: string,
  sourceKind: "files" | "environment",
) {
  const target = newId();
  const source = newId();
  await db.insert(environments).values([
    { id: target, organisationId, name: `${name}-dst`, platform: "postgres" },
    { id: source, organisationId, name: `${name}-src`, platform: "postgres" },
  ]);
  const [row] = await db
    .insert(pipelines)
    .values({
      id: newId(),
      organisationId,
      name,
      sourceKind,
      sourceEnvironmentId: sourceKind === "files" ? null : source,
      targetEnvironmentId: target,
      action: "copy",
      writeStrategy: "merge",
      entities: ["public.orders"],
      batchSize: 1000,
      batchBytes: 4_000_000,
      maxRetriesPerBatch: 2,
      stopOnError: true,
      entityConcurrency: 1,
      fileSettings: sourceKind === "files" ? { format: "csv" } : null,
    })
    .returning();
  return row!;
}

beforeAll(async () => {
  database = await createTestDatabase();
  h = await openApiHarness(database.url);
  db = h.store.db;
  // Not a fresh literal: the test limit rides along until ApiDeps' config names it.
  const config = { ...TEST_CONFIG, uploadMaxBytes: UPLOAD_LIMIT };
  app = createApiApp({
    db,
    agents: h.agents,
    logger: h.logger,
    config,
    bus: createMemoryEventBus(),
    onExecutionQueued: (id) => queued.push(id),
  });
  org = await h.tenant("files");
  other = await h.tenant("files-other");
  filesPipeline = await insertFilesPipeline(org.id, "orders_files", "files");
  await insertFilesPipeline(org.id, "orders_env", "environment");
  await insertFilesPipeline(other.id, "theirs", "files");
});
afterAll(async () => {
  await h?.close();
  await database?.drop();
});

interface UploadInput {
  pipeline?: string;
  publishertoken?: string;
  file?: { bytes: Uint8Array | string; name: string };
  /** Send the file before the fields. */
  fileFirst?: boolean;
}

async function upload(token: string | undefined, input: UploadInput) {
  const form = new FormData();
  const addFile = () => {
    if (input.file)
      form.append("file", new Blob([input.file.bytes as Uint8Array<ArrayBuffer> | string]), input.file.name);
  };
  if (input.fileFirst) addFile();
  if (input.pipeline !== undefined) form.append("pipeline", input.pipeline);
  if (input.publishertoken !== undefined) form.append("publishertoken", input.publishertoken);
  if (!input.fileFirst) addFile();
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const res = await app.request("/api/v1/pipeline/upload", { method: "POST", headers, body: form });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function call(method: string, path: string, token: string) {
  const res = await app.request(path, { method, headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

const sha = (bytes: Uint8Array | string) => createHash("sha256").update(bytes).digest("hex");
const stagedChunks = async () => (await db.select({ n: count() }).from(stagedFileChunks))[0]!.n;
const fileRow = async (pipelineId: string, fileId: string) =>
  (
    await db
      .select()
      .from(pipelineFiles)
      .where(and(eq(pipelineFiles.pipelineId, pipelineId), eq(pipelineFiles.fileId, fileId)))
  )[0];
const fileExecutions = async (fileId: string) =>
  db.select().from(executions).where(eq(executions.fileId, fileId)).orderBy(executions.createdAt);

describe("POST /api/v1/pipeline/upload", () => {
  const csv = "id,name\n1,Ada\n2,Grace\n";

  it("stages a CSV, records it Unloaded and queues one file load with a FileNotifier entry", async () => {
    const res = await upload(org.operator, {
      pipeline: "orders_files",
      file: { bytes: csv, name: "orders.csv" },
    });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({
      pipelineToken: expect.stringMatching(/^pt-/),
      status: "INITIALIZED",
      fileId: sha(csv),
      filename: "orders.csv",
      state: "Unloaded",
    });
    const row = await fileRow(filesPipeline.id, sha(csv));
    expect(row).toMatchObject({
      state: "Unloaded",
      filename: "orders.csv",
      format: "csv",
      compressed: false,
      sizeBytes: Buffer.byteLength(csv),
      pipelineToken: res.body.pipelineToken,
      organisationId: org.id,
    });
    const runs = await fileExecutions(sha(csv));
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({
      kind: "file",
      status: "queued",
      pipelineToken: res.body.pipelineToken,
      triggeredBy: { role: "operator" },
    });
    expect(row!.executionId).toBe(runs[0]!.id);
    expect((runs[0]!.snapshot as { file: unknown }).file).toEqual({
      fileId: sha(csv),
      uploadId: row!.uploadId,
      filename: "orders.csv",
      format: "csv",
      compressed: false,
      sizeBytes: Buffer.byteLength(csv),
    });
    const log = await db.select().from(executionLog).where(eq(executionLog.executionId, runs[0]!.id));
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({ processName: "FileNotifier", state: "begin", code: "begin" });
    expect(log[0]!.description).toBe(
      `Received orders.csv (${Buffer.byteLength(csv)} bytes, sha256 ${sha(csv).slice(0, 12)})`,
    );
    const events = await db
      .select()
      .from(executionEvents)
      .where(eq(executionEvents.executionId, runs[0]!.id));
    expect(events.map((e) => e.channel)).toEqual(["status", "log"]);
    expect(queued).toContain(runs[0]!.id);
    const chunks: Buffer[] = [];
    for await (const piece of readStagedFile(db, row!.uploadId!)) chunks.push(Buffer.from(piece));
    expect(Buffer.concat(chunks).toString()).toBe(csv);
  });

  it("answers the same bytes again with the first token and queues nothing", async () => {
    const first = await fileRow(filesPipeline.id, sha(csv));
    const chunksBefore = await stagedChunks();
    const started = performance.now();
    const res = await upload(org.admin, {
      pipeline: "orders_files",
      file: { bytes: csv, name: "renamed.csv" },
    });
    const ms = performance.now() - started;
    console.log(`duplicate upload answered in ${ms.toFixed(1)} ms`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      pipelineToken: first!.pipelineToken,
      status: "INITIALIZED",
      fileId: sha(csv),
      state: "Unloaded",
      duplicate: true,
    });
    expect(ms).toBeLessThan(1000);
    expect(await fileExecutions(sha(csv))).toHaveLength(1);
    expect(await stagedChunks()).toBe(chunksBefore);
  });

  it("recognises gzip by its bytes and answers the accepted shape", async () => {
    const bytes = gzipSync(Buffer.from("id,name\n3,Linus\n"));
    const res = await upload(org.operator, {
      pipeline: "orders_files",
      file: { bytes, name: "more.csv.gz" },
      fileFirst: true,
    });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({
      status: "accepted",
      publisherToken: expect.any(String),
      files: [
        {
          filename: "more.csv",
          fileId: sha(bytes),
          pipelineToken: expect.stringMatching(/^pt-/),
          state: "Unloaded",
        },
      ],
    });
    expect(await fileRow(filesPipeline.id, sha(bytes))).toMatchObject({
      compressed: true,
      filename: "more.csv",
      publisherToken: res.body.publisherToken,
    });
  });

  it("DROP FILE: 409 while queued; once the load ended, the bytes load again when re-uploaded", async () => {
    const fileId = sha(csv);
    const row = await fileRow(filesPipeline.id, fileId);
    const busy = await call("DELETE", `/api/v1/pipelines/${filesPipeline.id}/files/${fileId}`, org.operator);
    expect(busy.status).toBe(409);
    expect(busy.body.error.code).toBe("failed_precondition");
    expect(busy.body.error.message).toContain(row!.pipelineToken);
    expect(busy.body.error.message).toMatch(/wait for it to end, or cancel it/);
    expect(await fileRow(filesPipeline.id, fileId)).toBeDefined();

    // As the executor would leave it.
    await db
      .update(executions)
      .set({ status: "completed", finishedAt: new Date() })
      .where(eq(executions.id, row!.executionId!));
    await db
      .update(pipelineFiles)
      .set({ state: "Loaded", rowsLoaded: 2 })
      .where(and(eq(pipelineFiles.pipelineId, filesPipeline.id), eq(pipelineFiles.fileId, fileId)));
    expect(
      (await call("DELETE", `/api/v1/pipelines/${filesPipeline.id}/files/${fileId}`, org.viewer)).status,
    ).toBe(403);
    const dropped = await call(
      "DELETE",
      `/api/v1/pipelines/${filesPipeline.id}/files/${fileId}`,
      org.operator,
    );
    expect(dropped.status).toBe(204);
    expect(await fileRow(filesPipeline.id, fileId)).toBeUndefined();
    expect(
      await db.select().from(stagedFileChunks).where(eq(stagedFileChunks.uploadId, row!.uploadId!)),
    ).toEqual([]);
    expect(
      (await call("DELETE", `/api/v1/pipelines/${filesPipeline.id}/files/${fileId}`, org.operator)).status,
    ).toBe(404);

    const again = await upload(org.operator, {
      pipeline: "orders_files",
      file: { bytes: csv, name: "orders.csv" },
    });
    expect(again.status).toBe(202);
    expect(again.body.pipelineToken).not.toBe(row!.pipelineToken);
    expect((await fileExecutions(fileId)).map((e) => e.status)).toEqual(["completed", "queued"]);
  });

  it("answers 413 past DRAY_UPLOAD_MAX_BYTES and leaves no staged bytes", async () => {
    const before = await stagedChunks();
    const big = Buffer.alloc(2 * 1024 * 1024, 65);
    const res = await upload(org.operator, {
      pipeline: "orders_files",
      file: { bytes: big, name: "big.csv" },
    });
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe("invalid_argument");
    expect(res.body.error.message).toContain("DRAY_UPLOAD_MAX_BYTES");
    expect(res.body.error.message).toContain("1.5 MiB");
    expect(await stagedChunks()).toBe(before);
    expect(await fileRow(filesPipeline.id, sha(big))).toBeUndefined();
  });

  it("refuses unknown pipelines (404), environment pipelines (400), and forms without a file or with an empty one", async () => {
    const before = await stagedChunks();
    const file = { bytes: "id\n9\n", name: "x.csv" };
    for (const fileFirst of [true, false]) {
      const unknown = await upload(org.operator, { pipeline: "nope", file, fileFirst });
      expect(unknown.status).toBe(404);
      expect(unknown.body.error.message).toContain('"nope"');
    }
    const theirs = await upload(org.operator, { pipeline: "theirs", file, fileFirst: true });
    expect(theirs.status).toBe(404);
    const env = await upload(org.operator, { pipeline: "orders_env", file, fileFirst: true });
    expect(env.status).toBe(400);
    expect(env.body.error.message).toMatch(/not from files/);
    const noFile = await upload(org.operator, { pipeline: "orders_files" });
    expect(noFile.status).toBe(400);
    expect(noFile.body.error.message).toMatch(/no file/);
    const empty = await upload(org.operator, {
      pipeline: "orders_files",
      file: { bytes: "", name: "e.csv" },
    });
    expect(empty.status).toBe(400);
    expect(empty.body.error.message).toMatch(/empty/);
    const noPipeline = await upload(org.operator, { file });
    expect(noPipeline.status).toBe(400);
    const json = await app.request("/api/v1/pipeline/upload", {
      method: "POST",
      headers: { authorization: `Bearer ${org.operator}`, "content-type": "application/json" },
      body: "{}",
    });
    expect(json.status).toBe(400);
    expect(await stagedChunks()).toBe(before);
  });

  it("needs an operator or admin token of the organisation", async () => {
    const file = { bytes: "id\n7\n", name: "r.csv" };
    expect((await upload(org.viewer, { pipeline: "orders_files", file })).status).toBe(403);
    expect((await upload(undefined, { pipeline: "orders_files", file })).status).toBe(401);
    expect((await upload(h.systemToken, { pipeline: "orders_files", file })).status).toBe(403);
    expect(await fileRow(filesPipeline.id, sha("id\n7\n"))).toBeUndefined();
  });
});

describe("GET /api/v1/pipelines/:id/files", () => {
  it("lists the files newest first to a viewer, by pages; 404 for another organisation", async () => {
    const res = await call("GET", `/api/v1/pipelines/${filesPipeline.id}/files`, org.viewer);
    expect(res.status).toBe(200);
    const files = res.body.files as { fileId: string; uploadedAt: string }[];
    expect(files.length).toBe(2);
    expect(Object.keys(files[0]!).sort()).toEqual(
      [
        "compressed",
        "error",
        "fileId",
        "filename",
        "finishedAt",
        "format",
        "pipelineToken",
        "publisherToken",
        "rowsLoaded",
        "rowsRejected",
        "sizeBytes",
        "state",
        "uploadedAt",
      ].sort(),
    );
    expect(files[0]!.uploadedAt >= files[1]!.uploadedAt).toBe(true);
    expect(files[0]!.fileId).toBe(sha("id,name\n1,Ada\n2,Grace\n"));
    const first = await call("GET", `/api/v1/pipelines/${filesPipeline.id}/files?limit=1`, org.viewer);
    expect(first.body.files).toHaveLength(1);
    const second = await call(
      "GET",
      `/api/v1/pipelines/${filesPipeline.id}/files?limit=1&cursor=${first.body.next}`,
      org.viewer,
    );
    expect(second.body.files.map((f: { fileId: string }) => f.fileId)).toEqual([files[1]!.fileId]);
    expect(second.body.next).toBeNull();
    expect((await call("GET", `/api/v1/pipelines/${filesPipeline.id}/files`, other.viewer)).status).toBe(404);
  });
});

describe("GET /api/v1/pipeline/status by publisher token", () => {
  it("rolls up an upload batch and fills publisherToken and filename of a file load's stages", async () => {
    const a = await upload(org.operator, {
      pipeline: "orders_files",
      publishertoken: "batch-1",
      file: { bytes: "id\n100\n", name: "a.csv" },
    });
    const b = await upload(org.operator, {
      pipeline: "orders_files",
      publishertoken: "batch-1",
      file: { bytes: "id\n200\n", name: "b.csv" },
    });
    expect([a.status, b.status]).toEqual([202, 202]);
    const pending = await call("GET", "/api/v1/pipeline/status?publishertoken=batch-1", org.viewer);
    expect(pending.status).toBe(200);
    expect(pending.body).toEqual({
      publisherToken: "batch-1",
      allDone: false,
      files: [
        {
          filename: "a.csv",
          fileId: a.body.fileId,
          pipelineToken: a.body.pipelineToken,
          status: "INITIALIZED",
          state: "Unloaded",
          error: null,
        },
        {
          filename: "b.csv",
          fileId: b.body.fileId,
          pipelineToken: b.body.pipelineToken,
          status: "INITIALIZED",
          state: "Unloaded",
          error: null,
        },
      ],
    });
    const stages = await call(
      "GET",
      `/api/v1/pipeline/status?pipelinetoken=${a.body.pipelineToken}`,
      org.viewer,
    );
    expect(stages.body[0]).toMatchObject({
      publisherToken: "batch-1",
      filename: "a.csv",
      processName: "FileNotifier",
    });

    await db
      .update(executions)
      .set({ status: "in_progress" })
      .where(eq(executions.pipelineToken, a.body.pipelineToken));
    await db
      .update(executions)
      .set({ status: "failed" })
      .where(eq(executions.pipelineToken, b.body.pipelineToken));
    await db
      .update(pipelineFiles)
      .set({ state: "Skipped", error: "bad row 2" })
      .where(eq(pipelineFiles.pipelineToken, b.body.pipelineToken));
    const mid = await call("GET", "/api/v1/pipeline/status?publishertoken=batch-1", org.viewer);
    expect(mid.body.allDone).toBe(false);
    expect(mid.body.files.map((f: { status: string }) => f.status)).toEqual(["PROCESSING", "COMPLETED"]);
    expect(mid.body.files[1]).toMatchObject({ state: "Skipped", error: "bad row 2" });
    await db
      .update(executions)
      .set({ status: "completed" })
      .where(eq(executions.pipelineToken, a.body.pipelineToken));
    const done = await call("GET", "/api/v1/pipeline/status?publishertoken=batch-1", org.viewer);
    expect(done.body.allDone).toBe(true);

    expect((await call("GET", "/api/v1/pipeline/status?publishertoken=batch-1", other.viewer)).status).toBe(
      404,
    );
    expect((await call("GET", "/api/v1/pipeline/status?publishertoken=nope", org.viewer)).status).toBe(404);
    expect(
      (await call("GET", "/api/v1/pipeline/status?publishertoken=batch-1&pipelinename=x", org.viewer)).status,
    ).toBe(400);
  });
});

describe("staging and purge", () => {
  it("stages in chunks of the size asked, reads them back in order and deletes them", async () => {
    const bytes = Buffer.from(Array.from({ length: 10_000 }, (_, i) => i % 251));
    async function* pieces() {
      for (let at = 0; at < bytes.length; at += 333) yield bytes.subarray(at, at + 333);
    }
    const staged = await stageUpload(db, pieces(), { maxBytes: 20_000, chunkBytes: 1024 });
    expect(staged).toMatchObject({ fileId: sha(bytes), sizeBytes: 10_000, chunks: 10 });
    const back: Buffer[] = [];
    for await (const piece of readStagedFile(db, staged.uploadId)) back.push(Buffer.from(piece));
    expect(back.map((b) => b.length)).toEqual([...Array(9).fill(1024), 10_000 - 9 * 1024]);
    expect(Buffer.concat(back).equals(bytes)).toBe(true);
    expect(await deleteStaged(db, staged.uploadId)).toBe(10);
    await expect(stageUpload(db, pieces(), { maxBytes: 5_000, chunkBytes: 1024 })).rejects.toThrow(
      /5000 bytes/,
    );
  });

  it("purges loaded and skipped files past the retention and day-old orphaned chunks", async () => {
    const now = new Date();
    const old = new Date(now.getTime() - 91 * 86_400_000);
    const stage = async (text: string) => stageUpload(db, [Buffer.from(text)], { maxBytes: 1000 });
    const [loadedOld, unloadedOld, loadedNew, orphanOld, orphanNew] = await Promise.all(
      ["old loaded", "old unloaded", "new loaded", "old orphan", "new orphan"].map(stage),
    );
    const record = (staged: Awaited<ReturnType<typeof stage>>, state: "Loaded" | "Unloaded", at: Date) =>
      db.insert(pipelineFiles).values({
        pipelineId: filesPipeline.id,
        fileId: staged.fileId,
        organisationId: org.id,
        filename: "p.csv",
        format: "csv",
        sizeBytes: staged.sizeBytes,
        state,
        uploadId: staged.uploadId,
        pipelineToken: `pt-${newId()}`,
        uploadedAt: at,
      });
    await record(loadedOld!, "Loaded", old);
    await record(unloadedOld!, "Unloaded", old);
    await record(loadedNew!, "Loaded", now);
    await db
      .update(stagedFileChunks)
      .set({ createdAt: new Date(now.getTime() - 2 * 86_400_000) })
      .where(eq(stagedFileChunks.uploadId, orphanOld!.uploadId));
    const purged = await purgeExpiredFiles(db, now, 90);
    expect(purged).toEqual({ files: 1, chunks: 1, orphanChunks: 1 });
    const left = new Set(
      (await db.select({ id: stagedFileChunks.uploadId }).from(stagedFileChunks)).map((r) => r.id),
    );
    expect(left.has(loadedOld!.uploadId)).toBe(false);
    expect(left.has(orphanOld!.uploadId)).toBe(false);
    for (const kept of [unloadedOld!, loadedNew!, orphanNew!]) expect(left.has(kept.uploadId)).toBe(true);
    expect(await fileRow(filesPipeline.id, loadedOld!.fileId)).toBeUndefined();
    expect(await fileRow(filesPipeline.id, unloadedOld!.fileId)).toBeDefined();
  });
});

describe("OpenAPI", () => {
  it("documents the upload, files and publisher-status routes", async () => {
    const doc = (await (await app.request("/api/v1/openapi.json")).json()) as {
      paths: Record<
        string,
        Record<string, { operationId: string; requestBody?: { content: Record<string, unknown> } }>
      >;
      components: { schemas: Record<string, unknown> };
    };
    expect(doc.paths["/api/v1/pipeline/upload"]?.post?.operationId).toBe("uploadPipelineFile");
    expect(Object.keys(doc.paths["/api/v1/pipeline/upload"]!.post!.requestBody!.content)).toEqual([
      "multipart/form-data",
    ]);
    expect(doc.paths["/api/v1/pipelines/{id}/files"]?.get?.operationId).toBe("listPipelineFiles");
    expect(doc.paths["/api/v1/pipelines/{id}/files/{fileId}"]?.delete?.operationId).toBe("dropPipelineFile");
    expect(Object.keys(doc.components.schemas)).toEqual(
      expect.arrayContaining([
        "PublisherStatus",
        "PipelineFile",
        "UploadedFile",
        "UploadedArchive",
        "DuplicateUpload",
      ]),
    );
  });
});
