import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { gzipSync } from "node:zlib";
import { DrayError } from "@dray/common";
import { describe, expect, it } from "vitest";
import { type FileSettings, validateFileSettings } from "./file-settings.js";
import { type FileBatch, type FileBatchOptions, fileBatches } from "./parse-file.js";

/** The bytes in chunks of `size` (small by default, so values and lines straddle chunks). */
async function* chunksOf(data: string | Buffer, size = 7): AsyncGenerator<Uint8Array> {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  for (let at = 0; at < bytes.length; at += size) yield new Uint8Array(bytes.subarray(at, at + size));
}

function options(
  settings: Partial<FileSettings> & Pick<FileSettings, "format">,
  extra: Partial<FileBatchOptions> = {},
) {
  return {
    settings: validateFileSettings(settings),
    compressed: false,
    targetFields: ["id", "name", "note"],
    maxRows: 1000,
    maxBytes: 1 << 20,
    ...extra,
  } satisfies FileBatchOptions;
}

async function collect(data: string | Buffer, opts: FileBatchOptions, chunk = 7): Promise<FileBatch[]> {
  const batches: FileBatch[] = [];
  for await (const batch of fileBatches(chunksOf(data, chunk), opts)) batches.push(batch);
  return batches;
}

async function failure(data: string | Buffer, opts: FileBatchOptions): Promise<DrayError> {
  try {
    await collect(data, opts);
  } catch (error) {
    expect(error).toBeInstanceOf(DrayError);
    expect((error as DrayError).code).toBe("invalid_argument");
    return error as DrayError;
  }
  throw new Error("expected fileBatches to fail");
}

/** Decodes COPY text (written independently of the code under test). */
function decodeCopy(data: Uint8Array): (string | null)[][] {
  const text = Buffer.from(data).toString("utf8");
  if (text === "") return [];
  expect(text.endsWith("\n")).toBe(true);
  const letters: Record<string, string> = {
    n: "\n",
    t: "\t",
    r: "\r",
    b: "\b",
    f: "\f",
    v: "\v",
    "\\": "\\",
  };
  return text
    .slice(0, -1)
    .split("\n")
    .map((line) =>
      line.split("\t").map((field) => {
        if (field === "\\N") return null;
        let out = "";
        for (let i = 0; i < field.length; i++) {
          if (field[i] === "\\") out += letters[field[++i]!] ?? field[i];
          else out += field[i];
        }
        return out;
      }),
    );
}

const rowsOf = (batches: FileBatch[]) => batches.flatMap((b) => decodeCopy(b.data));
const rejectsOf = (batches: FileBatch[]) => batches.flatMap((b) => b.rejects);
const concat = (batches: FileBatch[]) => Buffer.concat(batches.map((b) => b.data)).toString("utf8");

describe("fileBatches: CSV", () => {
  it("reads the header, quoting, embedded newlines and delimiters, NULL vs empty string", async () => {
    const csv =
      'id,name,note\n1,"Smith, John","line1\nline2"\n2,plain,"say ""hi"""\n3,,""\n4,tab\there,back\\slash\n';
    const batches = await collect(csv, options({ format: "csv" }));
    expect(batches).toHaveLength(1);
    const [batch] = batches;
    expect(batch).toMatchObject({
      fields: ["id", "name", "note"],
      rowCount: 4,
      records: 4,
      firstLine: 2,
      lastLine: 6,
    });
    expect(batch!.rejects).toEqual([]);
    expect(rowsOf(batches)).toEqual([
      ["1", "Smith, John", "line1\nline2"],
      ["2", "plain", 'say "hi"'],
      ["3", null, ""],
      ["4", "tab\there", "back\\slash"],
    ]);
    expect(concat(batches)).toContain("3\t\\N\t\n");
    expect(concat(batches)).toContain("1\tSmith, John\tline1\\nline2\n");
  });

  it("reads a custom delimiter and quote, a BOM and multi-byte characters cut between chunks", async () => {
    const csv = "\uFEFFid;name\n'x;y';'it''s'\n2;héllo wörld ✓\n";
    const batches = await collect(csv, options({ format: "csv", delimiter: ";", quote: "'" }), 3);
    expect(batches[0]!.fields).toEqual(["id", "name"]);
    expect(rowsOf(batches)).toEqual([
      ["x;y", "it's"],
      ["2", "héllo wörld ✓"],
    ]);
  });

  it("rejects rows with the wrong column count by line, LF or CRLF, and goes on", async () => {
    for (const eol of ["\n", "\r\n"]) {
      const csv = ["id,name", '1,"x', 'y"', "", "2", "3,4,secret-value", "6,7", ""].join(eol);
      const batches = await collect(csv, options({ format: "csv" }));
      expect(rowsOf(batches)).toEqual([
        ["1", `x${eol}y`],
        ["6", "7"],
      ]);
      const rejects = rejectsOf(batches);
      expect(rejects.map((r) => r.line)).toEqual([5, 6]);
      expect(rejects[0]!.message).toBe("line 5 has 1 column, the header has 2");
      expect(rejects[1]!.message).not.toContain("secret");
      expect(batches[0]).toMatchObject({ records: 4, rowCount: 2, firstLine: 2, lastLine: 7 });
    }
  });

  it("maps columns through fieldMapping and ignores unmapped ones", async () => {
    const csv = "Ignored,Customer ID,Name\nz,1,Ann\nz,2,\n";
    const opts = options({ format: "csv", fieldMapping: { Name: "name", "Customer ID": "id" } });
    const batches = await collect(csv, opts);
    expect(batches[0]!.fields).toEqual(["id", "name"]);
    expect(rowsOf(batches)).toEqual([
      ["1", "Ann"],
      ["2", null],
    ]);
  });

  it("fails on header problems before any row", async () => {
    const unknown = await failure("id,nom,extra\n1,2,3\n", options({ format: "csv" }));
    expect(unknown.message).toContain('"nom", "extra"');
    expect(unknown.message).toContain('has: "id", "nom", "extra"');
    expect(unknown.details).toMatchObject({ unknownColumns: ["nom", "extra"] });

    const missing = await failure(
      "id,Name\n1,2\n",
      options({ format: "csv", fieldMapping: { "Customer ID": "id", Name: "name" } }),
    );
    expect(missing.message).toContain('"Customer ID"');
    expect(missing.message).toContain('has: "id", "Name"');

    const target = await failure("a\n1\n", options({ format: "csv", fieldMapping: { a: "nope" } }));
    expect(target.message).toContain('"nope"');

    const duplicate = await failure("id,id\n1,2\n", options({ format: "csv" }));
    expect(duplicate.message).toContain("more than once");

    const empty = await failure("", options({ format: "csv" }));
    expect(empty.message).toContain("empty");
  });

  it("fails with the line of an unterminated quote, and on bytes that are not UTF-8", async () => {
    const unterminated = await failure('id,name\n1,2\n\n3,"oops\n4,5\n', options({ format: "csv" }));
    expect(unterminated.message).toContain("line 4");
    expect(unterminated.message).not.toContain("oops");
    expect(unterminated.details).toMatchObject({ line: 4 });

    const latin1 = Buffer.concat([
      Buffer.from("id,name\n1,a\n2,caf"),
      Buffer.from([0xe9]),
      Buffer.from("\n"),
    ]);
    const notUtf8 = await failure(latin1, options({ format: "csv" }));
    expect(notUtf8.message).toContain("line 3");
  });

  it("rejects a value holding NUL", async () => {
    const batches = await collect("id,name\n1,a\u0000b\n2,c\n", options({ format: "csv" }));
    expect(rowsOf(batches)).toEqual([["2", "c"]]);
    expect(rejectsOf(batches)).toEqual([
      { line: 2, message: expect.stringContaining('"name"'), kind: "parse" },
    ]);
  });
});

describe("fileBatches: NDJSON", () => {
  const ndjsonOptions = (extra: Partial<FileSettings> = {}) =>
    options({ format: "ndjson", ...extra }, { targetFields: ["id", "name", "tags", "ok", "amount"] });

  it("writes nested values as JSON, booleans as t/f, numbers as written, missing keys as NULL", async () => {
    const ndjson = [
      '{"id": 12345678901234567890, "name": "a\\tb \\u00e9", "tags": {"x": [1, "y"]}, "ok": true, "amount": 1.50}',
      "",
      '{"id":2,"ok":false,"amount":null,"tags":[]}',
      "   ",
      '{"id":3,"name":"x\\u0000y"}',
    ].join("\n");
    const batches = await collect(ndjson, ndjsonOptions());
    expect(batches[0]!.fields).toEqual(["id", "name", "tags", "ok", "amount"]);
    expect(rowsOf(batches)).toEqual([
      ["12345678901234567890", "a\tb é", '{"x": [1, "y"]}', "t", "1.50"],
      ["2", null, "[]", "f", null],
    ]);
    expect(rejectsOf(batches)).toEqual([{ line: 5, message: expect.stringContaining("NUL"), kind: "parse" }]);
    expect(batches[0]).toMatchObject({ records: 3, firstLine: 1, lastLine: 5 });
  });

  it("rejects invalid JSON, non-objects and unknown keys by line, CRLF or not", async () => {
    const lines = ['{"id":1}', "{oops secret", "[1,2]", '{"id":4,"colour":"red"}', '"text"', '{"id":6}'];
    for (const eol of ["\n", "\r\n"]) {
      const batches = await collect(lines.join(eol) + eol, ndjsonOptions());
      expect(rowsOf(batches).map((r) => r[0])).toEqual(["1", "6"]);
      const rejects = rejectsOf(batches);
      expect(rejects.map((r) => r.line)).toEqual([2, 3, 4, 5]);
      expect(rejects[0]!.message).toBe("line 2 is not valid JSON");
      expect(rejects[1]!.message).toContain("array");
      expect(rejects[2]!.message).toContain('"colour"');
      for (const r of rejects) expect(r.message).not.toContain("secret");
    }
  });

  it("maps keys through fieldMapping and ignores the others", async () => {
    const batches = await collect(
      '{"ID":1,"Name":"n","colour":"red"}\n{"Name":"m"}\n',
      ndjsonOptions({ fieldMapping: { Name: "name", ID: "id" } }),
    );
    expect(batches[0]!.fields).toEqual(["name", "id"]);
    expect(rowsOf(batches)).toEqual([
      ["n", "1"],
      ["m", null],
    ]);
  });
});

describe("fileBatches: gzip", () => {
  const csv = 'id,name,note\n1,"a\nb",x\n2,,""\n';
  const ndjson = '{"id":1,"name":"a"}\n\n{"id":2}\n';

  it("gunzips CSV and NDJSON as they stream", async () => {
    for (const [format, text] of [
      ["csv", csv],
      ["ndjson", ndjson],
    ] as const) {
      const plain = await collect(text, options({ format }));
      const zipped = await collect(gzipSync(text), options({ format }, { compressed: true }), 5);
      expect(zipped).toEqual(plain);
      expect(rowsOf(zipped).length).toBe(2);
    }
  });

  it("fails on corrupt, truncated or non-gzip input", async () => {
    const zipped = gzipSync(csv.repeat(50));
    const corrupt = Buffer.from(zipped);
    for (let i = 12; i < corrupt.length - 8; i += 3) corrupt[i] = corrupt[i]! ^ 0x5a;
    const truncated = zipped.subarray(0, zipped.length - 10);
    for (const bytes of [corrupt, truncated, Buffer.from(csv)]) {
      const error = await failure(bytes, options({ format: "csv" }, { compressed: true }));
      expect(error.message).toMatch(/^the file is not valid gzip: /);
    }
  });
});

describe("fileBatches: batching and resume", () => {
  /** 100 records: every 9th has the wrong column count, values of varying length. */
  const csv = [
    "id,name,note",
    ...Array.from({ length: 100 }, (_, i) =>
      i % 9 === 4 ? `${i}` : `${i},"n${i}\n${"x".repeat(i % 13)}",${"y".repeat((i * 7) % 31)}`,
    ),
  ].join("\n");
  const ndjson = Array.from({ length: 100 }, (_, i) =>
    i % 9 === 4 ? "{bad" : JSON.stringify({ id: i, name: "n".repeat((i * 5) % 23), note: { i } }),
  ).join("\n");

  it("cuts by maxRows", async () => {
    const batches = await collect(csv, options({ format: "csv" }, { maxRows: 30 }));
    expect(batches.map((b) => b.records)).toEqual([30, 30, 30, 10]);
    expect(batches.map((b) => b.rowCount).reduce((a, b) => a + b)).toBe(89);
    for (let i = 1; i < batches.length; i++) expect(batches[i]!.firstLine).toBe(batches[i - 1]!.lastLine + 1);
  });

  it("cuts by maxBytes, a batch going over only with a single row", async () => {
    const full = await collect(csv, options({ format: "csv" }));
    const maxBytes = 120;
    const batches = await collect(csv, options({ format: "csv" }, { maxBytes }));
    expect(batches.length).toBeGreaterThan(5);
    expect(concat(batches)).toBe(concat(full));
    for (const batch of batches) {
      if (batch.data.length > maxBytes) expect(batch.rowCount).toBe(1);
    }
    // A row larger than maxBytes travels alone.
    const big = await collect(
      `id,name\n1,a\n2,${"z".repeat(500)}\n3,b\n`,
      options({ format: "csv" }, { maxBytes: 100, targetFields: ["id", "name"] }),
    );
    expect(big.map((b) => b.rowCount)).toEqual([1, 1, 1]);
    expect(big[1]!.data.length).toBeGreaterThan(100);
  });

  it("resumes after skipRecords with exactly the remaining rows", async () => {
    for (const [format, text] of [
      ["csv", csv],
      ["ndjson", ndjson],
    ] as const) {
      const opts = options({ format }, { maxRows: 7, maxBytes: 300 });
      const full = await collect(text, opts);
      expect(full.length).toBeGreaterThan(4);
      let skipRecords = 0;
      for (let k = 0; k < full.length; k++) {
        const resumed = await collect(text, { ...opts, skipRecords });
        const tail = full.slice(k);
        expect(concat(resumed)).toBe(concat(tail));
        expect(rejectsOf(resumed)).toEqual(rejectsOf(tail));
        expect(resumed[0]!.firstLine).toBe(tail[0]!.firstLine);
        expect(resumed.reduce((n, b) => n + b.records, 0)).toBe(tail.reduce((n, b) => n + b.records, 0));
        skipRecords += full[k]!.records;
      }
      expect(await collect(text, { ...opts, skipRecords })).toEqual([]);
    }
  });
});

describe("fileBatches: stopping early", () => {
  it("closes the input when the consumer stops, gzip or not", async () => {
    for (const compressed of [false, true]) {
      let closed = false;
      let pulled = 0;
      async function* endless(): AsyncGenerator<Uint8Array> {
        try {
          const chunk = Buffer.from("1,a,b\n".repeat(1000));
          const header = Buffer.from("id,name,note\n");
          if (!compressed) {
            yield header;
            for (;;) {
              pulled++;
              yield chunk;
            }
          }
          yield gzipSync(header).subarray(0, 10); // a gzip header, then deflate data never ending cleanly
          const body = gzipSync(Buffer.concat([header, ...Array.from({ length: 200 }, () => chunk)]));
          for (;;) {
            pulled++;
            yield body.subarray(10, body.length - 8);
          }
        } finally {
          closed = true;
        }
      }
      for await (const batch of fileBatches(
        endless(),
        options({ format: "csv" }, { compressed, maxRows: 100 }),
      )) {
        expect(batch.rowCount).toBe(100);
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(closed).toBe(true);
      expect(pulled).toBeLessThan(50);
    }
  });
});

describe("fileBatches: bounded memory", () => {
  it("streams 300k rows (~60 MB) with heap growth well under the input size", {
    timeout: 180_000,
  }, async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const rows = 300_000;
    const filler = "f".repeat(170);
    let produced = 0;
    async function* generated(): AsyncGenerator<Uint8Array> {
      yield Buffer.from("id,name,note\n");
      for (let i = 0; i < rows; i += 1000) {
        let chunk = "";
        for (let j = i; j < i + 1000; j++) chunk += `${j},"name ${j}",${filler}\n`;
        produced += chunk.length;
        yield Buffer.from(chunk);
      }
    }
    gc();
    const before = process.memoryUsage().heapUsed;
    let peak = 0;
    let count = 0;
    let batchNo = 0;
    for await (const batch of fileBatches(
      generated(),
      options({ format: "csv" }, { maxRows: 20_000, maxBytes: 2 << 20 }),
    )) {
      count += batch.rowCount;
      if (batchNo++ % 5 === 0) {
        gc();
        peak = Math.max(peak, process.memoryUsage().heapUsed - before);
      }
    }
    expect(count).toBe(rows);
    expect(produced).toBeGreaterThan(55_000_000);
    expect(peak).toBeLessThan(64 * 1024 * 1024);
  });
});

describe("fileBatches: rowCheck", () => {
  /** Fails a row whose name is NULL or whose note is "bad"; records every row it sees. */
  function recordingCheck() {
    const seen: (string | null)[][] = [];
    const rowCheck = (values: readonly (string | null)[]) => {
      seen.push([...values]);
      if (values[1] === null) return "failed data-quality rule not_null on field name";
      if (values[2] === "bad") return "failed data-quality rule one_of on field note";
      return null;
    };
    return { seen, rowCheck };
  }

  it("rejects the rows it fails as quality rejects, by line, and loads the others", async () => {
    const { seen, rowCheck } = recordingCheck();
    const csv = 'id,name,note\n1,ann,ok\n2,,ok\n3,"multi\nline",bad\n4,dan,"tab\there"\n5,x\n';
    const batches = await collect(csv, options({ format: "csv" }, { rowCheck }));
    expect(rowsOf(batches)).toEqual([
      ["1", "ann", "ok"],
      ["4", "dan", "tab\there"],
    ]);
    expect(rejectsOf(batches)).toEqual([
      { line: 3, message: "failed data-quality rule not_null on field name", kind: "quality" },
      { line: 4, message: "failed data-quality rule one_of on field note", kind: "quality" },
      { line: 7, message: "line 7 has 2 columns, the header has 3", kind: "parse" },
    ]);
    // The check sees unescaped values; a row that cannot be read is not checked.
    expect(seen).toEqual([
      ["1", "ann", "ok"],
      ["2", null, "ok"],
      ["3", "multi\nline", "bad"],
      ["4", "dan", "tab\there"],
    ]);
    expect(batches[0]).toMatchObject({ rowCount: 2, records: 5, firstLine: 2, lastLine: 7 });
  });

  it("gives values in target-field order, null for a target field the file does not carry", async () => {
    const { seen, rowCheck } = recordingCheck();
    const csvBatches = await collect("note,id\nn1,1\n", options({ format: "csv" }, { rowCheck }));
    expect(csvBatches[0]!.fields).toEqual(["note", "id"]);
    expect(seen).toEqual([["1", null, "n1"]]);
    expect(rejectsOf(csvBatches)).toEqual([
      { line: 2, message: "failed data-quality rule not_null on field name", kind: "quality" },
    ]);

    seen.length = 0;
    const mapped = await collect(
      '{"Note":"bad","Name":"x","ID":7,"other":1}\n{"Name":"y","ID":8}\n',
      options({ format: "ndjson", fieldMapping: { Note: "note", Name: "name", ID: "id" } }, { rowCheck }),
    );
    expect(seen).toEqual([
      ["7", "x", "bad"],
      ["8", "y", null],
    ]);
    expect(rowsOf(mapped)).toEqual([[null, "y", "8"]]);
    expect(rejectsOf(mapped)).toEqual([
      { line: 1, message: "failed data-quality rule one_of on field note", kind: "quality" },
    ]);
  });

  it("checks NDJSON rows after parsing them, never a line that is not an object", async () => {
    const { seen, rowCheck } = recordingCheck();
    const batches = await collect(
      '{"id":1,"name":"a"}\nnot json\n{"id":3}\n{"id":4,"name":"d","note":"bad"}\n',
      options({ format: "ndjson" }, { rowCheck }),
    );
    expect(rowsOf(batches)).toEqual([["1", "a", null]]);
    expect(rejectsOf(batches).map((r) => [r.line, r.kind])).toEqual([
      [2, "parse"],
      [3, "quality"],
      [4, "quality"],
    ]);
    expect(seen.map((v) => v[0])).toEqual(["1", "3", "4"]);
  });

  it("does not check the records skipped on resume, and cuts the same batches with or without rejects", async () => {
    const rows = Array.from({ length: 30 }, (_, i) => `${i + 1},${i % 4 === 0 ? "" : `n${i}`},x`);
    const csv = `id,name,note\n${rows.join("\n")}\n`;
    const { rowCheck } = recordingCheck();
    const opts = options({ format: "csv" }, { maxRows: 7, rowCheck });
    const full = await collect(csv, opts);
    expect(full.map((b) => b.records)).toEqual([7, 7, 7, 7, 2]);
    expect(rejectsOf(full).map((r) => r.line)).toEqual([2, 6, 10, 14, 18, 22, 26, 30]);
    expect(rowsOf(full)).toHaveLength(22);
    const counting = recordingCheck();
    const resumed = await collect(csv, { ...opts, skipRecords: 14, rowCheck: counting.rowCheck });
    expect(counting.seen.map((v) => v[0])).toEqual(Array.from({ length: 16 }, (_, i) => String(i + 15)));
    expect(concat(resumed)).toBe(concat(full.slice(2)));
    expect(rejectsOf(resumed)).toEqual(rejectsOf(full.slice(2)));
  });
});
