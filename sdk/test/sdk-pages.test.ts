/**
 * The SDK and the CLI follow the API's cursor pages: `listAll()` / `historyAll()`
 * and `dray env list`, `dray pipeline list`, `dray history` see every row,
 * once, whatever the page size. The control plane runs in-process (its API app
 * over a test database); the SDK's fetch is routed to it.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  environments,
  executionErrors,
  executions,
  newId,
  pipelines,
} from "../../control-plane/src/store/index.js";
import {
  type ApiHarness,
  createTestDatabase,
  openApiHarness,
} from "../../control-plane/test/api-test-harness.js";
import { runCli } from "../src/cli/main.js";
import { collect, createDrayClient } from "../src/index.js";

const ENVIRONMENTS = 120;
const PIPELINES = 110;
const RUNS = 45;
const BASE = "http://dray.test";

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let h: ApiHarness;
let org: Awaited<ReturnType<ApiHarness["tenant"]>>;
const requests: string[] = [];

/** fetch routed to the in-process app, recording each request's path and query. */
const appFetch: typeof fetch = async (input, init) => {
  const request = new Request(input, init);
  const url = new URL(request.url);
  requests.push(`${url.pathname}${url.search}`);
  return h.app.fetch(request);
};

beforeAll(async () => {
  database = await createTestDatabase();
  h = await openApiHarness(database.url);
  org = await h.tenant("sdk-pages");
  const envIds = Array.from({ length: ENVIRONMENTS }, () => newId());
  await h.store.db.insert(environments).values(
    envIds.map((id, i) => ({
      id,
      organisationId: org.id,
      name: `env-${String(i).padStart(3, "0")}`,
      platform: "postgres" as const,
    })),
  );
  const pipelineIds = Array.from({ length: PIPELINES }, () => newId());
  await h.store.db.insert(pipelines).values(
    pipelineIds.map((id, i) => ({
      id,
      organisationId: org.id,
      name: `pipe-${String(i).padStart(3, "0")}`,
      sourceEnvironmentId: envIds[0]!,
      targetEnvironmentId: envIds[1]!,
      action: "copy" as const,
      writeStrategy: "merge" as const,
      entities: ["public.customers"],
      batchSize: 1000,
      batchBytes: 4_000_000,
      maxRetriesPerBatch: 4,
      stopOnError: true,
      entityConcurrency: 2,
    })),
  );
  const t0 = Date.parse("2026-05-01T00:00:00.000Z");
  await h.store.db.insert(executions).values(
    Array.from({ length: RUNS }, (_, i) => ({
      id: newId(),
      organisationId: org.id,
      pipelineId: pipelineIds[0]!,
      pipelineToken: `pt-${newId()}`,
      status: "completed" as const,
      triggeredBy: { tokenId: newId(), tokenName: "seed", role: "operator" },
      snapshot: {},
      // pairs of runs share an instant: the cursor must still tell them apart
      createdAt: new Date(t0 + Math.floor(i / 2) * 60_000),
    })),
  );
});
afterAll(async () => {
  vi.unstubAllGlobals();
  await h?.close();
  await database?.drop();
});

const client = () => createDrayClient({ baseUrl: BASE, token: org.viewer, fetch: appFetch });

describe("SDK listAll / historyAll", () => {
  it("follows the environment pages: every row once, one request per page", async () => {
    requests.length = 0;
    const all = await collect(client().environments.listAll());
    expect(all.map((e) => e.name)).toEqual(
      Array.from({ length: ENVIRONMENTS }, (_, i) => `env-${String(i).padStart(3, "0")}`),
    );
    expect(requests.filter((r) => r.startsWith("/api/v1/environments"))).toHaveLength(3); // 50 + 50 + 20
    const small = await collect(client().environments.listAll({ limit: 7, sort: "createdAt" }));
    expect(new Set(small.map((e) => e.id)).size).toBe(ENVIRONMENTS);
    const first = await client().environments.list({ limit: 5 });
    expect(first.environments).toHaveLength(5);
    expect(typeof first.next).toBe("string");
  });

  it("follows the pipeline and run-history pages", async () => {
    const all = await collect(client().pipelines.listAll({ limit: 13 }));
    expect(all.map((p) => p.name)).toEqual(
      Array.from({ length: PIPELINES }, (_, i) => `pipe-${String(i).padStart(3, "0")}`),
    );
    const runs = await collect(client().pipelines.historyAll(all[0]!.id, { pageSize: 4 }));
    expect(runs).toHaveLength(RUNS);
    expect(new Set(runs.map((r) => r.id)).size).toBe(RUNS);
    const created = runs.map((r) => r.createdAt);
    expect(created).toEqual([...created].sort().reverse());

    await h.store.db.insert(executionErrors).values(
      Array.from({ length: 11 }, (_, i) => ({
        executionId: runs[0]!.id,
        severity: "error" as const,
        message: `problem ${i}`,
      })),
    );
    const errors = await collect(client().executions.errorsAll(runs[0]!.id, { pageSize: 3 }));
    expect(errors.map((e) => e.message)).toEqual(Array.from({ length: 11 }, (_, i) => `problem ${i}`));
    expect(await collect(client().executions.batchesAll(runs[0]!.id))).toEqual([]);
  });
});

describe("CLI list commands follow the pages", () => {
  async function cli(args: string[]): Promise<{ code: number; out: string }> {
    vi.stubGlobal("fetch", appFetch);
    let out = "";
    const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      out += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString();
      return true;
    });
    try {
      const code = await runCli(args, {
        DRAY_URL: BASE,
        DRAY_TOKEN: org.viewer,
        DRAY_CONFIG_DIR: "/nonexistent-dray",
      });
      return { code, out };
    } finally {
      spy.mockRestore();
      vi.unstubAllGlobals();
    }
  }

  it("dray env list and dray pipeline list show every row", async () => {
    const envs = await cli(["env", "list", "--json"]);
    expect(envs.code).toBe(0);
    expect((JSON.parse(envs.out) as unknown[]).length).toBe(ENVIRONMENTS);
    const table = await cli(["env", "list"]);
    expect(table.out).toContain("env-119");
    const pipes = await cli(["pipeline", "list", "--json"]);
    expect((JSON.parse(pipes.out) as unknown[]).length).toBe(PIPELINES);
  });

  it("dray history shows the newest 20, --limit n, or --all across pages", async () => {
    const newest = await cli(["history", "pipe-000", "--json"]);
    expect(newest.code).toBe(0);
    expect(JSON.parse(newest.out).executions).toHaveLength(20);
    const some = await cli(["history", "pipe-000", "--json", "--limit", "30"]);
    expect(JSON.parse(some.out).executions).toHaveLength(30);
    const all = await cli(["history", "pipe-000", "--json", "--all"]);
    const ids = (JSON.parse(all.out).executions as { id: string }[]).map((e) => e.id);
    expect([ids.length, new Set(ids).size]).toEqual([RUNS, RUNS]);
    const page = await cli(["history", "pipe-000", "--page", "3"]);
    expect(page.out).toContain(`page 3, ${RUNS} runs in all`);
    // The "more" hint only when more runs exist.
    expect((await cli(["history", "pipe-000"])).out).toContain(
      "the newest 20 runs (--limit n or --all for more)",
    );
    const every = await cli(["history", "pipe-000", "--limit", String(RUNS)]);
    expect(every.out).toContain(`${RUNS} runs`);
    expect(every.out).not.toContain("for more");
  });
});
