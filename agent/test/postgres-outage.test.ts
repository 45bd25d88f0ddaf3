/**
 * The Postgres connector through a database outage (issue 9, reliability 3), on
 * a cluster of this file's own that is killed (`pg_ctl -m immediate stop`) while
 * COPY writes and reads are in flight, kept down, then started again:
 * - the process never sees an uncaught exception or unhandled rejection;
 * - every call that fails, fails within a few seconds with `unavailable`, retryable;
 * - the health probe (testConnection) says the database is unreachable;
 * - after the restart the same connector instance writes again within seconds;
 * - no acknowledged write is lost, and replaying the failed ones loses nothing
 *   and duplicates nothing;
 * - a session whose backend is terminated between two statements fails the
 *   second one retryably (postgres.js would otherwise write to a null socket);
 * - the agent's heartbeat says the database is unreachable as soon as a task
 *   finds it down, and reachable again once it is back.
 */

import { create } from "@bufbuild/protobuf";
import { DrayError, isDrayError, silentLogger } from "@dray/common";
import { TaskSchema } from "@dray/proto";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAgent } from "../src/agent.js";
import type { Connector } from "../src/connector.js";
import { createPool } from "../src/connectors/postgres/connection-options.js";
import { isDriverTypeFetchFailure, toDrayError } from "../src/connectors/postgres/error-mapping.js";
import { createPostgresConnector } from "../src/connectors/postgres/index.js";
import { PoolKeeper } from "../src/connectors/postgres/pool-keeper.js";
import { Session, type SessionPools, STUCK_AFTER_CANCEL_MS } from "../src/connectors/postgres/session.js";
import { rowBatch } from "./connector-contract.js";
import { enrolledCredentials, fakeGateway } from "./support/fake-gateway.js";
import { type OwnCluster, startOwnCluster } from "./support/own-cluster.js";

const ENTITY = { schema: "public", name: "items" };
const FIELDS = ["id", "payload"];
const BATCH_ROWS = 4_000;
/** How long the database stays down. */
const OUTAGE_MS = 4_000;
/** Longest a failing call may take to fail. */
const PROMPT_MS = 5_000;
/** Longest after the restart until a write succeeds again. */
const RECOVERY_MS = 6_000;

let cluster: OwnCluster;
let admin: postgres.Sql;
const crashes: unknown[] = [];
const onCrash = (error: unknown) => {
  // The driver's unawaited type lookup on a connection that died is tolerated by the agent's
  // guard (driver-guard.ts); anything else would end the agent.
  if (!isDriverTypeFetchFailure(error)) crashes.push(error);
};

beforeAll(async () => {
  process.on("uncaughtException", onCrash);
  process.on("unhandledRejection", onCrash);
  cluster = await startOwnCluster();
  admin = postgres(cluster.url, { max: 1, onnotice: () => {} });
  await admin.unsafe("create table items (id bigint primary key, payload text not null)");
}, 60_000);

afterAll(async () => {
  process.off("uncaughtException", onCrash);
  process.off("unhandledRejection", onCrash);
  await admin?.end({ timeout: 1 }).catch(() => {});
  await cluster?.destroy();
});

interface Outcome {
  kind: "write" | "read" | "probe";
  batch?: number;
  startedAt: number;
  ms: number;
  error?: DrayError;
}

function batchOf(n: number) {
  const rows: string[][] = [];
  for (let i = 0; i < BATCH_ROWS; i++) {
    const id = n * BATCH_ROWS + i + 1;
    rows.push([String(id), `payload-${id}-${"x".repeat(80)}`]);
  }
  return rowBatch(FIELDS, rows);
}

function write(connector: Connector, n: number) {
  return connector.writeBatch(
    {
      batchId: `outage-${n}`,
      entity: ENTITY,
      strategy: "insert",
      keyFields: ["id"],
      rows: batchOf(n),
      rejectPolicy: "fail",
    },
    AbortSignal.timeout(60_000),
  );
}

function read(connector: Connector) {
  return connector.readBatch(
    {
      entity: ENTITY,
      fields: FIELDS,
      keyFields: ["id"],
      after: null,
      until: null,
      maxRows: 20_000,
      maxBytes: 8 << 20,
      where: [],
      nullFields: [],
    },
    AbortSignal.timeout(60_000),
  );
}

/** A call that has not settled after this long is reported as hung (and the test goes on). */
const HUNG_MS = 20_000;

async function timed(kind: Outcome["kind"], fn: () => Promise<unknown>, batch?: number): Promise<Outcome> {
  const startedAt = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DrayError("internal", `the call hung for ${HUNG_MS} ms`)), HUNG_MS);
  });
  try {
    await Promise.race([fn(), hung]);
    return { kind, batch, startedAt, ms: performance.now() - startedAt };
  } catch (error) {
    const e = isDrayError(error) ? error : new DrayError("internal", `not a DrayError: ${String(error)}`);
    return { kind, batch, startedAt, ms: performance.now() - startedAt, error: e };
  } finally {
    clearTimeout(timer);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("a database crash and restart under load", () => {
  it("never crashes the process, fails fast and retryably, and recovers with the same connector", async () => {
    const connector = createPostgresConnector({ url: cluster.url, maxConnections: 4 });
    const outcomes: Outcome[] = [];
    let next = 0;
    let stop = false;
    let restartedAt = Number.POSITIVE_INFINITY;
    const succeededSince = (kind: Outcome["kind"], at: number) =>
      outcomes.find((o) => o.kind === kind && !o.error && o.startedAt >= at);

    const writer = async () => {
      while (!stop) {
        const n = next++;
        outcomes.push(await timed("write", () => write(connector, n), n));
        if (outcomes[outcomes.length - 1]!.error) await sleep(100);
      }
    };
    const reader = async () => {
      while (!stop) {
        const o = await timed("read", () => read(connector));
        outcomes.push(o);
        await sleep(o.error ? 100 : 20);
      }
    };
    const workers = [writer(), writer(), writer(), reader()];
    try {
      // Load first, then kill the server while writes are in flight.
      while (outcomes.filter((o) => o.kind === "write" && !o.error).length < 6) await sleep(20);
      const crashedAt = performance.now();
      await cluster.stop("immediate");

      // While it is down: the probe says unreachable, promptly.
      await sleep(500);
      const probe = await timed("probe", () => connector.testConnection(AbortSignal.timeout(5_000)));
      expect(probe.error?.code).toBe("unavailable");
      expect(probe.error?.retryable).toBe(true);
      expect(probe.ms).toBeLessThan(PROMPT_MS);
      await sleep(Math.max(0, OUTAGE_MS - (performance.now() - crashedAt)));

      await cluster.start();
      restartedAt = performance.now();
      const until = restartedAt + RECOVERY_MS + 10_000;
      while (!(succeededSince("write", restartedAt) && succeededSince("read", restartedAt))) {
        if (performance.now() > until) break;
        await sleep(50);
      }
      stop = true;
      await Promise.all(workers);

      if (process.env.DRAY_TEST_VERBOSE)
        console.log(
          outcomes
            .map(
              (o) =>
                `${o.kind} ${Math.round(o.startedAt - crashedAt)} +${Math.round(o.ms)} ${o.error?.code ?? "ok"} ${o.error?.message ?? ""}`,
            )
            .join("\n"),
        );
      expect(crashes).toEqual([]);
      const failed = outcomes.filter((o) => o.error);
      expect(failed.length).toBeGreaterThan(0);
      for (const o of failed) {
        expect({ kind: o.kind, code: o.error!.code, retryable: o.error!.retryable }).toEqual({
          kind: o.kind,
          code: "unavailable",
          retryable: true,
          ...(o.error!.code === "unavailable" ? {} : { message: o.error!.message }),
        });
        expect(o.ms).toBeLessThan(PROMPT_MS);
      }
      // Recovery: the same connector writes and reads again within seconds of the restart.
      const firstWrite = succeededSince("write", restartedAt);
      const firstRead = succeededSince("read", restartedAt);
      expect(firstWrite, "no write succeeded after the restart").toBeDefined();
      expect(firstRead, "no read succeeded after the restart").toBeDefined();
      expect(firstWrite!.startedAt + firstWrite!.ms - restartedAt).toBeLessThan(RECOVERY_MS);

      // No acknowledged batch is lost; replaying the failed ones writes each row once.
      const ok = outcomes.filter((o) => o.kind === "write" && !o.error).map((o) => o.batch!);
      const [{ n: afterOutage } = { n: -1 }] = await admin.unsafe<{ n: number }[]>(
        "select count(*)::int as n from items where (id - 1) / $1 = any($2::int[])",
        [BATCH_ROWS, ok],
      );
      expect(afterOutage).toBe(ok.length * BATCH_ROWS);
      for (const o of failed.filter((f) => f.kind === "write")) await write(connector, o.batch!);
      const [{ n: total, distinct } = { n: -1, distinct: -2 }] = await admin.unsafe<
        { n: number; distinct: number }[]
      >("select count(*)::int as n, count(distinct id)::int as distinct from items");
      expect(total).toBe(next * BATCH_ROWS);
      expect(distinct).toBe(total);
    } finally {
      stop = true;
      await Promise.allSettled(workers);
      await connector.close();
    }
  }, 90_000);
});

describe("a connection lost between two statements of a session", () => {
  it("fails the next statement with a retryable unavailable, and the pool goes on", async () => {
    const keeper = new PoolKeeper(
      (hooks) => createPool({ url: cluster.url, max: 2, logger: silentLogger, ...hooks }),
      silentLogger,
    );
    const pools: SessionPools = {
      keeper,
      get sql() {
        return keeper.currentPool();
      },
      logger: silentLogger,
      cancelBackend: async () => {},
    };
    try {
      const signal = new AbortController().signal;
      for (let round = 0; round < 3; round++) {
        const failure = await Session.run(pools, signal, async (session) => {
          await session.query("select 1");
          await admin.unsafe("select pg_terminate_backend($1::int4)", [(await session.backend).pid]);
          await sleep(200);
          return session.query("select 2").then(
            () => undefined,
            (error: unknown) => error,
          );
        });
        const e = toDrayError(failure, { operation: "select" });
        expect({ code: e.code, retryable: e.retryable }).toEqual({ code: "unavailable", retryable: true });
        // The same pools serve the next session at once.
        const rows = await Session.run(pools, signal, (session) =>
          session.query<{ n: number }>("select 7 as n"),
        );
        expect(rows).toEqual([{ n: 7 }]);
      }
      await sleep(100);
      expect(crashes).toEqual([]);
    } finally {
      await keeper.close();
    }
  });
});

describe("a statement whose backend stops answering", () => {
  it("is given up shortly after its deadline and cancel, and the next session gets a fresh pool", async () => {
    const keeper = new PoolKeeper(
      (hooks) => createPool({ url: cluster.url, max: 2, logger: silentLogger, ...hooks }),
      silentLogger,
    );
    const pools: SessionPools = {
      keeper,
      get sql() {
        return keeper.currentPool();
      },
      logger: silentLogger,
      cancelBackend: async (backend) => {
        await admin.unsafe("select pg_cancel_backend($1::int4)", [backend.pid]);
      },
    };
    let frozen: number | undefined;
    try {
      // Every session runs with the server-side limits.
      const settings = await Session.run(pools, new AbortController().signal, (session) =>
        session.query<{ statement: string; idle: string }>(
          "select current_setting('statement_timeout') as statement, current_setting('idle_in_transaction_session_timeout') as idle",
        ),
      );
      expect(settings).toEqual([{ statement: "10min", idle: "1min" }]);

      const started = performance.now();
      const failure = await Session.run(pools, AbortSignal.timeout(1_000), async (session) => {
        frozen = (await session.backend).pid;
        process.kill(frozen, "SIGSTOP");
        return session.query("select 1").then(
          () => undefined,
          (error: unknown) => error,
        );
      });
      const elapsed = performance.now() - started;
      expect(toDrayError(failure, { aborted: true }).code).toBe("cancelled");
      expect(elapsed).toBeGreaterThanOrEqual(1_000);
      expect(elapsed).toBeLessThan(1_000 + STUCK_AFTER_CANCEL_MS + 2_000);
      // The stuck connection is not reused: the next session works at once.
      const rows = await Session.run(pools, AbortSignal.timeout(5_000), (session) =>
        session.query<{ n: number }>("select 8 as n"),
      );
      expect(rows).toEqual([{ n: 8 }]);
      expect(crashes).toEqual([]);
    } finally {
      if (frozen) process.kill(frozen, "SIGCONT");
      await keeper.close();
    }
  });
});

async function waitUntil<T>(what: string, fn: () => T | undefined, timeoutMs: number): Promise<T> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    const value = fn();
    if (value !== undefined) return value;
    if (performance.now() > until) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(25);
  }
}

describe("the agent's heartbeat through an outage", () => {
  it("reports the database unreachable as soon as a task finds it down, and reachable as soon as it is back", async () => {
    const connector = createPostgresConnector({ url: cluster.url, maxConnections: 2 });
    const fake = fakeGateway();
    const credentials = enrolledCredentials();
    const agent = createAgent({
      config: {
        enrollmentToken: undefined,
        name: "outage",
        maxTasks: 2,
        drainTimeoutMs: 5_000,
        controlPlane: { address: "x", tls: false },
      },
      connector,
      gateway: fake.gateway,
      credentials,
      logger: silentLogger,
    });
    let n = 0;
    const probeTask = () =>
      create(TaskSchema, {
        taskId: `t${++n}`,
        deadlineUnixMs: BigInt(Date.now() + 10_000),
        kind: { case: "testConnection", value: {} },
      });
    try {
      await agent.start();
      // The first heartbeat (interval 30 s from then on) finds the database up.
      await waitUntil("first heartbeat", () => fake.heartbeats[0], 5_000);
      expect(fake.heartbeats[0]!.databaseReachable).toBe(true);

      await cluster.stop("immediate");
      const failedAt = performance.now();
      fake.pushTask(probeTask());
      const down = await waitUntil(
        "a heartbeat saying unreachable",
        () => fake.heartbeats.find((h) => !h.databaseReachable),
        5_000,
      );
      expect(down.at - failedAt).toBeLessThan(3_000);
      expect(down.databaseError).toMatch(/ECONNREFUSED|not yet accepting|shut ?down|connection/i);
      const failed = fake.results.find((r) => r.taskId === "t1")!;
      expect(failed.outcome.case).toBe("error");
      expect(failed.outcome.value.code).toBe(14);

      await cluster.start();
      const startedAt = performance.now();
      // With no task to prove it, the agent's own probes find the database back and the
      // heartbeat says so at once, not at the next (30 s) interval.
      const up = await waitUntil(
        "a heartbeat saying reachable again",
        () => fake.heartbeats.find((h) => h.databaseReachable && h.at > down.at),
        5_000,
      );
      expect(up.at - startedAt).toBeLessThan(3_000);
      // And the next task succeeds.
      fake.pushTask(probeTask());
      const ok = await waitUntil(
        "the task after the restart",
        () => fake.results.find((r) => r.taskId === `t${n}`),
        5_000,
      );
      expect(ok.outcome.case).toBe("result");
      expect(crashes).toEqual([]);
    } finally {
      await agent.stop("test over");
    }
  });
});
