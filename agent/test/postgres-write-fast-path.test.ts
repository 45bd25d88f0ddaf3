/**
 * The direct COPY fast path of writes (`direct-copy.ts`): taken when a batch
 * cannot meet rows already present, and never changing an outcome. Every case
 * runs the same write in two twin databases — one with the fast path, one
 * without — and compares results, errors, ledger rows, replay answers and
 * table contents. A statement trigger logs the statements that inserted into
 * each table, which shows whether the rows came by COPY or by the staged
 * INSERT … SELECT. Against a real PostgreSQL.
 */
import { randomBytes } from "node:crypto";
import { silentLogger } from "@dray/common";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { Connector, RowBatch, WriteBatchRequest } from "../src/connector.js";
import { createPool } from "../src/connectors/postgres/connection-options.js";
import { toDrayError } from "../src/connectors/postgres/error-mapping.js";
import { createPostgresConnector } from "../src/connectors/postgres/index.js";
import { createLedger } from "../src/connectors/postgres/ledger.js";
import { Session, type SessionPools } from "../src/connectors/postgres/session.js";
import {
  prepareRows,
  validateWriteRequest,
  writeStagedBatch,
} from "../src/connectors/postgres/write-batch.js";
import { rowBatch } from "./connector-contract.js";

/** One database of the pair, with the pools a write session needs. */
class Twin {
  readonly name = `dray_t_${randomBytes(6).toString("hex")}`;
  url = "";
  sql!: postgres.Sql;
  pools!: SessionPools;
  private control!: postgres.Sql;

  constructor(readonly directCopy: boolean) {}

  async create(admin: postgres.Sql, base: string): Promise<void> {
    await admin.unsafe(`create database "${this.name}"`);
    const url = new URL(base);
    url.pathname = `/${this.name}`;
    this.url = url.toString();
    this.sql = postgres(this.url, { max: 3, onnotice: () => {} });
    this.control = postgres(this.url, { max: 1, onnotice: () => {} });
    const pool = createPool({ url: this.url, max: 4, logger: silentLogger });
    this.pools = {
      sql: pool,
      logger: silentLogger,
      cancelBackend: async (backend) => {
        await this.control.unsafe("select pg_cancel_backend($1::int4)", [backend.pid]);
      },
    };
    await Session.run(this.pools, new AbortController().signal, createLedger);
    await this.sql.unsafe(`
      create schema app;
      create table app.write_log (tbl text not null, query text not null);
      create function app.log_write() returns trigger language plpgsql as $$
        begin insert into app.write_log values (tg_table_name, current_query()); return null; end $$;`);
  }

  /** Writes as the connector does (validate, prepare, one session, errors as DrayErrors). */
  async write(request: WriteBatchRequest, signal = new AbortController().signal): Promise<Outcome> {
    try {
      validateWriteRequest(request);
      const prepared = prepareRows(request.rows.data, request.rows.fields.length, request.rows.rowCount);
      const result = await Session.run(this.pools, signal, (session) =>
        writeStagedBatch(session, request, prepared, "copy", this.directCopy),
      );
      return { result };
    } catch (error) {
      const e = toDrayError(error, { aborted: signal.aborted, operation: "write" });
      return { error: { code: e.code, message: e.message, retryable: e.retryable, details: e.details } };
    }
  }

  async end(admin: postgres.Sql): Promise<void> {
    await this.pools?.sql.end({ timeout: 5 });
    await this.sql?.end({ timeout: 5 });
    await this.control?.end({ timeout: 5 });
    await admin.unsafe(`drop database if exists "${this.name}" with (force)`);
  }
}

type Outcome = { result: unknown } | { error: unknown };

let admin: postgres.Sql;
const fast = new Twin(true);
const staged = new Twin(false);
const twins = [fast, staged];

beforeAll(async () => {
  const base = inject("databaseUrl");
  admin = postgres(base, { max: 1, onnotice: () => {} });
  await Promise.all(twins.map((twin) => twin.create(admin, base)));
});

afterAll(async () => {
  for (const twin of twins) await twin.end(admin);
  await admin?.end({ timeout: 5 });
});

/** Runs DDL and seed data in both twins; `logged` tables get the statement log trigger. */
async function setup(ddl: string, logged: string[] = []): Promise<void> {
  for (const twin of twins) {
    await twin.sql.unsafe(ddl);
    for (const table of logged)
      await twin.sql.unsafe(
        `create trigger log_write after insert on app.${table} for each statement execute function app.log_write()`,
      );
  }
}

function request(
  batchId: string,
  table: string,
  fields: string[],
  rows: (string | null)[][],
  extra: Partial<WriteBatchRequest> = {},
): WriteBatchRequest {
  return {
    batchId,
    entity: { schema: "app", name: table },
    strategy: "insert",
    keyFields: ["id"],
    rows: rowBatch(fields, rows),
    rejectPolicy: "isolate",
    // The twins tell the paths apart by a statement trigger, so triggers fire here.
    fireTriggers: true,
    ...extra,
  };
}

async function snapshot(twin: Twin, table: string, batchId: string) {
  const [contents] = await twin.sql.unsafe(
    `select count(*)::int as n, md5(coalesce(string_agg(t::text, ',' order by t::text), '')) as sum from app.${table} t`,
  );
  const ledger = await twin.sql.unsafe(
    "select entity, row_count, created, updated, rejected from dray.batch_ledger where batch_id = $1::text",
    [batchId],
  );
  return { contents, ledger: [...ledger] };
}

/** How the last write put rows into `table` in the fast twin: by COPY, by the staged INSERT, or not at all. */
async function pathOf(table: string): Promise<"direct" | "staged" | "none"> {
  const rows = await fast.sql.unsafe("select query from app.write_log where tbl = $1::text", [table]);
  if (rows.some((r) => String(r.query).startsWith("copy "))) return "direct";
  return rows.length > 0 ? "staged" : "none";
}

/**
 * Writes `req` in both twins and checks they agree on the outcome, the table,
 * the ledger and the answer to a replay. Returns the outcome and the fast
 * twin's path.
 */
async function compare(req: WriteBatchRequest) {
  const table = req.entity.name;
  await Promise.all(twins.map((twin) => twin.sql.unsafe("delete from app.write_log")));
  const outcome = await fast.write(req);
  const path = await pathOf(table);
  expect(await staged.write(req)).toEqual(outcome);
  expect(await snapshot(fast, table, req.batchId)).toEqual(await snapshot(staged, table, req.batchId));
  const replay = await fast.write(req);
  expect(await staged.write(req)).toEqual(replay);
  if ("result" in outcome) {
    const { rejectedRecords: _, ...counts } = outcome.result as Record<string, unknown>;
    expect(replay).toEqual({ result: { ...counts, alreadyCommitted: true, rejectedRecords: [] } });
  }
  return { outcome, path };
}

const items = (ids: number[], label = "item") => ids.map((id) => [String(id), `${label} ${id}`]);

describe("direct COPY fast path", () => {
  it("copies a conflict-free batch straight into the target, for insert and merge", async () => {
    await setup(
      `create table app.plain (id int8 primary key, label text not null);
       create table app.merged (id int8 primary key, label text not null);
       insert into app.merged values (1, 'before'), (100, 'after');`,
      ["plain", "merged"],
    );
    const ids = Array.from({ length: 500 }, (_, i) => i + 1);
    for (const rejectPolicy of ["isolate", "fail"] as const) {
      const offset = rejectPolicy === "fail" ? 1000 : 0;
      const inserted = await compare(
        request(`plain-${rejectPolicy}`, "plain", ["id", "label"], items(ids.map((i) => i + offset)), {
          rejectPolicy,
        }),
      );
      expect(inserted).toEqual({
        path: "direct",
        outcome: {
          result: { alreadyCommitted: false, created: 500, updated: 0, rejected: 0, rejectedRecords: [] },
        },
      });
    }
    // Rows exist below and above the batch, none between its first and last key.
    const merged = await compare(
      request("merged-1", "merged", ["id", "label"], items([2, 3, 50, 99]), { strategy: "merge" }),
    );
    expect(merged).toMatchObject({ path: "direct", outcome: { result: { created: 4, updated: 0 } } });
  });

  it("takes the fast path for composite keys, identity columns and partitioned targets", async () => {
    await setup(
      `create table app.pair (a int4 not null, b text not null, v numeric(6,2), primary key (a, b));
       insert into app.pair values (1, 'z', 1), (3, 'a', 1);
       create table app.ident (id int8 generated always as identity primary key, label text);
       create table app.parted (id int4 primary key, v text) partition by range (id);
       create table app.parted_1 partition of app.parted for values from (0) to (100);
       create table app.parted_2 partition of app.parted for values from (100) to (200);
       insert into app.parted values (1, 'old'), (190, 'old');`,
      ["pair", "ident", "parted"],
    );
    const pair = await compare(
      request(
        "pair-1",
        "pair",
        ["a", "b", "v"],
        [
          ["2", "a", "1.005"],
          ["2", "b", null],
          ["3", "0", "7"],
        ],
        { strategy: "merge", keyFields: ["a", "b"] },
      ),
    );
    expect(pair).toMatchObject({ path: "direct", outcome: { result: { created: 3 } } });
    const ident = await compare(request("ident-1", "ident", ["id", "label"], items([7, 8])));
    expect(ident).toMatchObject({ path: "direct", outcome: { result: { created: 2 } } });
    const parted = await compare(
      request("parted-1", "parted", ["id", "v"], items([2, 99, 100, 150]), { strategy: "merge" }),
    );
    expect(parted).toMatchObject({ path: "direct", outcome: { result: { created: 4, updated: 0 } } });
  });

  it("stages a batch whose key range holds an existing row", async () => {
    await setup(
      `create table app.ranged (id int8 primary key, label text not null);
       insert into app.ranged values (5, 'old');`,
      ["ranged"],
    );
    const merged = await compare(
      request("ranged-merge", "ranged", ["id", "label"], items([1, 5, 9]), { strategy: "merge" }),
    );
    expect(merged).toMatchObject({ path: "staged", outcome: { result: { created: 2, updated: 1 } } });
    const inserted = await compare(
      request("ranged-insert", "ranged", ["id", "label"], items([4, 5, 6], "again")),
    );
    expect(inserted).toMatchObject({ path: "staged", outcome: { result: { created: 2, rejected: 1 } } });
    expect((inserted.outcome as { result: { rejectedRecords: unknown[] } }).result.rejectedRecords).toEqual([
      expect.objectContaining({ key: ["5"], field: "id", sqlState: "23505" }),
    ]);
  });

  it("falls back when the COPY meets a key outside the probed range (rows not in key order)", async () => {
    await setup(
      `create table app.unordered (id int8 primary key, label text not null);
       insert into app.unordered values (50, 'old');`,
      ["unordered"],
    );
    // First key 10, last 20: nothing in between, but 50 exists. Then a duplicate inside the batch.
    const merged = await compare(
      request("unordered-merge", "unordered", ["id", "label"], items([10, 50, 20]), { strategy: "merge" }),
    );
    expect(merged).toMatchObject({ path: "staged", outcome: { result: { created: 2, updated: 1 } } });
    const inserted = await compare(
      request("unordered-insert", "unordered", ["id", "label"], items([30, 50, 31, 30], "dup")),
    );
    expect(inserted).toMatchObject({ path: "staged", outcome: { result: { created: 2, rejected: 2 } } });
    const failed = await compare(
      request("unordered-fail", "unordered", ["id", "label"], items([40, 50, 41]), { rejectPolicy: "fail" }),
    );
    expect(failed).toMatchObject({
      path: "none",
      outcome: { error: { code: "failed_precondition", details: { sqlState: "23505" } } },
    });
    const twice = await compare(
      request("unordered-twice", "unordered", ["id", "label"], items([60, 61, 60]), { strategy: "merge" }),
    );
    // The whole range hits 60 twice; bisected, the second 60 updates the first.
    expect(twice).toMatchObject({ path: "staged", outcome: { result: { created: 2, updated: 1 } } });
    const twiceFailing = await compare(
      request("unordered-twice-fail", "unordered", ["id", "label"], items([70, 71, 70]), {
        strategy: "merge",
        rejectPolicy: "fail",
      }),
    );
    expect(twiceFailing).toMatchObject({
      path: "none",
      outcome: { error: { code: "invalid_argument", details: { sqlState: "21000" } } },
    });
  });

  it("falls back on a bad value, with isolate and with fail", async () => {
    await setup(
      `create table app.typed (id int8 primary key, qty int4 not null check (qty >= 0), code varchar(3));`,
      ["typed"],
    );
    const rows = [
      ["1", "5", "abc"],
      ["2", "not a number", "x"],
      ["3", "-1", "x"],
      ["4", "7", "toolong"],
      ["5", "1", null],
    ];
    const isolated = await compare(request("typed-isolate", "typed", ["id", "qty", "code"], rows));
    expect(isolated).toMatchObject({ path: "staged", outcome: { result: { created: 2, rejected: 3 } } });
    expect(
      (
        isolated.outcome as { result: { rejectedRecords: { key: string[]; field?: string }[] } }
      ).result.rejectedRecords.map((r) => [r.key[0], r.field]),
    ).toEqual([
      ["2", "qty"],
      ["3", undefined],
      ["4", "code"],
    ]);
    const failed = await compare(
      request(
        "typed-fail",
        "typed",
        ["id", "qty", "code"],
        [
          ["10", "1", "x"],
          ["11", "x", "y"],
        ],
        {
          rejectPolicy: "fail",
        },
      ),
    );
    expect(failed).toMatchObject({
      path: "none",
      outcome: { error: { code: "invalid_argument", details: { sqlState: "22P02" } } },
    });
    // A key that does not cast fails the probe, not the batch.
    const badKey = await compare(
      request(
        "typed-key",
        "typed",
        ["id", "qty", "code"],
        [
          ["x", "1", "a"],
          ["20", "1", "b"],
        ],
      ),
    );
    expect(badKey).toMatchObject({ path: "staged", outcome: { result: { created: 1, rejected: 1 } } });
  });

  it("gives the staged results for a deferred foreign key violation", async () => {
    await setup(
      `create table app.parent (id int8 primary key);
       insert into app.parent values (1), (2);
       create table app.child (id int8 primary key,
         parent_id int8 references app.parent deferrable initially deferred);`,
      ["child"],
    );
    const rows = [
      ["1", "1"],
      ["2", "9"],
      ["3", "2"],
    ];
    const isolated = await compare(request("child-isolate", "child", ["id", "parent_id"], rows));
    expect(isolated).toMatchObject({ path: "staged", outcome: { result: { created: 2, rejected: 1 } } });
    expect((isolated.outcome as { result: { rejectedRecords: unknown[] } }).result.rejectedRecords).toEqual([
      expect.objectContaining({ key: ["2"], field: "parent_id", sqlState: "23503" }),
    ]);
    // With fail, the deferred check runs at COMMIT in both paths.
    const failed = await compare(
      request(
        "child-fail",
        "child",
        ["id", "parent_id"],
        [
          ["10", "1"],
          ["11", "9"],
        ],
        { rejectPolicy: "fail" },
      ),
    );
    expect(failed).toMatchObject({ outcome: { error: { details: { sqlState: "23503" } } } });
    const good = await compare(
      request(
        "child-good",
        "child",
        ["id", "parent_id"],
        [
          ["20", "1"],
          ["21", "2"],
        ],
      ),
    );
    expect(good).toMatchObject({ path: "direct", outcome: { result: { created: 2 } } });
  });

  describe("stays on the staged path where a COPY would not do what the staged statement does", () => {
    it("when a BEFORE ROW INSERT trigger may skip rows, on the target or a partition", async () => {
      await setup(
        `create function app.skip_odd() returns trigger language plpgsql as $$
           begin if new.id % 2 = 1 then return null; end if; return new; end $$;
         create table app.skipping (id int8 primary key, label text);
         create trigger skip_odd before insert on app.skipping for each row execute function app.skip_odd();
         create table app.skipping_parted (id int8 primary key, label text) partition by range (id);
         create table app.skipping_low partition of app.skipping_parted for values from (0) to (100);
         create table app.skipping_high partition of app.skipping_parted for values from (100) to (200);
         create trigger skip_odd before insert on app.skipping_high for each row execute function app.skip_odd();`,
        ["skipping", "skipping_parted"],
      );
      const skipped = await compare(request("skipping-1", "skipping", ["id", "label"], items([1, 2, 3, 4])));
      expect(skipped).toMatchObject({ path: "staged", outcome: { result: { created: 2 } } });
      const parted = await compare(
        request("skipping-2", "skipping_parted", ["id", "label"], items([1, 2, 101, 102])),
      );
      expect(parted).toMatchObject({ path: "staged", outcome: { result: { created: 3 } } });
    });

    it("when the target has rules", async () => {
      await setup(
        `create table app.ruled (id int8 primary key, label text);
         create table app.ruled_audit (id int8, label text);
         create rule audit as on insert to app.ruled do also insert into app.ruled_audit values (new.id, new.label);`,
        ["ruled"],
      );
      // Triggers firing: Dray never writes through rules, so the write is refused up front.
      const ruled = await compare(request("ruled-1", "ruled", ["id", "label"], items([1, 2])));
      expect(ruled).toMatchObject({ path: "none", outcome: { error: { code: "failed_precondition" } } });
      expect(JSON.stringify(ruled)).toContain("rewrite rules");
      // Triggers off (the default): rules are off too, so the COPY and the staged INSERT agree and
      // the rows land in the table itself, none in the audit table.
      const off = await compare(
        request("ruled-2", "ruled", ["id", "label"], items([1, 2]), { fireTriggers: false }),
      );
      expect(off).toMatchObject({ path: "none", outcome: { result: { created: 2 } } });
      for (const twin of twins) {
        const [row] = await twin.sql.unsafe(
          "select (select count(*)::int from app.ruled) as rows, (select count(*)::int from app.ruled_audit) as audit",
        );
        expect(row).toEqual({ rows: 2, audit: 0 });
      }
    });

    it("when a merge's ON CONFLICT has no usable arbiter", async () => {
      await setup(
        `create table app.deferred_key (id int8 primary key deferrable initially deferred, label text);
         create table app.loose_key (a int8 not null unique, b int8 not null, label text);`,
        ["deferred_key", "loose_key"],
      );
      // ON CONFLICT refuses a deferrable arbiter; a COPY would have succeeded.
      const deferred = await compare(
        request("deferred-key-1", "deferred_key", ["id", "label"], items([1, 2]), { strategy: "merge" }),
      );
      expect(deferred).toMatchObject({
        path: "none",
        outcome: { error: { details: { sqlState: "55000" } } },
      });
      // (a, b) is unique because a is, but no index is on exactly (a, b).
      const loose = await compare(
        request("loose-key-1", "loose_key", ["a", "b", "label"], [["1", "1", "x"]], {
          strategy: "merge",
          keyFields: ["a", "b"],
        }),
      );
      expect(loose).toMatchObject({ path: "none", outcome: { error: { details: { sqlState: "42P10" } } } });
    });

    it("when a merge would fire UPDATE statement triggers", async () => {
      await setup(
        `create table app.touched (id int8 primary key, label text);
         create function app.touch() returns trigger language plpgsql as $$
           begin insert into app.write_log values ('touched update', current_query()); return null; end $$;
         create trigger touch after update on app.touched for each statement execute function app.touch();`,
        ["touched"],
      );
      // ON CONFLICT DO UPDATE fires them even when nothing conflicts; a COPY would not.
      const touched = await compare(
        request("touched-1", "touched", ["id", "label"], items([1, 2]), { strategy: "merge" }),
      );
      expect(touched).toMatchObject({ path: "staged", outcome: { result: { created: 2 } } });
      const fired = "select count(*)::int as n from app.write_log where tbl = 'touched update'";
      expect((await fast.sql.unsafe(fired))[0]!.n).toBe(1);
      expect((await staged.sql.unsafe(fired))[0]!.n).toBe(1);
    });
  });

  it("stages malformed batches, NULL keys and updates", async () => {
    await setup(
      `create table app.misc (id int8 primary key, label text);
       insert into app.misc values (100, 'old');`,
      ["misc"],
    );
    const raw = (text: string, rowCount: number): RowBatch => ({
      encoding: "copy_text",
      fields: ["id", "label"],
      rowCount,
      data: Buffer.from(text),
    });
    const malformed = await compare({
      ...request("misc-malformed", "misc", ["id", "label"], []),
      rows: raw("1\ta\n2\n3\tc\r\n", 3),
    });
    expect(malformed).toMatchObject({ path: "staged", outcome: { result: { created: 1, rejected: 2 } } });
    const nullKey = await compare(
      request(
        "misc-null",
        "misc",
        ["id", "label"],
        [
          [null, "a"],
          ["5", "b"],
        ],
      ),
    );
    expect(nullKey).toMatchObject({ path: "staged", outcome: { result: { created: 1, rejected: 1 } } });
    const updated = await compare(
      request("misc-update", "misc", ["id", "label"], items([100, 101], "new"), { strategy: "update" }),
    );
    expect(updated).toMatchObject({ path: "none", outcome: { result: { created: 0, updated: 1 } } });
  });

  it("falls back when a concurrent writer commits a key of the batch while the COPY waits", async () => {
    await setup(`create table app.raced (id int8 primary key, label text not null);`, ["raced"]);
    const outcomes: Outcome[] = [];
    for (const twin of twins) {
      const other = await twin.sql.reserve();
      try {
        await other.unsafe("begin");
        await other.unsafe("insert into app.raced values (5, 'theirs')");
        const writing = twin.write(
          request(`raced-${twin.directCopy}`, "raced", ["id", "label"], items([1, 5, 9]), {
            strategy: "merge",
          }),
        );
        await waitForLockWait(twin);
        await other.unsafe("commit");
        outcomes.push(await writing);
      } finally {
        other.release();
      }
    }
    expect(outcomes[0]).toEqual(outcomes[1]);
    expect(outcomes[0]).toMatchObject({ result: { created: 2, updated: 1 } });
    expect(await pathOf("raced")).toBe("staged");
    const [rows] = await fast.sql.unsafe(
      "select string_agg(id || ':' || label, ',' order by id) as all from app.raced",
    );
    expect(rows!.all).toBe("1:item 1,5:item 5,9:item 9");
  });
});

/** Resolves once an agent session of `twin` waits on a lock. */
async function waitForLockWait(twin: Twin, query = ""): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const [row] = await twin.sql.unsafe(
      `select count(*)::int as n from pg_stat_activity
       where datname = current_database() and application_name = 'dray-agent' and wait_event_type = 'Lock'
         and query like $1::text`,
      [`${query}%`],
    );
    if (row!.n > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error("no agent session ever waited on a lock");
}

describe("aborting the direct COPY", () => {
  let connector: Connector;
  beforeAll(async () => {
    connector = createPostgresConnector({ url: fast.url, maxConnections: 4 });
    await fast.sql.unsafe(
      `create table app.aborted (id int8 primary key, body text not null);
       create trigger log_write after insert on app.aborted for each statement execute function app.log_write();`,
    );
  });
  afterAll(() => connector?.close());

  const write = (batchId: string, rows: RowBatch, signal: AbortSignal) =>
    connector.writeBatch(
      {
        batchId,
        entity: { schema: "app", name: "aborted" },
        strategy: "merge",
        keyFields: ["id"],
        rows,
        rejectPolicy: "isolate",
        fireTriggers: true,
      },
      signal,
    );

  async function state(batchId: string) {
    const [row] = await fast.sql.unsafe(
      `select (select count(*)::int from app.aborted) as rows,
         (select count(*)::int from dray.batch_ledger where batch_id = $1::text) as ledger,
         (select count(*)::int from pg_stat_activity where datname = current_database()
            and application_name = 'dray-agent' and state <> 'idle') as busy`,
      [batchId],
    );
    return row!;
  }

  it("rolls back cleanly when cancelled while the COPY waits for a lock", async () => {
    const holder = await fast.sql.reserve();
    try {
      await holder.unsafe("begin");
      // SHARE lets the probe read but blocks the COPY's ROW EXCLUSIVE lock.
      await holder.unsafe("lock table app.aborted in share mode");
      const controller = new AbortController();
      const pending = write("aborted-locked", rowBatch(["id", "body"], items([1, 2, 3])), controller.signal);
      await waitForLockWait(fast, "copy ");
      controller.abort();
      await expect(pending).rejects.toMatchObject({ code: "cancelled" });
    } finally {
      await holder.unsafe("rollback");
      holder.release();
    }
    expect(await state("aborted-locked")).toEqual({ rows: 0, ledger: 0, busy: 0 });
    const retried = await write(
      "aborted-locked",
      rowBatch(["id", "body"], items([1, 2, 3])),
      new AbortController().signal,
    );
    expect(retried).toMatchObject({ created: 3 });
    expect(await pathOf("aborted")).toBe("direct");
  });

  it("rolls back cleanly when cancelled at any moment of a large COPY", async () => {
    let committed = 0;
    let cancelled = 0;
    for (const [attempt, delay] of [0, 2, 5, 10, 20, 40, 80, 160, 5000].entries()) {
      const first = 1_000_000 * (attempt + 1);
      const rows = rowBatch(
        ["id", "body"],
        Array.from({ length: 60_000 }, (_, i) => [String(first + i), `row ${first + i} ${"z".repeat(90)}`]),
      );
      const controller = new AbortController();
      const pending = write(`aborted-${attempt}`, rows, controller.signal);
      setTimeout(() => controller.abort(), delay);
      const outcome = await pending.then(
        (result) => ({ ok: true as const, result }),
        (error: unknown) => ({ ok: false as const, error }),
      );
      if (outcome.ok) {
        committed++;
        expect(outcome.result).toMatchObject({ created: 60_000 });
      } else {
        cancelled++;
        expect(outcome.error).toMatchObject({ code: "cancelled" });
      }
      expect(await state(`aborted-${attempt}`)).toEqual({
        rows: 3 + committed * 60_000,
        ledger: outcome.ok ? 1 : 0,
        busy: 0,
      });
    }
    expect(cancelled).toBeGreaterThan(0);
    expect(committed).toBeGreaterThan(0);
  });
});
