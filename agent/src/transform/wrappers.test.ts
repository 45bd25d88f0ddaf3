import fc from "fast-check";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { FAKE_FACTORIES, type FakeFactory, type ValueFn } from "./fakes.js";
import { createPrf } from "./prf.js";
import {
  arrayEachFactory,
  formatPgArray,
  jsonPathFactory,
  type PgArray,
  parseJsonPath,
  parsePgArray,
  parseTemplate,
  templateFactory,
} from "./wrappers.js";

const prf = createPrf(new Uint8Array(32).fill(9));
const upper: ValueFn = (v) => v.toUpperCase();
const identity: ValueFn = (v) => v;

/** A resolve that knows a few test transformers and the fakes. */
function resolve(name: string, options: unknown): ValueFn {
  if (name === "upper") return upper;
  if (name === "identity") return identity;
  if (name === "null") return () => null;
  if (name === "double") return (v) => String(Number(v) * 2);
  if (name === "suffix") return (v) => `${v}-x`;
  const factory = FAKE_FACTORIES[name] as FakeFactory | undefined;
  if (factory === undefined) throw new Error(`no transformer ${name}`);
  return factory((options ?? {}) as Record<string, unknown>, prf, "text", resolve);
}

function jsonPath(path: string, transformer: string): ValueFn {
  return jsonPathFactory({ path, transformer: { name: transformer } }, prf, "jsonb", resolve);
}

function arrayEach(transformer: string): ValueFn {
  return arrayEachFactory({ transformer: { name: transformer } }, prf, "text[]", resolve);
}

const sql = postgres(process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres", {
  max: 1,
  onnotice: () => {},
});
afterAll(() => sql.end());

/** Text without NUL, which Postgres text cannot hold. */
const pgText = fc.string({ unit: "grapheme" }).filter((s) => !s.includes("\0"));
const oddText = fc.oneof(
  pgText,
  fc.constantFrom(
    "",
    " ",
    "NULL",
    "null",
    '"',
    "\\",
    "{",
    "}",
    ",",
    "a b",
    " lead",
    "trail ",
    "\t",
    "\n",
    "é,ü",
    "{a,b}",
  ),
);

describe("json_path", () => {
  it("parses $.a.b, $.a[*].b, $.a[0] and quoted names, and rejects bad paths naming the character", () => {
    expect(parseJsonPath("$")).toEqual([]);
    expect(parseJsonPath("$.a.b")).toEqual([{ key: "a" }, { key: "b" }]);
    expect(parseJsonPath("$.a[*].b")).toEqual([{ key: "a" }, { all: true }, { key: "b" }]);
    expect(parseJsonPath("$.a[0]")).toEqual([{ key: "a" }, { index: 0 }]);
    expect(parseJsonPath("$['a b'][12]")).toEqual([{ key: "a b" }, { index: 12 }]);
    expect(() => parseJsonPath("a.b")).toThrow(/must start with \$/);
    expect(() => parseJsonPath("$.")).toThrow(/character 2/);
    expect(() => parseJsonPath("$.a[x]")).toThrow(/expected \[\*\]/);
    expect(() => parseJsonPath("$.a[*")).toThrow(/expected \]/);
    expect(() => parseJsonPath("$['a")).toThrow(/unterminated/);
    expect(() =>
      jsonPathFactory({ path: "$..a", transformer: { name: "upper" } }, prf, "json", resolve),
    ).toThrow(expect.objectContaining({ code: "invalid_argument" }));
  });

  it("transforms string and number leaves at the path and leaves everything else alone", () => {
    const doc = JSON.stringify({
      contact: { email: "ada@lovelace.org", name: "Ada" },
      items: [{ name: "x", qty: 2 }, { name: "y", qty: 3 }, { qty: 1 }, "loose"],
      flag: true,
    });
    expect(JSON.parse(jsonPath("$.contact.email", "upper")(doc)!)).toEqual({
      contact: { email: "ADA@LOVELACE.ORG", name: "Ada" },
      items: [{ name: "x", qty: 2 }, { name: "y", qty: 3 }, { qty: 1 }, "loose"],
      flag: true,
    });
    const items = JSON.parse(jsonPath("$.items[*].name", "upper")(doc)!).items;
    expect(items).toEqual([{ name: "X", qty: 2 }, { name: "Y", qty: 3 }, { qty: 1 }, "loose"]);
    // A number stays a number when the result is one, becomes a string otherwise.
    expect(JSON.parse(jsonPath("$.items[0].qty", "double")(doc)!).items[0].qty).toBe(4);
    expect(JSON.parse(jsonPath("$.items[1].qty", "suffix")(doc)!).items[1].qty).toBe("3-x");
    expect(JSON.parse(jsonPath("$.contact.name", "null")(doc)!).contact.name).toBeNull();
    // Missing paths, objects and booleans at the path: unchanged.
    expect(JSON.parse(jsonPath("$.nope.deeper", "upper")(doc)!)).toEqual(JSON.parse(doc));
    expect(JSON.parse(jsonPath("$.contact", "upper")(doc)!)).toEqual(JSON.parse(doc));
    expect(JSON.parse(jsonPath("$.flag", "upper")(doc)!)).toEqual(JSON.parse(doc));
    expect(JSON.parse(jsonPath("$.items[9]", "upper")(doc)!)).toEqual(JSON.parse(doc));
    expect(jsonPath("$", "upper")('"top"')).toBe('"TOP"');
  });

  it("applies a real fake deterministically (the catalogue's email example)", () => {
    const email = jsonPathFactory({ path: "$.email", transformer: { name: "email" } }, prf, "jsonb", resolve);
    const out = JSON.parse(email('{"email":"ada@lovelace.org"}')!).email as string;
    expect(out.endsWith("@example.com")).toBe(true);
    expect(out).toBe(resolve("email", {})("ada@lovelace.org"));
  });

  it("round-trips any JSON document with odd keys and strings under an identity transformer", () => {
    fc.assert(
      fc.property(fc.jsonValue({ noUnicodeString: false }), fc.string(), (value, key) => {
        const doc = JSON.stringify({ [key]: value, arr: [value] });
        const all = jsonPath("$.arr[*]", "identity")(doc)!;
        expect(JSON.parse(all)).toEqual(JSON.parse(doc));
        const byKey = jsonPathFactory(
          { path: `$['${key.replaceAll("'", "")}']`, transformer: { name: "identity" } },
          prf,
          "json",
          resolve,
        );
        if (!key.includes("'")) expect(JSON.parse(byKey(doc)!)).toEqual(JSON.parse(doc));
      }),
      { numRuns: 300 },
    );
  });

  it("rejects a value that is not JSON with invalid_argument and no value in the message", () => {
    const fn = jsonPath("$.a", "upper");
    let error: unknown;
    try {
      fn("{not json: secret-canary}");
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: "invalid_argument" });
    expect(String((error as Error).message)).not.toContain("secret-canary");
  });

  it("writes text Postgres accepts as jsonb", async () => {
    const fn = jsonPath("$.items[*].name", "upper");
    const doc = '{"items":[{"name":"a\\"b\\\\c\\u0001"},{"name":"é ü"}]}';
    const out = fn(doc)!;
    // ::text first: postgres.js would send a string bound as jsonb as a JSON string scalar.
    const [row] = await sql`select ${out}::text::jsonb -> 'items' -> 0 ->> 'name' as name`;
    expect(row!.name).toBe('A"B\\C\u0001');
  });
});

describe("array_each", () => {
  it("parses Postgres array text with quoting, escapes, NULL and nesting", () => {
    expect(parsePgArray('{a,b,"c d",NULL}').items).toEqual(["a", "b", "c d", null]);
    expect(parsePgArray('{"NULL",\\NULL,null}').items).toEqual(["NULL", "NULL", null]);
    expect(parsePgArray('{"a\\"b","c\\\\d",e\\,f}').items).toEqual(['a"b', "c\\d", "e,f"]);
    expect(parsePgArray("{{1,2},{3,4}}").items).toEqual([
      ["1", "2"],
      ["3", "4"],
    ]);
    expect(parsePgArray("{}").items).toEqual([]);
    expect(parsePgArray("{ a b , c }").items).toEqual(["a b", "c"]);
    expect(parsePgArray("[0:1]={x,y}")).toEqual({ prefix: "[0:1]=", items: ["x", "y"] });
    for (const bad of ["", "a", "{a", '{"a}', "{a}b", "{a,,b}", '{a"b}'])
      expect(() => parsePgArray(bad), bad).toThrow(/not a Postgres array/);
  });

  it("transforms each non-NULL element and quotes where needed", () => {
    expect(arrayEach("upper")('{a,b,"c d",NULL}')).toBe('{A,B,"C D",NULL}');
    expect(arrayEach("null")("{a,b}")).toBe("{NULL,NULL}");
    expect(arrayEach("suffix")("{{1,2},{3,4}}")).toBe("{{1-x,2-x},{3-x,4-x}}");
    const city = arrayEach("city");
    expect(city("{London,Paris}")).toBe(city("{London,Paris}"));
    expect(parsePgArray(city("{London,NULL,London}")!).items).toEqual([
      resolve("city", {})("London"),
      null,
      resolve("city", {})("London"),
    ]);
  });

  it("round-trips arrays of odd strings through format → parse", () => {
    fc.assert(
      fc.property(fc.array(fc.option(oddText, { nil: null })), (items) => {
        const text = formatPgArray(items);
        expect(parsePgArray(text).items).toEqual(items);
        expect(arrayEach("identity")(text)).toBe(text);
      }),
      { numRuns: 2000 },
    );
  });

  it("agrees with Postgres both ways: Postgres reads our text, and we read Postgres's text", async () => {
    const samples = fc.sample(fc.array(fc.option(oddText, { nil: null }), { maxLength: 6 }), 150);
    samples.push([], ["NULL", null, "", " ", '"', "\\", "{}", "a,b"]);
    // Elements cross as JSON (postgres.js's own array parser mis-reads some NULLs).
    for (const items of samples) {
      const ours = formatPgArray(items);
      const [parsed] = await sql`
        select coalesce(json_agg(e order by n), '[]')::text as a
        from unnest(${ours}::text::text[]) with ordinality as u(e, n)`;
      expect(JSON.parse(parsed!.a as string)).toEqual(items);
      const [printed] = await sql`
        select coalesce(array_agg(e order by n), '{}')::text as t
        from json_array_elements_text(${JSON.stringify(items)}::text::json) with ordinality as j(e, n)`;
      const theirs = printed!.t as string;
      expect(parsePgArray(theirs).items).toEqual(items);
      expect(formatPgArray(parsePgArray(theirs).items)).toBe(theirs);
    }
  });

  it("round-trips multi-dimensional arrays printed by Postgres", async () => {
    const [row] = await sql`select array[array['a b','NULL'],array[null,'{"x"}']]::text as t`;
    const text = row!.t as string;
    const parsed = parsePgArray(text).items as PgArray;
    expect(parsed).toEqual([
      ["a b", "NULL"],
      [null, '{"x"}'],
    ]);
    expect(formatPgArray(parsed)).toBe(text);
  });
});

describe("template", () => {
  it("fills placeholders from the row, with {{ }} for braces and NULL as empty", () => {
    const fill = templateFactory({ template: "{first_name}.{last_name}@example.com {{id}}" }, [
      "first_name",
      "last_name",
      "id",
    ]);
    const row: Record<string, string | null> = { first_name: "maren", last_name: "okafor" };
    expect(fill((f) => row[f] ?? null)).toBe("maren.okafor@example.com {id}");
    expect(fill((f) => (f === "first_name" ? "x" : null))).toBe("x.@example.com {id}");
    expect(parseTemplate("plain", [])).toEqual([{ text: "plain" }]);
  });

  it("rejects unknown fields, unclosed and empty placeholders, naming them", () => {
    expect(() => templateFactory({ template: "{nope}" }, ["a"])).toThrow(
      /\{nope\} names no field.*fields: a/,
    );
    expect(() => templateFactory({ template: "x {a" }, ["a"])).toThrow(/not closed/);
    expect(() => templateFactory({ template: "{}" }, ["a"])).toThrow(/empty placeholder/);
    expect(() => templateFactory({ template: "a}" }, ["a"])).toThrow(/lone \}/);
    expect(() => templateFactory({}, ["a"])).toThrow(/option template is required/);
  });
});
