/**
 * Key digests (DigestKeysTask) against a real PostgreSQL, in a database of
 * this file's own: equal key sets digest equally whatever their physical
 * order, a deleted key changes its range only, picked boundaries fall every N
 * rows, composite and text keys, and the digest is the documented one.
 */
import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { isDrayError } from "@dray/common";
import { TaskSchema } from "@dray/proto";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createOwnDatabase, type OwnDatabase } from "../../../test/support/own-database.js";
import type { Connector, DigestKeysRequest, EntityName } from "../../connector.js";
import { runTask } from "../../task-runner.js";
import {
  buildBoundedRangesQuery,
  buildSplitQuery,
  digestOfSum,
  EMPTY_DIGEST,
  MAX_BOUNDARIES,
} from "./digest-keys.js";
import type { FieldInfo } from "./entity-catalog.js";

const SETUP = `
create schema app;
-- The same keys, inserted in opposite orders and churned, so their physical order differs.
create table app.a (id int primary key, v text);
insert into app.a select g, 'a' from generate_series(1, 25) g;
create table app.b (id int primary key, v text);
insert into app.b select g, 'b' from generate_series(25, 1, -1) g;
update app.b set v = 'moved' where id % 3 = 0;
create table app.c (id bigint primary key);
insert into app.c select g from generate_series(1, 1500) g;

create table app.pair_a (k int not null, s text not null, primary key (k, s));
insert into app.pair_a values (1, '23'), (12, '3'), (2, 'x'), (2, 'y'), (3, 'a b');
create table app.pair_b (k int not null, s text not null, primary key (k, s));
insert into app.pair_b values (3, 'a b'), (2, 'y'), (12, '3'), (2, 'x'), (1, '23');

create table app."we""ird" ("the key" text primary key);
insert into app."we""ird" values ('plain'), ('tab	in'), ('quote''s "dq"'), ('é ü 日本'), ('back\\slash'), ('');
`;

let db: OwnDatabase;
let connector: Connector;
const never = () => new AbortController().signal;
const app = (name: string): EntityName => ({ schema: "app", name });
const digest = (request: Partial<DigestKeysRequest> & { entity: EntityName }) =>
  connector.digestKeys({ keyFields: [], ...request }, never());

/** The documented digest of a set of keys, computed here without the database. */
function expectedDigest(keys: readonly (readonly string[])[]): string {
  let sum = 0n;
  for (const key of keys) {
    const text = key.map((v) => `${Buffer.byteLength(v, "utf8")}:${v}`).join("");
    sum += BigInt(`0x${createHash("md5").update(text, "utf8").digest("hex").slice(0, 15)}`);
  }
  return digestOfSum(sum);
}

const ids = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => [String(from + i)]);

beforeAll(async () => {
  db = await createOwnDatabase(inject("databaseUrl"), SETUP);
  connector = db.connector;
});

afterAll(async () => {
  await db?.drop();
});

describe("digestKeys", () => {
  it("picks a boundary every N rows and digests each range as documented", async () => {
    const r = await digest({ entity: app("a"), splitEvery: 10 });
    expect(r.boundaries).toEqual([["10"], ["20"]]);
    expect(r.ranges.map((x) => x.count)).toEqual([10, 10, 5]);
    expect(r.ranges.map((x) => x.digest)).toEqual([
      expectedDigest(ids(1, 10)),
      expectedDigest(ids(11, 20)),
      expectedDigest(ids(21, 25)),
    ]);
    // An exact multiple leaves an empty last range.
    const exact = await digest({ entity: app("a"), splitEvery: 5, after: ["5"], until: ["15"] });
    expect(exact.boundaries).toEqual([["10"], ["15"]]);
    expect(exact.ranges).toEqual([
      { count: 5, digest: expectedDigest(ids(6, 10)) },
      { count: 5, digest: expectedDigest(ids(11, 15)) },
      { count: 0, digest: EMPTY_DIGEST },
    ]);
  });

  it("gives equal digests for equal key sets in a different physical order, on the other side's boundaries", async () => {
    const source = await digest({ entity: app("a"), splitEvery: 7 });
    const target = await digest({ entity: app("b"), boundaries: source.boundaries });
    expect(target.boundaries).toEqual(source.boundaries);
    expect(target.ranges).toEqual(source.ranges);
    const whole = await digest({ entity: app("b") });
    expect(whole.boundaries).toEqual([]);
    expect(whole.ranges).toEqual([{ count: 25, digest: expectedDigest(ids(1, 25)) }]);
  });

  it("differs in the range of a deleted key only, and again after it is back", async () => {
    const source = await digest({ entity: app("a"), splitEvery: 10 });
    await db.sql`delete from app.b where id = 14`;
    const target = await digest({ entity: app("b"), boundaries: source.boundaries });
    expect(target.ranges[0]).toEqual(source.ranges[0]);
    expect(target.ranges[1]).toEqual({ count: 9, digest: expect.any(String) });
    expect(target.ranges[1]!.digest).not.toBe(source.ranges[1]!.digest);
    expect(target.ranges[2]).toEqual(source.ranges[2]);
    // Same count, other key: the digest still tells them apart.
    await db.sql`insert into app.b values (1000, 'extra')`;
    const swapped = await digest({ entity: app("b"), after: ["10"] });
    const original = await digest({ entity: app("a"), after: ["10"] });
    expect(swapped.ranges[0]!.count).toBe(original.ranges[0]!.count);
    expect(swapped.ranges[0]!.digest).not.toBe(original.ranges[0]!.digest);
    await db.sql`delete from app.b where id = 1000`;
    await db.sql`insert into app.b values (14, 'back')`;
    expect((await digest({ entity: app("b"), boundaries: source.boundaries })).ranges).toEqual(source.ranges);
  });

  it("takes given boundaries with open and closed ends", async () => {
    const open = await digest({ entity: app("a"), boundaries: [["3"], ["8"]] });
    expect(open.ranges.map((x) => x.count)).toEqual([3, 5, 17]);
    const closed = await digest({ entity: app("a"), after: ["3"], until: ["20"], boundaries: [["8"]] });
    expect(closed.ranges).toEqual([
      { count: 5, digest: expectedDigest(ids(4, 8)) },
      { count: 12, digest: expectedDigest(ids(9, 20)) },
    ]);
    // Boundaries out of order make an empty range, never an error.
    const reversed = await digest({ entity: app("a"), boundaries: [["8"], ["3"]] });
    expect(reversed.ranges.map((x) => x.count)).toEqual([8, 0, 22]);
  });

  it("picks at most 1,000 boundaries: the last range holds the rest", async () => {
    const r = await digest({ entity: app("c"), splitEvery: 1 });
    expect(r.boundaries).toHaveLength(MAX_BOUNDARIES);
    expect(r.boundaries.at(-1)).toEqual(["1000"]);
    expect(r.ranges).toHaveLength(MAX_BOUNDARIES + 1);
    expect(r.ranges.at(-1)).toEqual({ count: 500, digest: expectedDigest(ids(1001, 1500)) });
    const again = await digest({ entity: app("c"), boundaries: r.boundaries });
    expect(again.ranges).toEqual(r.ranges);
  });

  it("digests composite keys as tuples: (1, '23') and (12, '3') stay apart", async () => {
    const source = await digest({ entity: app("pair_a"), keyFields: ["k", "s"], splitEvery: 2 });
    expect(source.boundaries).toEqual([
      ["2", "x"],
      ["3", "a b"],
    ]);
    expect(source.ranges.map((x) => x.count)).toEqual([2, 2, 1]);
    expect(source.ranges[0]!.digest).toBe(
      expectedDigest([
        ["1", "23"],
        ["2", "x"],
      ]),
    );
    const target = await digest({
      entity: app("pair_b"),
      keyFields: ["k", "s"],
      boundaries: source.boundaries,
    });
    expect(target.ranges).toEqual(source.ranges);
    await db.sql`delete from app.pair_b where k = 12`;
    await db.sql`insert into app.pair_b values (1, '23x')`;
    const changed = await digest({
      entity: app("pair_b"),
      keyFields: ["k", "s"],
      boundaries: source.boundaries,
    });
    expect(changed.ranges.map((x) => x.count)).toEqual([3, 2, 0]);
    expect(changed.ranges[1]).toEqual(source.ranges[1]);
    expect(changed.ranges[0]!.digest).toBe(
      expectedDigest([
        ["1", "23"],
        ["1", "23x"],
        ["2", "x"],
      ]),
    );
  });

  it("digests text keys of any characters under quoted identifiers, with the cursor's text form", async () => {
    const entity = app('we"ird');
    const r = await digest({ entity, splitEvery: 2 });
    const keys = ["", "back\\slash", "plain", 'quote\'s "dq"', "tab\tin", "é ü 日本"].map((k) => [k]);
    const sorted = (
      await db.sql<{ k: string }[]>`select "the key" as k from app."we""ird" order by "the key"`
    ).map((row) => [row.k]);
    expect(new Set(sorted.map(([k]) => k))).toEqual(new Set(keys.map(([k]) => k)));
    expect(r.boundaries).toEqual([sorted[1], sorted[3], sorted[5]]);
    expect(r.ranges.map((x) => x.digest)).toEqual([
      expectedDigest(sorted.slice(0, 2)),
      expectedDigest(sorted.slice(2, 4)),
      expectedDigest(sorted.slice(4, 6)),
      EMPTY_DIGEST,
    ]);
    const given = await digest({ entity, boundaries: [sorted[2]!], after: sorted[0]! });
    expect(given.ranges).toEqual([
      { count: 2, digest: expectedDigest(sorted.slice(1, 3)) },
      { count: 3, digest: expectedDigest(sorted.slice(3)) },
    ]);
  });

  it("refuses malformed requests before touching the database", async () => {
    const refused = async (request: Partial<DigestKeysRequest>) => {
      const error = await digest({ entity: app("a"), ...request }).catch((e: unknown) => e);
      expect(isDrayError(error)).toBe(true);
      return (error as { code: string }).code;
    };
    expect(await refused({ splitEvery: 10, boundaries: [["5"]] })).toBe("invalid_argument");
    expect(await refused({ splitEvery: 1_000_001 })).toBe("invalid_argument");
    expect(await refused({ splitEvery: 1.5 })).toBe("invalid_argument");
    expect(
      await refused({ boundaries: Array.from({ length: MAX_BOUNDARIES + 1 }, (_, i) => [String(i)]) }),
    ).toBe("invalid_argument");
    expect(await refused({ boundaries: [["1", "2"]] })).toBe("invalid_argument");
    expect(await refused({ after: ["a\0b"] })).toBe("invalid_argument");
    expect(await refused({ keyFields: ["v"] })).toBe("failed_precondition");
    expect(await refused({ entity: app("nope") })).toBe("not_found");
    expect(await refused({ after: ["not a number"] })).toBe("invalid_argument");
  });

  it("answers a DigestKeysTask through the task runner", async () => {
    const task = create(TaskSchema, {
      deadlineUnixMs: BigInt(Date.now() + 60_000),
      kind: {
        case: "digestKeys",
        value: {
          entity: { schema: "app", name: "a" },
          keyFields: ["id"],
          after: { values: ["20"] },
          splitEvery: 3,
        },
      },
    });
    const outcome = await runTask(connector, task, never());
    expect(outcome?.case).toBe("result");
    const result = outcome?.case === "result" ? outcome.value : undefined;
    expect(result?.kind?.case).toBe("digestKeys");
    const value = result?.kind?.case === "digestKeys" ? result.kind.value : undefined;
    expect(value?.boundaries?.map((b) => b.values)).toEqual([["23"]]);
    expect(value?.ranges?.map((r) => [Number(r.count), r.digest])).toEqual([
      [3, expectedDigest(ids(21, 23))],
      [2, expectedDigest(ids(24, 25))],
    ]);
  });
});

describe("digest statements", () => {
  const field = (name: string, castType: string): FieldInfo => ({
    name,
    type: castType,
    castType,
    notNull: true,
    hasDefault: false,
    generated: false,
    identity: "",
  });
  const key = [field("a", "integer"), field('b"', "text")];

  it("bind every value, quote every identifier and never use OFFSET", () => {
    const split = buildSplitQuery('only "s"."t"', key, ["1", "x'; drop"], null, 50);
    expect(split.sql).not.toMatch(/offset|drop/i);
    expect(split.sql).toContain('(dray_t."a", dray_t."b""") > ($1::integer, $2::text)');
    expect(split.params).toEqual(["1", "x'; drop", 50, MAX_BOUNDARIES]);
    const ranges = buildBoundedRangesQuery('only "s"."t"', key, [
      [
        ["1", "a"],
        ["2", "'; drop"],
      ],
    ]);
    expect(ranges.sql).not.toMatch(/offset|drop/i);
    expect(ranges.params).toEqual([
      JSON.stringify([
        [
          ["1", "a"],
          ["2", "'; drop"],
        ],
      ]),
    ]);
  });
});
