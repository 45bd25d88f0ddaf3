/**
 * Helpers of the fault suite (`test/faults-*.test.ts`): services of a test's
 * own that it may stop and start (a NATS server, a second PostgreSQL 15
 * cluster — never the shared ones), agent kill/start, and the run-and-verify
 * steps every fault shares.
 */
import { execFile } from "node:child_process";
import { chown, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { expect, inject } from "vitest";
import type { ApiClient } from "./api-client.js";
import type { DrayStack, StackEnvironment } from "./dray-stack.js";
import { startDrayStack, waitForExecution } from "./dray-stack.js";
import {
  allPages,
  createPipeline,
  executionOf,
  startRun,
  type TableDigest,
  tableDigests,
} from "./executions.js";
import { FAULT_DATA, FAULT_ENTITIES, FAULT_SCHEMA, FAULT_TABLES, FAULT_TOTAL } from "./fault-dataset.js";
import { type DrayProcess, freePort } from "./processes.js";

const run = promisify(execFile);
const PG_BIN = "/usr/lib/postgresql/15/bin";

/** Heartbeat interval of the fault stacks: the control plane's default, so "away" lasts as in production. */
export const FAULT_HEARTBEAT_MS = 10_000;

/** Sleeps `ms`. */
export const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export { OwnNats, startOwnNats } from "./own-nats.js";

/** A PostgreSQL 15 cluster of one test file (temp dir, free port, trust auth), that the test may stop and start. */
export interface OwnPostgres {
  /** URL of its `postgres` database, as a base URL for {@link DrayStack.addEnvironment}. */
  url: string;
  port: number;
  start(): Promise<void>;
  /** `pg_ctl stop -m immediate`: the server dies without a shutdown checkpoint, as in a crash. */
  stopImmediately(): Promise<void>;
  /** Stops it and removes its data directory. */
  remove(): Promise<void>;
}

async function asPostgres(bin: string, args: string[]) {
  // Tests run as root; PostgreSQL refuses to, so its tools run as user postgres.
  const asRoot = typeof process.getuid === "function" && process.getuid() === 0;
  const [file, argv] = asRoot ? ["runuser", ["-u", "postgres", "--", bin, ...args]] : [bin, args];
  return run(file, argv, { timeout: 60_000 });
}

/** Creates and starts a second PostgreSQL 15 cluster (`initdb` + `pg_ctl`) on a free port. */
export async function startOwnPostgres(): Promise<OwnPostgres> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), "dray-fault-pg-"));
  const data = join(dir, "data");
  const asRoot = typeof process.getuid === "function" && process.getuid() === 0;
  if (asRoot) {
    const { stdout } = await run("id", ["-u", "postgres"]);
    const { stdout: gid } = await run("id", ["-g", "postgres"]);
    await chown(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  await asPostgres(`${PG_BIN}/initdb`, ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"]);
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`;
  const pg: OwnPostgres = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async start() {
      await asPostgres(`${PG_BIN}/pg_ctl`, [
        "-D",
        data,
        "-o",
        options,
        "-l",
        join(dir, "log"),
        "-w",
        "start",
      ]);
    },
    async stopImmediately() {
      await asPostgres(`${PG_BIN}/pg_ctl`, ["-D", data, "-m", "immediate", "-w", "stop"]);
    },
    async remove() {
      await pg.stopImmediately().catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
  await pg.start();
  return pg;
}

/** Kills the environment's agent with `signal` and waits for it to exit. */
export async function killAgent(environment: StackEnvironment, signal: NodeJS.Signals = "SIGKILL") {
  return environment.agent.stop(signal);
}

/** Starts the environment's agent again with its stored credential. */
export async function startAgent(environment: StackEnvironment): Promise<DrayProcess> {
  return environment.restartAgent();
}

/** Kills the agent, waits `downMs`, and starts it again. */
export async function restartAgent(
  environment: StackEnvironment,
  signal: NodeJS.Signals = "SIGKILL",
  downMs = 0,
): Promise<DrayProcess> {
  await killAgent(environment, signal);
  if (downMs > 0) await pause(downMs);
  return startAgent(environment);
}

/** A pipeline over the fault dataset with default settings (only source, target, entities, strategy). */
export async function defaultPipeline(
  api: ApiClient,
  name: string,
  source: StackEnvironment,
  target: StackEnvironment,
  writeStrategy: "merge" | "insert" = "merge",
): Promise<string> {
  return createPipeline(api, {
    name,
    sourceEnvironmentId: source.id,
    targetEnvironmentId: target.id,
    writeStrategy,
    entities: FAULT_ENTITIES,
  });
}

/**
 * Waits until the run has committed at least `records` records (while still
 * in progress) and returns how many; throws when it ends first.
 */
export async function waitForCommitted(api: ApiClient, id: string, records: number, timeoutMs = 90_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const view = await executionOf(api, id);
    if (["completed", "failed", "cancelled"].includes(view.status))
      throw new Error(`execution ended (${view.status}: ${view.reason}) before ${records} records`);
    const committed = (view.entities as { created: number; updated: number }[]).reduce(
      (sum, e) => sum + e.created + e.updated,
      0,
    );
    if (view.status === "in_progress" && committed >= records) return committed;
    if (Date.now() > until)
      throw new Error(`execution did not commit ${records} records within ${timeoutMs} ms`);
    await pause(50);
  }
}

/** Starts a run and waits until some batches committed, so a fault lands mid-run. */
export async function startRunAndWait(api: ApiClient, pipelineId: string, committed = 30_000) {
  const runStarted = await startRun(api, pipelineId);
  await waitForCommitted(api, runStarted.id, committed);
  return runStarted;
}

/**
 * Waits for the run to end and asserts what every fault must leave: the run
 * completed; the target equals the source (count and md5 per table); no
 * duplicated key; usage grew by exactly the committed rows (the whole
 * dataset, once: `total` rows, for a file that copies a smaller one); no
 * batch left in progress.
 */
export async function expectExactCopy(
  stack: DrayStack,
  runId: string,
  source: Record<string, TableDigest>,
  target: StackEnvironment,
  usedBefore: number,
  timeoutMs = 150_000,
  total: number = FAULT_TOTAL,
): Promise<any> {
  const view = await waitForExecution(stack.api, runId, timeoutMs);
  expect({ status: view.status, reasonCode: view.reasonCode, reason: view.reason }).toEqual({
    status: "completed",
    reasonCode: null,
    reason: null,
  });
  expect(await tableDigests(target.db.sql, FAULT_TABLES)).toEqual(source);
  for (const t of FAULT_TABLES) {
    const [row] = await target.db.sql.unsafe<{ duplicates: number }[]>(
      `select (count(*) - count(distinct id))::int as duplicates from ${t}`,
    );
    expect({ table: t, duplicates: row!.duplicates }).toEqual({ table: t, duplicates: 0 });
  }
  const committed = (view.entities as { created: number; updated: number }[]).reduce(
    (sum, e) => sum + e.created + e.updated,
    0,
  );
  expect(committed).toBe(total);
  const usage = (await stack.api.get("/api/v1/usage")).body;
  expect({ used: usage.used - usedBefore, reserved: usage.reserved }).toEqual({
    used: total,
    reserved: 0,
  });
  const batches = await allPages(stack.api, `/api/v1/executions/${runId}/batches`, "batches");
  expect(batches.filter((b) => b.state === "In Progress")).toEqual([]);
  return view;
}

/** The organisation's records used this month. */
export async function usedRecords(api: ApiClient): Promise<number> {
  return (await api.get("/api/v1/usage")).body.used as number;
}

/**
 * Waits until the run has noticed that the agent of `environment` is away
 * (its "is away" warning), so that a restart lands while the run waits for
 * it rather than before the run needed it.
 */
export async function waitForAwayWarning(
  api: ApiClient,
  runId: string,
  environment: string,
  timeoutMs = 60_000,
) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const errors = await allPages(api, `/api/v1/executions/${runId}/errors`, "errors");
    if (
      errors.some(
        (e) => e.severity === "warning" && e.message.includes(`environment "${environment}" is away`),
      )
    )
      return;
    if (Date.now() > until) throw new Error(`the run never noticed that ${environment}'s agent was away`);
    await pause(200);
  }
}

/**
 * Asserts that the run waited for an away agent (the fault landed mid-run and
 * was waited out, not retried): its errors hold the warning naming `environment`.
 */
export async function expectWaitedForAgent(api: ApiClient, runId: string, environment: string) {
  const errors = await allPages(api, `/api/v1/executions/${runId}/errors`, "errors");
  const waits = errors.filter(
    (e) => e.severity === "warning" && e.message.includes(`environment "${environment}" is away`),
  );
  expect(waits.length).toBeGreaterThan(0);
  expect(errors.filter((e) => e.severity === "error")).toEqual([]);
}

/** The last event stored in JetStream (stream DRAY_EVENTS) on `subject`, or undefined. */
export async function lastStoredEvent(natsUrl: string, subject: string): Promise<any> {
  const nc = await connect({ servers: natsUrl });
  try {
    const jsm = await jetstreamManager(nc);
    const msg = await jsm.streams.getMessage("DRAY_EVENTS", { last_by_subj: subject });
    return msg?.json();
  } catch {
    return undefined;
  } finally {
    await nc.close();
  }
}

/** Waits until both environments' agents are connected to the (possibly restarted) control plane. */
export async function waitForAgents(api: ApiClient, environments: StackEnvironment[], timeoutMs = 40_000) {
  const until = Date.now() + timeoutMs;
  for (const e of environments) {
    for (;;) {
      const r = await api.get(`/api/v1/environments/${e.id}`).catch(() => undefined);
      if (r?.body?.health === "healthy" && r.body.agent?.connected) break;
      if (Date.now() > until)
        throw new Error(`the agent of ${e.name} did not reconnect within ${timeoutMs} ms`);
      await pause(200);
    }
  }
}

/** A fault file's stack: the production heartbeat, and the source environment with the fault dataset. */
export interface FaultSource {
  stack: DrayStack;
  source: StackEnvironment;
  /** Count and md5 per table of the source, to compare targets with. */
  sourceDigests: Awaited<ReturnType<typeof tableDigests>>;
}

/**
 * Starts a control plane (10 s heartbeat) and the `shop-prod` source with the
 * 300k-row fault dataset, and takes the source's digests.
 *
 * @example
 * beforeAll(async () => void ({ stack, source, sourceDigests } = await startFaultSource()), 90_000);
 */
export async function startFaultSource(): Promise<FaultSource> {
  const stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"), {
    heartbeatMs: FAULT_HEARTBEAT_MS,
  });
  const source = await stack.addEnvironment("shop-prod", `${FAULT_SCHEMA}${FAULT_DATA}`);
  return { stack, source, sourceDigests: await tableDigests(source.db.sql, FAULT_TABLES) };
}
