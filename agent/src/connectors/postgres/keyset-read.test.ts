import { describe, expect, it } from "vitest";
import type { ReadBatchRequest } from "../../connector.js";
import type { FieldInfo } from "./entity-catalog.js";
import { buildKeysetQuery, encodePage, validateReadRequest } from "./keyset-read.js";

const field = (name: string, castType: string): FieldInfo => ({
  name,
  type: castType,
  castType,
  notNull: true,
  hasDefault: false,
  generated: false,
  identity: "",
});
const a = field("a", "integer");
const b = field("b", "text");
const v = field("v", "timestamp with time zone");
const byName = new Map([a, b, v].map((f) => [f.name, f]));
const resolve = (name: string) => byName.get(name)!;
const request = (extra: Partial<ReadBatchRequest> = {}): ReadBatchRequest => ({
  entity: { schema: "s", name: 't"x' },
  keyFields: ["a"],
  maxRows: 100,
  maxBytes: 1000,
  ...extra,
});

describe("buildKeysetQuery", () => {
  it("starts at the beginning without a cursor and never uses OFFSET", () => {
    const query = buildKeysetQuery(request(), [a, b], [a], resolve);
    expect(query.sql).toBe('select "a", "b" from only "s"."t""x" order by "a" limit $1::int8');
    expect(query.params).toEqual([100]);
    expect(query.sql).not.toMatch(/offset/i);
    expect(query.keyPositions).toEqual([0]);
  });

  it("continues after a single-field cursor cast to the key type", () => {
    const query = buildKeysetQuery(request({ after: ["41"] }), [a, b], [a], resolve);
    expect(query.sql).toBe(
      'select "a", "b" from only "s"."t""x" where "a" > $1::integer order by "a" limit $2::int8',
    );
    expect(query.params).toEqual(["41", 100]);
  });

  it("compares composite keys as a row and combines conditions", () => {
    const query = buildKeysetQuery(
      request({
        keyFields: ["a", "b"],
        after: ["1", "x'y"],
        where: [{ field: "v", operator: "gte", values: ["2024-01-01"] }],
      }),
      [v],
      [a, b],
      resolve,
    );
    expect(query.sql).toBe(
      'select "v", "a", "b" from only "s"."t""x" where ("a", "b") > ($1::integer, $2::text) and "v" >= $3::timestamp with time zone order by "a", "b" limit $4::int8',
    );
    expect(query.params).toEqual(["1", "x'y", "2024-01-01", 100]);
    expect(query.fields).toEqual(["v"]);
    expect(query.keyPositions).toEqual([1, 2]);
  });

  it("refuses a cursor of the wrong length", () => {
    expect(() => buildKeysetQuery(request({ after: ["1", "2"] }), [a], [a], resolve)).toThrow(
      /after has 2 values/,
    );
  });

  it("bounds the page with until, inclusive, after the cursor", () => {
    const query = buildKeysetQuery(request({ after: ["41"], until: ["50"] }), [a, b], [a], resolve);
    expect(query.sql).toBe(
      'select "a", "b" from only "s"."t""x" where "a" > $1::integer and "a" <= $2::integer order by "a" limit $3::int8',
    );
    expect(query.params).toEqual(["41", "50", 100]);
    const only = buildKeysetQuery(request({ until: ["50"] }), [a], [a], resolve);
    expect(only.sql).toBe(
      'select "a" from only "s"."t""x" where "a" <= $1::integer order by "a" limit $2::int8',
    );
  });

  it("bounds composite keys as a row", () => {
    const query = buildKeysetQuery(
      request({ keyFields: ["a", "b"], until: ["1", "x'y"] }),
      [a, b],
      [a, b],
      resolve,
    );
    expect(query.sql).toBe(
      'select "a", "b" from only "s"."t""x" where ("a", "b") <= ($1::integer, $2::text) order by "a", "b" limit $3::int8',
    );
    expect(query.params).toEqual(["1", "x'y", 100]);
    expect(() =>
      buildKeysetQuery(request({ keyFields: ["a", "b"], until: ["1"] }), [a, b], [a, b], resolve),
    ).toThrow(
      expect.objectContaining({
        code: "invalid_argument",
        message: expect.stringMatching(/until has 1 values/),
      }),
    );
  });

  it("counts the trailing key columns", () => {
    expect(buildKeysetQuery(request(), [a, b], [a], resolve).columnCount).toBe(2);
    expect(buildKeysetQuery(request(), [b], [a], resolve).columnCount).toBe(2);
    expect(buildKeysetQuery(request(), [a], [a], resolve, new Set(["a"])).columnCount).toBe(2);
  });

  it("reads a partitioned table by its bare name when told (its rows live in its partitions)", () => {
    const query = buildKeysetQuery(request(), [a], [a], resolve, new Set(), undefined, '"s"."p"');
    expect(query.sql).toBe('select "a" from "s"."p" order by "a" limit $1::int8');
  });

  it("writes placeholders with the given renderer", () => {
    const query = buildKeysetQuery(request({ after: ["41"] }), [a], [a], resolve, new Set(), (n) => `:p${n}`);
    expect(query.sql).toBe(
      'select "a" from only "s"."t""x" where "a" > :p1::integer order by "a" limit :p2::int8',
    );
    expect(query.params).toEqual(["41", 100]);
  });
});

describe("validateReadRequest", () => {
  it("refuses bad limits and cursors", () => {
    for (const bad of [
      { maxRows: 0 },
      { maxRows: 1.5 },
      { maxBytes: 0 },
      { after: ["a\0"] },
      { until: ["a\0"] },
      { until: "a" },
      { until: [1] },
      { fields: ["a", "a"] },
      { keyFields: ["a", "a"] },
      { keyFields: "a" },
      { entity: { schema: "", name: "t" } },
    ])
      expect(() => validateReadRequest(request(bad as Partial<ReadBatchRequest>))).toThrow(
        expect.objectContaining({ code: "invalid_argument" }),
      );
    expect(() => validateReadRequest(request({ after: null, until: null }))).not.toThrow();
    expect(() => validateReadRequest(request({ after: ["1"], until: ["2"] }))).not.toThrow();
    // No key fields: the row key, or the physical position of a table without one.
    expect(() => validateReadRequest(request({ keyFields: [] }))).not.toThrow();
  });
});

describe("encodePage", () => {
  const row = (id: string, body: string | null) => [
    Buffer.from(id),
    body === null ? null : Buffer.from(body),
  ];

  it("encodes rows as COPY text and reports the last key", () => {
    const page = encodePage([row("1", "a\tb"), row("2", null)], 2, [0], 1000);
    expect(page.data.toString()).toBe("1\ta\\tb\n2\t\\N\n");
    expect(page).toMatchObject({ rowCount: 2, last: ["2"], trimmed: false });
  });

  it("stops before the row that would exceed the budget, but always keeps one", () => {
    const rows = [row("1", "x".repeat(10)), row("2", "x".repeat(10)), row("3", "x".repeat(10))];
    const page = encodePage(rows, 2, [0], 30);
    expect(page.data.toString()).toBe(`1\t${"x".repeat(10)}\n2\t${"x".repeat(10)}\n`);
    expect(page).toMatchObject({ rowCount: 2, last: ["2"], trimmed: true });
    const tiny = encodePage(rows, 2, [0], 1);
    expect(tiny).toMatchObject({ rowCount: 1, last: ["1"], trimmed: true });
  });

  it("leaves extra key columns out of the data", () => {
    const page = encodePage([[Buffer.from("body"), Buffer.from("7")]], 1, [1], 100);
    expect(page.data.toString()).toBe("body\n");
    expect(page.last).toEqual(["7"]);
  });

  it("returns nothing for no rows", () => {
    expect(encodePage([], 1, [0], 10)).toMatchObject({ rowCount: 0, last: null, trimmed: false });
  });
});
