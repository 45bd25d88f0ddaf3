/**
 * A session's statements travel in as few round trips as they can (issue 10,
 * small databases): the identifying read does not hold up the first
 * statement, BEGIN goes with the transaction's setup and COMMIT with its last
 * statement, a pipeline keeps its order, and only the statements asked for are
 * prepared on the connection. What is at stake besides speed: the order the
 * server sees, an error's mapping, and that a failed last statement leaves
 * nothing committed. Against a real PostgreSQL, in a database of its own.
 */
import { DrayError, silentLogger } from "@dray/common";
import postgres from "postgres";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { createPool } from "../src/connectors/postgres/connection-options.js";
import { createLedger } from "../src/connectors/postgres/ledger.js";
import { Session, type SessionPools } from "../src/connectors/postgres/session.js";
import { prepareRows, writeStagedBatch } from "../src/connectors/postgres/write-batch.js";
import { rowBatch } from "./connector-contract.js";
import { createOwnDatabase, type OwnDatabase } from "./support/own-database.js";

let db: OwnDatabase;
let pools: SessionPools;
let admin: postgres.Sql;
/** Every statement the pool sent, in order. */
const sent: string[] = [];

beforeAll(async () => {
  db = await createOwnDatabase(inject("databaseUrl"), "create table t (id int primary key, note text);");
  const [row] = await db.sql<{ name: string }[]>`select current_database() as name`;
  const url = new URL(inject("databaseUrl"));
  url.pathname = `/${row!.name}`;
  admin = postgres(url.toString(), { max: 1, onnotice: () => {} });
  // One connection, so that what one session prepared is visible to the next.
  const pool = createPool({
    url: url.toString(),
    max: 1,
    logger: silentLogger,
    onStatement: (_connection, text) => void sent.push(text.trim()),
  });
  pools = {
    sql: pool,
    logger: silentLogger,
    cancelBackend: async (backend) => {
      await admin.unsafe("select pg_catalog.pg_cancel_backend($1::int4)", [backend.pid]);
    },
  };
});

afterAll(async () => {
  await pools?.sql.end({ timeout: 5 });
  await admin?.end({ timeout: 5 });
  await db?.drop();
});

beforeEach(async () => {
  await db.sql`truncate t`;
  sent.length = 0;
});

const run = <T>(fn: (session: Session) => Promise<T>, signal = new AbortController().signal) =>
  Session.run(pools, signal, fn);

describe("a transaction's setup and last statement", () => {
  it("sends BEGIN and the setup in order and hands the setup's rows to the transaction", async () => {
    const seen = await run((session) =>
      session.transaction(
        async ([settings, plain]) => {
          const [back] = await session.query<{ value: string }>(
            "select pg_catalog.current_setting('dray.p1') as value",
          );
          return { settings, plain, back: back?.value };
        },
        [
          {
            text: "select pg_catalog.set_config('dray.p1', $1::text, true) as value",
            params: ["from setup"],
            prepared: true,
          },
          { text: "select 'plain' as word", params: [] },
        ],
      ),
    );
    expect(seen.settings).toEqual([{ value: "from setup" }]);
    expect(seen.plain).toEqual([{ word: "plain" }]);
    // The setting was made inside the transaction (set_config is_local), after BEGIN.
    expect(seen.back).toBe("from setup");
    const order = sent.map((text) => text.split("\n")[0]!.slice(0, 40));
    const begin = order.findIndex((text) => text.startsWith("begin"));
    expect(begin).toBeGreaterThanOrEqual(0);
    expect(order[begin + 1]).toContain("set_config('dray.p1'");
    expect(order[begin + 2]).toContain("'plain'");
  });

  it("commits the last statement with the rows, and nothing when it fails", async () => {
    await run((session) =>
      session.transaction(
        async () => {
          await session.execute("insert into t values (1, 'row')");
          return 2;
        },
        null,
        (next) => ({ text: "insert into t values ($1::int4, 'last')", params: [next], prepared: true }),
      ),
    );
    expect((await db.sql`select id, note from t order by id`).map((r) => [r.id, r.note])).toEqual([
      [1, "row"],
      [2, "last"],
    ]);
    // The last statement fails (the key is taken): the transaction's own row must not stay either.
    await expect(
      run((session) =>
        session.transaction(
          async () => {
            await session.execute("insert into t values (3, 'row')");
            return 2;
          },
          null,
          (taken) => ({ text: "insert into t values ($1::int4, 'again')", params: [taken] }),
        ),
      ),
    ).rejects.toMatchObject({ code: "23505" });
    expect((await db.sql`select id from t order by id`).map((r) => r.id)).toEqual([1, 2]);
    // The connection is still good for the next session.
    expect(await run((session) => session.query("select 1 as one"))).toEqual([{ one: 1 }]);
  });

  it("reports a setup statement's error as its mapError says, and rolls back", async () => {
    const refused = run((session) =>
      session.transaction(
        async () => "not reached",
        [
          { text: "insert into t values (9, 'setup')", params: [] },
          {
            text: "select 1 / $1::int4",
            params: [0],
            mapError: (error) => new DrayError("invalid_argument", `mapped: ${String(error)}`),
          },
        ],
      ),
    );
    await expect(refused).rejects.toBeInstanceOf(DrayError);
    await expect(refused).rejects.toMatchObject({ code: "invalid_argument" });
    expect(await db.sql`select id from t`).toHaveLength(0);
  });
});

describe("pipelines and prepared statements", () => {
  it("runs a pipeline's statements in order and returns each one's rows", async () => {
    const rows = await run((session) =>
      session.transaction(() =>
        session.pipeline([
          { text: "savepoint dray_test", params: [] },
          {
            text: "select pg_catalog.set_config('dray.p1', $1::text, true)",
            params: ["7"],
            prepared: true,
          },
          { text: "select pg_catalog.current_setting('dray.p1')::int4 + 1 as next", params: [] },
        ]),
      ),
    );
    expect(rows[2]).toEqual([{ next: 8 }]);
  });

  it("prepares only the statements asked for, and reuses them on the connection", async () => {
    const text = "select $1::int4 * 2 as twice";
    const other = "select $1::int4 * 3 as thrice";
    await run(async (session) => {
      expect(await session.query(text, [21], { prepared: true })).toEqual([{ twice: 42 }]);
      expect(await session.query(other, [1])).toEqual([{ thrice: 3 }]);
    });
    const prepared = await run((session) =>
      session.query<{ statement: string }>("select statement from pg_catalog.pg_prepared_statements"),
    );
    const statements = prepared.map((p) => p.statement);
    expect(statements).toContain(text);
    expect(statements).not.toContain(other);
    // Used again, it is not prepared a second time.
    await run((session) => session.query(text, [1], { prepared: true }));
    const again = await run((session) =>
      session.query<{ n: string }>(
        "select count(*)::text as n from pg_catalog.pg_prepared_statements where statement = $1::text",
        [text],
      ),
    );
    expect(again[0]?.n).toBe("1");
  });
});

describe("the identifying read", () => {
  it("names the session's backend, and a cancel reaches a statement sent right behind it", async () => {
    const controller = new AbortController();
    let pid: number | undefined;
    const started = Date.now();
    const sleeping = run(async (session) => {
      setTimeout(() => controller.abort(new DrayError("cancelled", "test cancel")), 200);
      const slept = session.query("select pg_catalog.pg_sleep(30)");
      pid = (await session.backend).pid;
      return slept;
    }, controller.signal);
    // The server cancelled it (query_canceled); the connector maps that to the abort's reason.
    await expect(sleeping).rejects.toMatchObject({ code: "57014" });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(pid).toBeGreaterThan(0);
    // The server stopped the statement: the connection's backend is idle again, and the pool works.
    const [state] = await admin<{ state: string | null }[]>`
      select state from pg_catalog.pg_stat_activity where pid = ${pid!}`;
    expect(state?.state).not.toBe("active");
    expect(await run((session) => session.query("select 2 as two"))).toEqual([{ two: 2 }]);
  });
});

describe("the identifying read, once per connection", () => {
  const activityReads = () => sent.filter((text) => text.includes("pg_stat_activity")).length;

  it("reads pg_stat_activity for a connection's first session only, and names the same backend after", async () => {
    const first = await run((session) => session.backend);
    const readsAfterFirst = activityReads();
    const second = await run((session) => session.backend);
    // One connection in the pool: the second session is on the first one's connection.
    expect(second).toEqual(first);
    expect(readsAfterFirst).toBeLessThanOrEqual(1);
    expect(activityReads()).toBe(readsAfterFirst);
    expect(sent.filter((text) => text.endsWith("select pg_backend_pid() as pid")).length).toBeGreaterThan(0);
  });

  it("identifies a new connection in full: a new server process never inherits an old one's start", async () => {
    const before = await run((session) => session.backend);
    // A second pool: its connection is a new server process.
    const other = createPool({
      url: new URL(
        `/${(await db.sql<{ name: string }[]>`select current_database() as name`)[0]!.name}`,
        inject("databaseUrl"),
      ).toString(),
      max: 1,
      logger: silentLogger,
      onStatement: (_connection, text) => void sent.push(text.trim()),
    });
    try {
      const after = await Session.run(
        { ...pools, sql: other },
        new AbortController().signal,
        (session) => session.backend,
      );
      expect(after.pid).not.toBe(before.pid);
      expect(activityReads()).toBe(1);
      const [row] = await admin<{ started: string }[]>`
        select backend_start::text as started from pg_catalog.pg_stat_activity where pid = ${after.pid}`;
      expect(after.started).toBe(row?.started);
    } finally {
      await other.end({ timeout: 5 });
    }
  });
});

describe("a write's ledger claim, sent with BEGIN", () => {
  it("says what to run when the ledger has no position column for a continuous batch, and writes nothing", async () => {
    await run(createLedger);
    // A ledger made before continuous pipelines, whose owner is someone else: the column stays missing.
    await admin.unsafe("alter table dray.batch_ledger drop column position");
    try {
      const rows = rowBatch(["id", "note"], [["1", "continuous"]]);
      const refused = run((session) =>
        writeStagedBatch(
          session,
          {
            batchId: "session-pipeline-position",
            entity: { schema: "public", name: "t" },
            strategy: "merge",
            keyFields: ["id"],
            rows,
            rejectPolicy: "isolate",
            position: ["2026-12-07", "1"],
          },
          prepareRows(rows.data, rows.fields.length, rows.rowCount),
        ),
      );
      await expect(refused).rejects.toMatchObject({ code: "failed_precondition", retryable: false });
      await expect(refused).rejects.toThrow(/ALTER TABLE dray\.batch_ledger ADD COLUMN position jsonb/);
      expect(await db.sql`select id from t`).toHaveLength(0);
      expect(await admin`select batch_id from dray.batch_ledger`).toHaveLength(0);
    } finally {
      await admin.unsafe("alter table dray.batch_ledger add column if not exists position jsonb");
    }
  });
});
