/**
 * `dray upload`, `dray files`, `dray files drop` and `dray pipeline start|stop` against the
 * control plane's API app over a test database (in-process, the CLI's fetch routed to it,
 * the upload body streamed): the files land in pipeline_files under one publisher token,
 * the same bytes again are a duplicate, refusals (missing file, unknown pipeline, too large,
 * a start or stop the pipeline's state refuses) are one line with a non-zero exit code.
 * No executor runs: loads stay queued unless a test settles them.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createApiApp } from "../../control-plane/src/api/index.js";
import { createMemoryEventBus } from "../../control-plane/src/events/memory-event-bus.js";
import {
  type Db,
  environments,
  executions,
  newId,
  pipelineFiles,
  pipelines,
} from "../../control-plane/src/store/index.js";
import {
  type ApiHarness,
  createTestDatabase,
  openApiHarness,
  TEST_CONFIG,
} from "../../control-plane/test/api-test-harness.js";
import { createDrayClient } from "../src/client.js";
import { type CliRun, runCliInProcess } from "./cli-in-process.js";

const BASE = "http://dray.test";
const UPLOAD_LIMIT = 64 * 1024;

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let h: ApiHarness;
let db: Db;
let app: ReturnType<typeof createApiApp>;
let org: Awaited<ReturnType<ApiHarness["tenant"]>>;
let dir: string;
let filesPipelineId: string;

const appFetch: typeof fetch = async (input, init) => app.fetch(new Request(input, init));

async function insertPipeline(name: string, sourceKind: "files" | "environment"): Promise<string> {
  const target = newId();
  const source = newId();
  await db.insert(environments).values([
    { id: target, organisationId: org.id, name: `${name}-dst`, platform: "postgres" },
    { id: source, organisationId: org.id, name: `${name}-src`, platform: "postgres" },
  ]);
  const id = newId();
  await db.insert(pipelines).values({
    id,
    organisationId: org.id,
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
  });
  return id;
}

beforeAll(async () => {
  database = await createTestDatabase();
  h = await openApiHarness(database.url);
  db = h.store.db;
  // Not a fresh literal: the upload limit rides along until ApiDeps' config names it.
  const config = { ...TEST_CONFIG, uploadMaxBytes: UPLOAD_LIMIT };
  app = createApiApp({
    db,
    agents: h.agents,
    logger: h.logger,
    config,
    bus: createMemoryEventBus(),
  });
  org = await h.tenant("cli-files");
  filesPipelineId = await insertPipeline("orders-feed", "files");
  await insertPipeline("orders-copy", "environment");
  dir = await mkdtemp(join(tmpdir(), "dray-cli-files-"));
  await writeFile(join(dir, "day1.csv"), "id,total\n1,10\n2,20\n");
  await writeFile(join(dir, "day2.csv"), "id,total\n3,30\n");
  await writeFile(join(dir, "big.csv"), `id,note\n${"1,xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n".repeat(4000)}`);
});
afterAll(async () => {
  vi.unstubAllGlobals();
  if (dir) await rm(dir, { recursive: true, force: true });
  await h?.close();
  await database?.drop();
});

function cli(args: string[]): Promise<CliRun> {
  return runCliInProcess(appFetch, args, { DRAY_URL: BASE, DRAY_TOKEN: org.operator });
}

/** The pipeline's rows of pipeline_files (sdk has no drizzle-orm of its own: filtered here). */
const filesOf = async (pipelineId: string) =>
  (await db.select().from(pipelineFiles)).filter((r) => r.pipelineId === pipelineId);
const fileNamed = async (filename: string) =>
  (await filesOf(filesPipelineId)).find((r) => r.filename === filename);

describe("dray upload", () => {
  it("streams each file, prints its token and state, and rolls them up under one publisher token", async () => {
    const ran = await cli(["upload", "orders-feed", join(dir, "day1.csv"), join(dir, "day2.csv")]);
    expect(ran.err).toBe("");
    expect(ran.code).toBe(0);
    const rows = await filesOf(filesPipelineId);
    expect(rows.map((r) => r.filename).sort()).toEqual(["day1.csv", "day2.csv"]);
    const publisher = rows[0]!.publisherToken!;
    expect(publisher).toMatch(/^pub-/);
    expect(rows.every((r) => r.publisherToken === publisher)).toBe(true);
    for (const row of rows) {
      expect(ran.out).toContain(
        `${row.filename}  ${row.pipelineToken}  Unloaded  ${row.fileId.slice(0, 12)}`,
      );
    }
    expect(ran.out).toContain(`publisher token ${publisher}`);

    const status = await createDrayClient({
      baseUrl: BASE,
      token: org.operator,
      fetch: appFetch,
    }).status.byPublisherToken(publisher);
    expect(status.allDone).toBe(false);
    expect(status.files.map((f) => f.filename).sort()).toEqual(["day1.csv", "day2.csv"]);
  });

  it("names the first upload's token when the same bytes come again (--json, by pipeline id)", async () => {
    const ran = await cli([
      "upload",
      filesPipelineId,
      join(dir, "day1.csv"),
      "--publisher-token",
      "again-1",
      "--json",
    ]);
    expect(ran.code).toBe(0);
    const body = JSON.parse(ran.out);
    const row = await fileNamed("day1.csv");
    expect(body).toMatchObject({
      pipeline: "orders-feed",
      publisherToken: "again-1",
      files: [{ filename: "day1.csv", pipelineToken: row!.pipelineToken, duplicate: true }],
      failed: [],
    });
    expect(await filesOf(filesPipelineId)).toHaveLength(2);
  });

  it("refuses a missing file before sending anything (exit 2, one line)", async () => {
    const ran = await cli(["upload", "orders-feed", join(dir, "day2.csv"), join(dir, "nope.csv")]);
    expect(ran.code).toBe(2);
    expect(ran.err).toBe(`dray: no file ${join(dir, "nope.csv")}\n`);
    expect(ran.out).toBe("");
  });

  it("an unknown pipeline is one line with exit 1", async () => {
    const ran = await cli(["upload", "no-such-feed", join(dir, "day2.csv")]);
    expect(ran.code).toBe(1);
    expect(ran.err).toBe('dray: pipeline "no-such-feed" was not found (not_found)\n');
  });

  it("a file over the limit is refused on one line, exit 1, and nothing is stored", async () => {
    const ran = await cli(["upload", "orders-feed", join(dir, "big.csv")]);
    expect(ran.code).toBe(1);
    expect(ran.err.split("\n").filter(Boolean)).toHaveLength(1);
    expect(ran.err).toMatch(/^dray: .*big\.csv: too large \(/);
    expect((await filesOf(filesPipelineId)).some((r) => r.filename === "big.csv")).toBe(false);
  });
});

describe("dray files", () => {
  it("lists the files with short id, state and rows", async () => {
    const ran = await cli(["files", "orders-feed"]);
    expect(ran.code).toBe(0);
    const lines = ran.out.trim().split("\n");
    expect(lines[0]).toMatch(/^FILE +FILENAME +STATE +ROWS +UPLOADED +ERROR$/);
    expect(lines).toHaveLength(3);
    const rows = await filesOf(filesPipelineId);
    for (const row of rows)
      expect(ran.out).toMatch(new RegExp(`${row.fileId.slice(0, 12)} +${row.filename} +Unloaded`));
  });

  it("drop asks for --yes off a terminal, refuses a queued load, then drops a finished one", async () => {
    const row = await fileNamed("day2.csv");
    const short = row!.fileId.slice(0, 12);
    const unconfirmed = await cli(["files", "drop", "orders-feed", short]);
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.err).toContain(`dray files drop orders-feed ${short} --yes`);

    const busy = await cli(["files", "drop", "orders-feed", short, "--yes"]);
    expect(busy.code).toBe(1);
    expect(busy.err).toMatch(/^dray: .*\(failed_precondition\)\n$/);

    // As the executor would leave them: every load of this test database ended.
    await db.update(executions).set({ status: "completed", finishedAt: new Date() });
    await db.update(pipelineFiles).set({ state: "Loaded", rowsLoaded: 1 });
    const dropped = await cli(["files", "drop", "orders-feed", short, "--yes"]);
    expect(dropped.err).toBe("");
    expect(dropped.code).toBe(0);
    expect(dropped.out).toBe(`dropped day2.csv (${short}) from orders-feed\n`);
    expect((await filesOf(filesPipelineId)).map((r) => r.filename)).toEqual(["day1.csv"]);
  });
});

describe("dray pipeline start|stop", () => {
  it("a start or stop the pipeline's state refuses is one line with exit 1", async () => {
    const start = await cli(["pipeline", "start", "orders-copy"]);
    expect(start.code).toBe(1);
    expect(start.err).toMatch(/^dray: .*\(failed_precondition\)\n$/);
    const stop = await cli(["pipeline", "stop", "orders-copy", "--wait"]);
    expect(stop.code).toBe(1);
    expect(stop.err).toMatch(/^dray: .*\(failed_precondition\)\n$/);
    expect(stop.out).toBe("");
  });
});
