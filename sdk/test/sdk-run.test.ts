/**
 * The SDK against a real control plane and two real agents: runs a pipeline to
 * completion with run({ wait: true }) and follows its events with watch().
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type DrayStack, startDrayStack } from "../../test/support/dray-stack.js";
import {
  createDrayClient,
  DrayApiError,
  DrayConnectionError,
  type ExecutionEvent,
  ExecutionFailedError,
} from "../src/index.js";

const SCHEMA = `
  create table accounts (id bigint primary key, name text not null, parent_id bigint references accounts(id));
  create table contacts (id bigint primary key, account_id bigint not null references accounts(id), email text);
`;

let stack: DrayStack;
let sourceId: string;
let targetId: string;
let targetSql: (q: TemplateStringsArray) => Promise<{ n: number }[]>;

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"));
  const source = await stack.addEnvironment(
    "sdk_src",
    `${SCHEMA}
     insert into accounts select g, 'a' || g, case when g > 1 then g - 1 end from generate_series(1, 3000) g;
     insert into contacts select g, g % 3000 + 1, 'c' || g from generate_series(1, 12000) g;`,
  );
  const target = await stack.addEnvironment("sdk_dst", SCHEMA);
  sourceId = source.id;
  targetId = target.id;
  targetSql = (q) => target.db.sql(q) as unknown as Promise<{ n: number }[]>;
}, 90_000);
afterAll(async () => stack?.close());

function client() {
  return createDrayClient({ baseUrl: stack.cp.httpUrl, token: stack.apiToken });
}

describe("@dray/sdk", () => {
  it("runs a pipeline to completion with run({ wait: true }) and streams its events", async () => {
    const dray = client();
    const pipeline = await dray.pipelines.create({
      name: "sdk-merge",
      sourceEnvironmentId: sourceId,
      targetEnvironmentId: targetId,
      writeStrategy: "merge",
      entities: ["public.accounts", "public.contacts"],
      batchSize: 1000,
    });
    const events: ExecutionEvent[] = [];
    const execution = await dray.pipelines.run(pipeline.id, { wait: true, onEvent: (e) => events.push(e) });
    expect(execution).toMatchObject({ status: "completed" });
    if (!("totals" in execution)) throw new Error("run({ wait: true }) must resolve with the full execution");
    expect(execution.totals).toMatchObject({ total: 15_000, processed: 15_000, created: 15_000 });
    const [row] = await targetSql`select count(*)::int as n from contacts`;
    expect(row?.n).toBe(12_000);

    const seqs = events.map((e) => Number(e.id));
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(events.some((e) => e.type === "execution.progress")).toBe(true);
    expect(events.at(-1)).toMatchObject({ type: "execution.status", data: { status: "completed" } });

    // watch() replays the same events after the fact, and resumes after a given id.
    const replayed: ExecutionEvent[] = [];
    for await (const e of dray.executions.watch(execution.id)) replayed.push(e);
    expect(replayed.map((e) => e.id)).toEqual(events.map((e) => e.id));
    const tail: ExecutionEvent[] = [];
    for await (const e of dray.executions.watch(execution.id, { lastEventId: events[2]!.id })) tail.push(e);
    expect(tail.map((e) => e.id)).toEqual(events.slice(3).map((e) => e.id));
  });

  it("throws ExecutionFailedError with the reason code when the run fails", async () => {
    const dray = client();
    const pipeline = await dray.pipelines.create({
      name: "sdk-insert-conflict",
      sourceEnvironmentId: sourceId,
      targetEnvironmentId: targetId,
      writeStrategy: "insert",
      entities: ["public.accounts"],
    });
    const failure = await dray.pipelines.run(pipeline.id, { wait: true }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ExecutionFailedError);
    expect((failure as ExecutionFailedError).code).toBe("batch_failed");
    expect((failure as ExecutionFailedError).message).toMatch(/duplicate key|already exists/);
  });

  it("carries the API error code, and a connection error for an unreachable control plane", async () => {
    const dray = client();
    const missing = await dray.pipelines.get("00000000-0000-4000-8000-000000000000").catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(DrayApiError);
    expect(missing).toMatchObject({ status: 404, code: "not_found" });
    const offline = createDrayClient({ baseUrl: "http://127.0.0.1:9", token: "dray_x" });
    const unreachable = await offline.usage().catch((e: unknown) => e);
    expect(unreachable).toBeInstanceOf(DrayConnectionError);
    expect((unreachable as DrayConnectionError).code).toBe("unavailable");
  });
});

const DRAY_BIN = fileURLToPath(new URL("../bin/dray.js", import.meta.url));

/** Runs the real `dray` CLI and returns its exit code and output. */
function dray(args: string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [DRAY_BIN, ...args], {
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "/tmp",
        DRAY_CONFIG_DIR: join(tmpdir(), "dray-cli-test-none"),
        DRAY_URL: stack.cp.httpUrl,
        DRAY_TOKEN: stack.apiToken,
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("dray CLI", () => {
  it("creates a pipeline from YAML with environment names and runs it: --json prints the final execution", async () => {
    const dir = await mkdtemp(join(tmpdir(), "dray-cli-"));
    try {
      const file = join(dir, "pipeline.yaml");
      await writeFile(
        file,
        "name: cli-merge\nsource: sdk_src\ntarget: sdk_dst\nwriteStrategy: merge\nentities:\n  - public.accounts\n  - public.contacts\n",
      );
      const created = await dray(["pipeline", "create", file, "--json"]);
      expect(created.code).toBe(0);
      expect(JSON.parse(created.stdout)).toMatchObject({ name: "cli-merge", sourceEnvironmentId: sourceId });
      const run = await dray(["run", "cli-merge", "--json"]);
      expect(run.code).toBe(0);
      const execution = JSON.parse(run.stdout);
      expect(execution).toMatchObject({ status: "completed", pipelineName: "cli-merge" });
      expect(execution.totals.processed).toBe(15_000);
      const history = await dray(["history", "cli-merge", "--status", "completed", "--json"]);
      expect(JSON.parse(history.stdout).executions[0].id).toBe(execution.id);
      const status = await dray(["status", execution.pipelineToken, "--json"]);
      expect(JSON.parse(status.stdout).map((e: { processName: string }) => e.processName)).toContain(
        "JobRunner",
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("exits 1 with the reason when the execution fails", async () => {
    const run = await dray(["run", "sdk-insert-conflict", "--watch"]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^failed/m);
    expect(run.stderr).toMatch(/execution failed: .*(duplicate key|already exists)/);
  });

  it("exits 4 with a clear message when the control plane cannot be reached, and 2 on bad usage", async () => {
    const down = await dray(["usage"], { DRAY_URL: "http://127.0.0.1:1" });
    expect(down.code).toBe(4);
    expect(down.stderr).toMatch(/cannot reach the Dray control plane at http:\/\/127\.0\.0\.1:1/);
    expect(down.stderr).toMatch(/check that dray-control-plane is running/);
    const bad = await dray(["run"]);
    expect(bad.code).toBe(2);
    // One line naming what is missing and where help is, not the whole usage.
    expect(bad.stderr).toMatch(/^dray: missing required argument 'pipeline' — see `dray run --help`\n$/);
    const notLoggedIn = await dray(["usage"], { DRAY_URL: "", DRAY_TOKEN: "" });
    expect(notLoggedIn.code).toBe(2);
    expect(notLoggedIn.stderr).toMatch(/dray login/);
  });
});
