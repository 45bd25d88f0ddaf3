/**
 * The high-water mark of continuous reads and the batch position in the
 * ledger: the pure parts (validation, snapshots, the two-phase marks, the
 * task mapping), then against a real PostgreSQL, in databases of this file's own.
 */
import { create } from "@bufbuild/protobuf";
import { DrayError } from "@dray/common";
import { TaskSchema, WriteStrategy } from "@dray/proto";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parseCopy, rowBatch } from "../../../test/connector-contract.js";
import { createOwnDatabase, type OwnDatabase } from "../../../test/support/own-database.js";
import type {
  Connector,
  ReadBatchRequest,
  ReadBatchResult,
  WriteBatchRequest,
  WriteBatchResult,
} from "../../connector.js";
import { runTask } from "../../task-runner.js";
import {
  ContinuousMarks,
  cursorKindOf,
  MAX_SAFETY_LAG_MS,
  parseSnapshot,
  type Recording,
  timeMarkSql,
  transactionsEnded,
  validateContinuous,
} from "./continuous-bound.js";
import { validateReadRequest } from "./keyset-read.js";
import { validatePosition } from "./ledger.js";

const read = (extra: Partial<ReadBatchRequest> = {}): ReadBatchRequest => ({
  entity: { schema: "public", name: "events" },
  keyFields: ["updated_at", "id"],
  maxRows: 100,
  maxBytes: 1 << 20,
  continuous: { cursorField: "updated_at", safetyLagMs: 0 },
  ...extra,
});

function refusal(fn: () => unknown): DrayError {
  try {
    fn();
  } catch (error) {
    return error as DrayError;
  }
  throw new Error("expected a refusal");
}

describe("validateContinuous", () => {
  it("accepts a cursor that is the first key field and a lag from 0 to one day", () => {
    expect(() => validateContinuous(read())).not.toThrow();
    expect(() =>
      validateContinuous(read({ continuous: { cursorField: "updated_at", safetyLagMs: MAX_SAFETY_LAG_MS } })),
    ).not.toThrow();
    expect(() => validateContinuous(read({ continuous: undefined }))).not.toThrow();
  });

  it("refuses a cursor that is not the first key field", () => {
    const error = refusal(() => validateReadRequest(read({ keyFields: ["id", "updated_at"] })));
    expect(error).toBeInstanceOf(DrayError);
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toMatch(/first key field/);
    expect(refusal(() => validateContinuous(read({ keyFields: [] }))).code).toBe("invalid_argument");
  });

  it("refuses a negative, fractional, too long or missing lag", () => {
    for (const safetyLagMs of [-1, 1.5, MAX_SAFETY_LAG_MS + 1, Number.POSITIVE_INFINITY, Number.NaN]) {
      const error = refusal(() =>
        validateReadRequest(read({ continuous: { cursorField: "updated_at", safetyLagMs } })),
      );
      expect(error.code).toBe("invalid_argument");
      expect(error.message).toMatch(/safetyLagMs/);
    }
  });
});

describe("validatePosition", () => {
  it("takes a list of strings without NUL, or nothing", () => {
    expect(() => validatePosition(undefined)).not.toThrow();
    expect(() => validatePosition(["2024-01-01 00:00:00+00", "7"])).not.toThrow();
    expect(refusal(() => validatePosition(["a\0"])).code).toBe("invalid_argument");
    expect(refusal(() => validatePosition([1])).code).toBe("invalid_argument");
    expect(refusal(() => validatePosition("7")).code).toBe("invalid_argument");
  });
});

describe("cursorKindOf and timeMarkSql", () => {
  it("names the date/time kinds and leaves every other type to the snapshot mark", () => {
    expect(cursorKindOf("timestamp with time zone")).toBe("timestamptz");
    expect(cursorKindOf("timestamp without time zone")).toBe("timestamp");
    expect(cursorKindOf("date")).toBe("date");
    for (const type of ["bigint", "integer", "text", "uuid", "numeric", "time without time zone"])
      expect(cursorKindOf(type)).toBe("snapshot");
  });

  it("bounds by the lag and the oldest other writer of this database", () => {
    const sql = timeMarkSql("timestamptz");
    expect(sql).toContain("least(pg_catalog.now() - $1::int8 * interval '1 millisecond'");
    expect(sql).toContain("backend_xid is not null");
    expect(sql).toContain("pid <> pg_catalog.pg_backend_pid()");
    expect(timeMarkSql("timestamp")).toContain("::timestamp without time zone");
    expect(timeMarkSql("date")).toContain("::date");
  });
});

describe("parseSnapshot and transactionsEnded", () => {
  it("parses xmin, xmax and the running transactions", () => {
    expect(parseSnapshot("740:745:740,743")).toEqual({ xmin: 740n, xmax: 745n, xip: [740n, 743n] });
    expect(parseSnapshot("9:9:")).toEqual({ xmin: 9n, xmax: 9n, xip: [] });
    expect(parseSnapshot("18446744073709551615:18446744073709551615:").xmax).toBe(18446744073709551615n);
    for (const bad of ["", "1:2", "1:2:3:4", "a:2:", "1:2:3,,4", "-1:2:"])
      expect(refusal(() => parseSnapshot(bad)).code).toBe("internal");
  });

  it("says a recording's transactions ended once none of them runs any more", () => {
    const earlier = parseSnapshot("100:105:100,103");
    expect(transactionsEnded(earlier, parseSnapshot("100:110:100,107"))).toBe(false);
    expect(transactionsEnded(earlier, parseSnapshot("103:110:103"))).toBe(false);
    expect(transactionsEnded(earlier, parseSnapshot("104:110:107"))).toBe(true);
    expect(transactionsEnded(parseSnapshot("5:5:"), parseSnapshot("5:5:"))).toBe(true);
    // An id the current snapshot has not reached counts as running.
    expect(transactionsEnded(earlier, parseSnapshot("90:101:"))).toBe(false);
  });
});

describe("ContinuousMarks", () => {
  const at = (snapshot: string, maxValue: string | null): Recording => ({
    snapshot: parseSnapshot(snapshot),
    maxValue,
  });

  it("reads nothing on the first poll, then up to the newest earlier recording whose writers ended", () => {
    const marks = new ContinuousMarks();
    expect(marks.advance("k", at("10:12:10", "5"))).toBeNull();
    // Transaction 10 still runs: no mark yet.
    expect(marks.advance("k", at("10:14:10,12", "9"))).toBeNull();
    // 10 ended, 12 still runs: the first recording qualifies.
    expect(marks.advance("k", at("12:15:12", "11"))).toBe("5");
    // Nothing newer qualifies: the mark stays.
    expect(marks.advance("k", at("12:16:12", "12"))).toBe("5");
    // 12 ended, 16 runs: the newest earlier recording (max 12) is the mark.
    expect(marks.advance("k", at("16:17:16", "13"))).toBe("12");
    expect(marks.advance("k", at("17:18:17", "14"))).toBe("13");
  });

  it("takes a read's own largest value at once when no transaction was writing", () => {
    const marks = new ContinuousMarks();
    expect(marks.advance("k", at("10:10:", "5"))).toBe("5");
    expect(marks.advance("k", at("11:12:11", "8"))).toBe("5");
    expect(marks.advance("k", at("13:13:", "9"))).toBe("9");
  });

  it("keeps the last mark when the qualifying recording saw no rows", () => {
    const marks = new ContinuousMarks();
    marks.advance("k", at("1:2:1", "3"));
    expect(marks.advance("k", at("2:3:2", null))).toBe("3");
    expect(marks.advance("k", at("3:4:3", null))).toBe("3");
  });

  it("starts afresh after a restart and keeps cursors apart", () => {
    const marks = new ContinuousMarks();
    marks.advance("a", at("1:2:1", "3"));
    expect(marks.advance("b", at("1:2:1", "7"))).toBeNull();
    expect(marks.advance("a", at("2:3:2", "4"))).toBe("3");
    marks.clear();
    expect(marks.advance("a", at("2:3:2", "4"))).toBeNull();
  });

  it("holds at most maxCursors cursors, forgetting the least recently read", () => {
    const marks = new ContinuousMarks({ maxCursors: 2 });
    marks.advance("a", at("1:2:1", "1"));
    marks.advance("b", at("1:2:1", "1"));
    marks.advance("a", at("2:3:2", "2"));
    marks.advance("c", at("2:3:2", "1"));
    expect(marks.size).toBe(2);
    expect(marks.advance("a", at("3:4:3", "3"))).toBe("2");
    expect(marks.advance("b", at("3:4:3", "3"))).toBeNull();
  });

  it("keeps at most maxPending recordings, dropping the oldest", () => {
    const marks = new ContinuousMarks({ maxPending: 2 });
    marks.advance("k", at("1:3:1", "1"));
    marks.advance("k", at("1:4:1,3", "2"));
    marks.advance("k", at("1:5:1,3", "3"));
    // Transaction 1 ended, 3 still runs: only the recording of max 1 would qualify, and it is gone.
    expect(marks.advance("k", at("3:6:3", "4"))).toBeNull();
  });
});

describe("runTask", () => {
  it("hands the continuous bound and the batch position to the connector", async () => {
    const seen: { read?: ReadBatchRequest; write?: WriteBatchRequest } = {};
    const connector = {
      async readBatch(request: ReadBatchRequest): Promise<ReadBatchResult> {
        seen.read = request;
        return { rows: rowBatch(["id"], []), last: null, done: true };
      },
      async writeBatch(request: WriteBatchRequest): Promise<WriteBatchResult> {
        seen.write = request;
        return { alreadyCommitted: false, created: 0, updated: 0, rejected: 0, rejectedRecords: [] };
      },
    } as unknown as Connector;
    const signal = new AbortController().signal;
    const readTask = create(TaskSchema, {
      deadlineUnixMs: BigInt(Date.now() + 60_000),
      kind: {
        case: "readBatch",
        value: {
          entity: { schema: "public", name: "events" },
          keyFields: ["updated_at", "id"],
          after: { values: ["2024-01-01 00:00:00+00", "3"] },
          maxRows: 10,
          continuous: { cursorField: "updated_at", safetyLagMs: 5000n },
        },
      },
    });
    expect((await runTask(connector, readTask, signal))?.case).toBe("result");
    expect(seen.read?.continuous).toEqual({ cursorField: "updated_at", safetyLagMs: 5000 });
    expect(seen.read?.after).toEqual(["2024-01-01 00:00:00+00", "3"]);

    const plain = create(TaskSchema, {
      deadlineUnixMs: BigInt(Date.now() + 60_000),
      kind: { case: "readBatch", value: { entity: { name: "events" }, keyFields: ["id"], maxRows: 10 } },
    });
    await runTask(connector, plain, signal);
    expect(seen.read && "continuous" in seen.read).toBe(false);

    const writeTask = create(TaskSchema, {
      deadlineUnixMs: BigInt(Date.now() + 60_000),
      kind: {
        case: "writeBatch",
        value: {
          batchId: "b1",
          entity: { schema: "public", name: "events" },
          strategy: WriteStrategy.MERGE,
          keyFields: ["id"],
          position: { values: ["2024-01-01 00:00:00+00", "3"] },
        },
      },
    });
    expect((await runTask(connector, writeTask, signal))?.case).toBe("result");
    expect(seen.write?.position).toEqual(["2024-01-01 00:00:00+00", "3"]);
  });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("continuous reads against PostgreSQL", () => {
  let db: OwnDatabase;

  beforeAll(async () => {
    db = await createOwnDatabase(
      inject("databaseUrl"),
      `
      create table events (id int8 primary key, updated_at timestamptz, label text not null);
      create index on events (updated_at, id);
      create table lagged (id int8 primary key, updated_at timestamptz not null);
      create table counters (id int8 primary key, label text not null);
      `,
    );
  }, 60_000);

  afterAll(async () => db?.drop());

  const signal = () => new AbortController().signal;
  const ids = (result: ReadBatchResult) => parseCopy(result.rows.data).map((row) => row[0]);

  it("reads a row of a transaction that began earlier and committed after a later row, none skipped", async () => {
    const { sql, connector } = db;
    const early = await sql.reserve();
    try {
      await early.unsafe("begin");
      await early.unsafe("insert into events values (1, now(), 'early')");
      await sql.unsafe("insert into events values (2, now(), 'late'), (3, null, 'no cursor')");
      const [order] = await sql.unsafe<{ later: boolean }[]>(
        "select (select updated_at from events where id = 2) > (select xact_start from pg_stat_activity where pid = $1) as later",
        [(await early.unsafe<{ pid: number }[]>("select pg_backend_pid() as pid"))[0]!.pid],
      );
      expect(order?.later).toBe(true);

      const request = read({ fields: ["id", "updated_at", "label"] });
      for (let poll = 0; poll < 3; poll++) {
        const page = await connector.readBatch(request, signal());
        expect(ids(page)).toEqual([]);
        expect(page.done).toBe(true);
      }
      await early.unsafe("commit");
    } finally {
      // After a failed assertion the transaction is still open: never hand it back to the pool.
      await early.unsafe("rollback");
      early.release();
    }

    const page = await db.connector.readBatch(read({ fields: ["id", "updated_at", "label"] }), signal());
    expect(ids(page)).toEqual(["1", "2"]);
    expect(page.done).toBe(true);
    const [same] = await sql.unsafe<{ ok: boolean }[]>(
      // Through text: a string parameter would be sent as a JavaScript Date (milliseconds only).
      "select updated_at = $1::text::timestamptz as ok from events where id = $2::text::int8",
      [page.last![0]!, page.last![1]!],
    );
    expect(same?.ok).toBe(true);
    expect(page.last![1]).toBe("2");
    const next = await db.connector.readBatch(read({ after: page.last }), signal());
    expect(ids(next)).toEqual([]);
    expect(next.done).toBe(true);
  });

  it("pages below the mark in (cursor, key) order and re-reads a range whole with until", async () => {
    const { sql, connector } = db;
    await sql.unsafe("delete from events");
    await sql.unsafe(`insert into events
      select i, timestamptz '2024-01-01 00:00:00+00' + (i / 2) * interval '1 second', 'r' from generate_series(10, 15) i`);
    const seen: string[] = [];
    let after: string[] | null = null;
    for (let poll = 0; poll < 10; poll++) {
      const page = await connector.readBatch(read({ maxRows: 4, after }), signal());
      seen.push(...(ids(page) as string[]));
      if (page.last) after = page.last;
      if (page.done) break;
    }
    expect(seen).toEqual(["10", "11", "12", "13", "14", "15"]);
    // A transaction still writing holds the mark below its start, but a batch's range read again is whole.
    const open = await sql.reserve();
    try {
      await open.unsafe("begin");
      await open.unsafe("insert into events values (16, now(), 'held')");
      await sql.unsafe("insert into events values (17, now(), 'after the held one')");
      const bounded = await connector.readBatch(read(), signal());
      expect(ids(bounded)).toEqual(["10", "11", "12", "13", "14", "15"]);
      const again = await connector.readBatch(read({ until: ["infinity", "0"] }), signal());
      expect(ids(again)).toEqual(["10", "11", "12", "13", "14", "15", "17"]);
    } finally {
      await open.unsafe("rollback");
      open.release();
    }
  });

  it("leaves a row newer than the safety lag for a later read", async () => {
    const { sql, connector } = db;
    await sql.unsafe("insert into lagged values (1, now() - interval '1 minute'), (2, now())");
    const request = (safetyLagMs: number) =>
      read({
        entity: { schema: "public", name: "lagged" },
        continuous: { cursorField: "updated_at", safetyLagMs },
      });
    expect(ids(await connector.readBatch(request(5000), signal()))).toEqual(["1"]);
    expect(ids(await connector.readBatch(request(0), signal()))).toEqual(["1", "2"]);
  });

  it("computes date/time marks for every date/time kind", async () => {
    for (const kind of ["timestamptz", "timestamp", "date"] as const) {
      const [row] = await db.sql.unsafe<{ mark: string | null }[]>(timeMarkSql(kind), ["0"]);
      expect(row?.mark).not.toBeNull();
    }
  });

  it("never reads an integer cursor past a row still being written", async () => {
    const { sql, connector } = db;
    const request = (after: string[] | null) =>
      read({
        entity: { schema: "public", name: "counters" },
        keyFields: ["id"],
        continuous: { cursorField: "id", safetyLagMs: 0 },
        after,
      });
    // The first poll records only.
    const first = await connector.readBatch(request(null), signal());
    expect(ids(first)).toEqual([]);
    expect(first.done).toBe(true);

    const a = await sql.reserve();
    try {
      await a.unsafe("begin");
      await a.unsafe("insert into counters values (1, 'a')");
      await sql.unsafe("insert into counters values (2, 'b')");
      for (let poll = 0; poll < 5; poll++) {
        expect(ids(await connector.readBatch(request(null), signal()))).toEqual([]);
        await sleep(20);
      }
      await a.unsafe("commit");
    } finally {
      await a.unsafe("rollback");
      a.release();
    }

    // Other work on the server may hold its transactions open a while: poll until both rows came.
    const seen: string[] = [];
    let after: string[] | null = null;
    for (let poll = 0; poll < 300 && seen.length < 2; poll++) {
      const page = await connector.readBatch(request(after), signal());
      seen.push(...(ids(page) as string[]));
      if (page.last) after = page.last;
      if (seen.length < 2) await sleep(100);
    }
    expect(seen).toEqual(["1", "2"]);
  }, 60_000);
});

describe("the batch position in the ledger", () => {
  let db: OwnDatabase;
  let old: OwnDatabase;

  beforeAll(async () => {
    db = await createOwnDatabase(
      inject("databaseUrl"),
      "create table items (id int8 primary key, updated_at timestamptz not null)",
    );
    // A ledger as agents created it before positions existed.
    old = await createOwnDatabase(
      inject("databaseUrl"),
      `
      create table items (id int8 primary key, updated_at timestamptz not null);
      create schema dray;
      create table dray.batch_ledger (
        batch_id text primary key, entity text not null, row_count int not null,
        created int not null, updated int not null, rejected int not null,
        committed_at timestamptz not null default now());
      insert into dray.batch_ledger values ('before', 'public.items', 0, 0, 0, 0, now());
      `,
    );
  }, 60_000);

  afterAll(async () => {
    await db?.drop();
    await old?.drop();
  });

  const write = (connector: Connector, batchId: string, id: number, position?: string[]) =>
    connector.writeBatch(
      {
        batchId,
        entity: { schema: "public", name: "items" },
        strategy: "merge",
        keyFields: ["id"],
        rows: rowBatch(["id", "updated_at"], [[String(id), "2024-01-01 00:00:00+00"]]),
        rejectPolicy: "fail",
        ...(position ? { position } : {}),
      },
      new AbortController().signal,
    );

  const positionOf = async (target: OwnDatabase, batchId: string) => {
    const [row] = await target.sql.unsafe<{ position: string[] | null }[]>(
      "select position from dray.batch_ledger where batch_id = $1",
      [batchId],
    );
    return row?.position;
  };

  it("records the position with the rows, once", async () => {
    const position = ["2024-01-01 00:00:00+00", "1"];
    expect(await write(db.connector, "p1", 1, position)).toMatchObject({
      alreadyCommitted: false,
      updated: 0,
    });
    expect(await positionOf(db, "p1")).toEqual(position);
    const replay = await write(db.connector, "p1", 2, ["2024-01-02 00:00:00+00", "2"]);
    expect(replay.alreadyCommitted).toBe(true);
    expect(await positionOf(db, "p1")).toEqual(position);
    expect((await db.sql.unsafe("select id from items order by id")).map((r) => Number(r.id))).toEqual([1]);
    await write(db.connector, "p2", 3);
    expect(await positionOf(db, "p2")).toBeNull();
  });

  it("adds the position column to a ledger created before it", async () => {
    const position = ["2024-01-01 00:00:00+00", "5"];
    expect(await write(old.connector, "p1", 5, position)).toMatchObject({ alreadyCommitted: false });
    expect(await positionOf(old, "p1")).toEqual(position);
    expect(await positionOf(old, "before")).toBeNull();
    const [column] = await old.sql.unsafe<{ type: string }[]>(
      "select data_type as type from information_schema.columns where table_schema = 'dray' and table_name = 'batch_ledger' and column_name = 'position'",
    );
    expect(column?.type).toBe("jsonb");
  });
});
