/**
 * A run's shared source snapshot (ExportSnapshotTask, ReadBatchTask.snapshot_id):
 * reads given the id see the database as of the export, whatever committed
 * since, through COPY and through SELECT, with transformations too; a released
 * snapshot answers `snapshot_gone`; a malformed id is refused before any SQL.
 * And the describe's `validated` flag on references, which tells the control
 * plane which references the source enforces for every row. Against a real
 * PostgreSQL, in a database of this file's own.
 */
import { isDrayError } from "@dray/common";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { ReadBatchRequest } from "../src/connector.js";
import { createPostgresConnector } from "../src/connectors/postgres/index.js";
import { createOwnDatabase, type OwnDatabase } from "./support/own-database.js";

const SETUP = `
create schema app;
create table app.parent (id int8 primary key, name text not null);
insert into app.parent select g, 'p' || g from generate_series(1, 50) g;
create table app.child (id int8 primary key, parent_id int8 not null references app.parent (id));
insert into app.child select g, 1 + g % 40 from generate_series(1, 200) g;
create table app.loose (id int8 primary key, parent_id int8);
alter table app.loose add constraint loose_parent_fkey foreign key (parent_id) references app.parent (id) not valid;
create table app.quiet (id int8 primary key, parent_id int8 references app.parent (id));
alter table app.quiet disable trigger all;
`;

let db: OwnDatabase;
const signal = () => new AbortController().signal;
const read = (extra: Partial<ReadBatchRequest> = {}): ReadBatchRequest => ({
  entity: { schema: "app", name: "parent" },
  keyFields: ["id"],
  maxRows: 1000,
  maxBytes: 1_000_000,
  ...extra,
});
const lines = (data: Uint8Array) => Buffer.from(data).toString("utf8").split("\n").filter(Boolean);

beforeAll(async () => {
  db = await createOwnDatabase(inject("databaseUrl"), SETUP);
});
afterAll(async () => {
  await db?.drop();
});

describe("reads in a run's snapshot", () => {
  it("see the rows as of the export, while reads without it see what committed since", async () => {
    const id = await db.connector.exportSnapshot(signal());
    expect(id).toMatch(/^[0-9A-F]+-[0-9A-F]+-[0-9]+$/);
    await db.sql`insert into app.parent select g, 'late' || g from generate_series(51, 60) g`;
    await db.sql`update app.parent set name = 'renamed' where id = 1`;
    await db.sql`delete from app.parent where id = 45`;
    try {
      const inSnapshot = await db.connector.readBatch(read({ snapshotId: id }), signal());
      expect(inSnapshot.rows.rowCount).toBe(50);
      expect(lines(inSnapshot.rows.data).slice(0, 1)).toEqual(["1\tp1"]);
      expect(lines(inSnapshot.rows.data)[44]).toBe("45\tp45");
      // A page at a time: the next page in the snapshot goes on from the cursor, still as of the export.
      const first = await db.connector.readBatch(read({ snapshotId: id, maxRows: 30 }), signal());
      const second = await db.connector.readBatch(
        read({ snapshotId: id, maxRows: 30, after: first.last }),
        signal(),
      );
      expect(first.rows.rowCount + second.rows.rowCount).toBe(50);
      expect(second.done).toBe(true);
      const now = await db.connector.readBatch(read(), signal());
      expect(now.rows.rowCount).toBe(59);
      expect(lines(now.rows.data)[0]).toBe("1\trenamed");
    } finally {
      await db.connector.releaseSnapshot(id);
      await db.sql`delete from app.parent where id > 50`;
      await db.sql`insert into app.parent values (45, 'p45') on conflict do nothing`;
      await db.sql`update app.parent set name = 'p1' where id = 1`;
    }
  });

  it("read the same way through SELECT (an agent configured for servers without COPY TO STDOUT)", async () => {
    const url = new URL(inject("databaseUrl"));
    const own = await db.sql<{ db: string }[]>`select current_database() as db`;
    url.pathname = `/${own[0]!.db}`;
    const selecting = createPostgresConnector({
      url: url.toString(),
      maxConnections: 3,
      readMethod: "select",
    });
    const id = await db.connector.exportSnapshot(signal());
    try {
      await db.sql`insert into app.parent values (1000, 'late')`;
      const page = await selecting.readBatch(read({ snapshotId: id }), signal());
      expect(page.rows.rowCount).toBe(50);
    } finally {
      await db.connector.releaseSnapshot(id);
      await selecting.close();
      await db.sql`delete from app.parent where id = 1000`;
    }
  });

  it("answer snapshot_gone once the snapshot is let go, and refuse a malformed id before any SQL", async () => {
    const id = await db.connector.exportSnapshot(signal());
    await db.connector.releaseSnapshot(id);
    const gone = await db.connector.readBatch(read({ snapshotId: id }), signal()).catch((e) => e);
    expect(isDrayError(gone)).toBe(true);
    expect(gone.code).toBe("failed_precondition");
    expect(gone.details).toMatchObject({ reason: "snapshot_gone" });
    expect(gone.message).toContain("no longer held");
    const bad = await db.connector
      .readBatch(read({ snapshotId: "1'; drop table app.parent; --" }), signal())
      .catch((e) => e);
    expect(bad.code).toBe("invalid_argument");
    expect(bad.message).toContain("snapshot_id");
    const [count] = await db.sql<{ n: number }[]>`select count(*)::int as n from app.parent`;
    expect(count!.n).toBe(50);
  });
});

describe("an agent with DRAY_AGENT_RUN_SNAPSHOTS=off", () => {
  it("refuses to hold one, saying why (the run then reads each page in a snapshot of its own)", async () => {
    const url = new URL(inject("databaseUrl"));
    const own = await db.sql<{ db: string }[]>`select current_database() as db`;
    url.pathname = `/${own[0]!.db}`;
    const off = createPostgresConnector({ url: url.toString(), maxConnections: 1, runSnapshots: false });
    try {
      const refused = await off.exportSnapshot(signal()).catch((e) => e);
      expect(refused.code).toBe("failed_precondition");
      expect(refused.message).toContain("DRAY_AGENT_RUN_SNAPSHOTS=off");
    } finally {
      await off.close();
    }
  });
});

describe("describe: validated references", () => {
  it("are those declared on the table, validated, with their triggers on", async () => {
    const { entities } = await db.connector.describeSchema(["app"], signal());
    const validated = Object.fromEntries(
      entities.flatMap((e) => e.references.map((r) => [`${e.name}.${r.name}`, r.validated])),
    );
    expect(validated).toEqual({
      "child.child_parent_id_fkey": true,
      "loose.loose_parent_fkey": false,
      "quiet.quiet_parent_id_fkey": false,
    });
  });
});
