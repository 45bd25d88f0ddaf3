import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { isDrayError } from "@dray/common";
import { describe, expect, it } from "vitest";
import {
  archiveFiles,
  entryLabel,
  gunzipPieces,
  isTarHeader,
  isZip,
  parsePaxRecords,
  readTar,
  sniffUpload,
  tarNumber,
  ZIP_REFUSAL,
} from "./archive-entries.js";
import { isUploadTooLarge, limitBytes } from "./file-staging.js";

/** One tar header block, as GNU tar and bsdtar write them. */
function header(
  name: string,
  size: number,
  options: { type?: string; prefix?: string; gnu?: boolean; linkname?: string } = {},
): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, "utf8");
  h.write("0000644\0", 100, "latin1");
  h.write("0001750\0", 108, "latin1");
  h.write("0001750\0", 116, "latin1");
  h.write(`${size.toString(8).padStart(11, "0")}\0`, 124, "latin1");
  h.write("14771734401\0", 136, "latin1");
  h.write(options.type ?? "0", 156, "latin1");
  if (options.linkname) h.write(options.linkname, 157, 100, "utf8");
  if (options.gnu) h.write("ustar  \0", 257, "latin1");
  else h.write("ustar\u000000", 257, "latin1");
  if (options.prefix) h.write(options.prefix, 345, 155, "utf8");
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  return h;
}

/** A header, its data and the padding to the next block. */
function entry(name: string, data: string | Buffer, options: Parameters<typeof header>[2] = {}): Buffer {
  const bytes = typeof data === "string" ? Buffer.from(data) : data;
  const pad = (512 - (bytes.length % 512)) % 512;
  return Buffer.concat([header(name, bytes.length, options), bytes, Buffer.alloc(pad)]);
}

/** A pax extended header entry with these records. */
function paxEntry(records: Record<string, string>): Buffer {
  let text = "";
  for (const [key, value] of Object.entries(records)) {
    const body = ` ${key}=${value}\n`;
    let length = Buffer.byteLength(body) + 1;
    while (Buffer.byteLength(`${length}${body}`) !== length) length++;
    text += `${length}${body}`;
  }
  return entry("PaxHeader/x", text, { type: "x" });
}

/** A tar of these entries with its end-of-archive blocks. */
function tarOf(...entries: Buffer[]): Buffer {
  return Buffer.concat([...entries, Buffer.alloc(1024)]);
}

/** The bytes cut into pieces of `size`. */
async function* pieces(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const piece of source) out.push(Buffer.from(piece));
  return Buffer.concat(out);
}

/** The files archiveFiles yields, with their text. */
async function filesOf(tar: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, maxFiles?: number) {
  const out: { label: string; size: number; text: string }[] = [];
  for await (const file of archiveFiles(tar, { maxFiles })) {
    out.push({ label: file.label, size: file.size, text: (await collect(file.body)).toString("utf8") });
  }
  return out;
}

/** The error a promise rejects with. */
async function failure(promise: Promise<unknown>): Promise<any> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a failure");
}

const CSV_A = "id,name\n1,a\n2,b\n";
const CSV_B = "id,name\n3,c\n";
const SAMPLE = tarOf(
  entry("data/", "", { type: "5" }),
  entry("data/a.csv", CSV_A),
  entry("data/link.csv", "", { type: "2", linkname: "a.csv" }),
  entry("data/hard.csv", "", { type: "1", linkname: "data/a.csv" }),
  entry("data/._a.csv", "apple double"),
  entry("__MACOSX/data/b.csv", "resource fork"),
  entry(".DS_Store", "finder"),
  entry("data/empty.csv", ""),
  entry("./data/b.csv", CSV_B),
);

describe("sniffUpload", () => {
  const cases: [string, Uint8Array, string, boolean][] = [
    ["a CSV", Buffer.from(CSV_A.repeat(100)), "file", false],
    ["a short CSV", Buffer.from(CSV_A), "file", false],
    ["a gzip CSV", gzipSync(CSV_A.repeat(100)), "file", false],
    ["a tar", SAMPLE, "tar", false],
    ["a .tar.gz", gzipSync(SAMPLE), "tar", true],
    ["a zip", Buffer.concat([Buffer.from("PK\u0003\u0004"), Buffer.alloc(600)]), "zip", false],
  ];
  for (const [what, bytes, kind] of cases) {
    for (const size of [1, 7, 300, 1 << 20]) {
      it(`recognises ${what} (pieces of ${size}) and gives back every byte`, async () => {
        const sniffed = await sniffUpload(pieces(bytes, size));
        expect(sniffed.kind).toBe(kind);
        expect(sniffed.gzip).toBe(bytes[0] === 0x1f && bytes[1] === 0x8b);
        expect((await collect(sniffed.bytes)).equals(Buffer.from(bytes))).toBe(true);
      });
    }
  }

  it("does not take a CSV with `ustar` at offset 257 for a tar (checksum)", async () => {
    const text = Buffer.from(`${"x".repeat(257)}ustar ${"y".repeat(400)}\n`);
    expect(text.subarray(257, 262).toString()).toBe("ustar");
    expect(isTarHeader(text)).toBe(false);
    expect((await sniffUpload([text])).kind).toBe("file");
  });

  it("treats a gzip stream that does not decompress as a single file (the loader reports it)", async () => {
    const bytes = Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const sniffed = await sniffUpload([bytes]);
    expect(sniffed).toMatchObject({ kind: "file", gzip: true });
    expect((await collect(sniffed.bytes)).equals(bytes)).toBe(true);
  });

  it("recognises zip by its magic numbers; the refusal says what to send", () => {
    expect(isZip(Buffer.from("PK\u0003\u0004rest"))).toBe(true);
    expect(isZip(Buffer.from("PK\u0005\u0006"))).toBe(true);
    expect(isZip(Buffer.from("PK,a,b"))).toBe(false);
    expect(ZIP_REFUSAL).toBe("zip archives are not supported: upload the files, or a .tar.gz of them");
  });
});

describe("archiveFiles", () => {
  it("yields regular, visible, non-empty files with their bytes; skips the rest", async () => {
    for (const size of [1, 100, 512, 1 << 20]) {
      expect(await filesOf(pieces(SAMPLE, size))).toEqual([
        { label: "data/a.csv", size: CSV_A.length, text: CSV_A },
        { label: "data/b.csv", size: CSV_B.length, text: CSV_B },
      ]);
    }
  });

  it("skips the bodies a caller leaves unread", async () => {
    const labels: string[] = [];
    for await (const file of archiveFiles([SAMPLE])) labels.push(file.label);
    expect(labels).toEqual(["data/a.csv", "data/b.csv"]);
  });

  it("reads ustar prefixes, GNU long names and pax paths and sizes", async () => {
    const longName = `${"d".repeat(100)}/${"n".repeat(100)}.csv`;
    const tar = tarOf(
      entry("part.csv", CSV_A, { prefix: "deep/dir" }),
      entry("././@LongLink", `${longName}\0`, { type: "L", gnu: true }),
      entry(longName.slice(0, 99), CSV_B, { gnu: true }),
      paxEntry({ path: "pax/ünïcode name.csv", mtime: "1700000000.5" }),
      entry("ignored-name.csv", "id\n9\n"),
    );
    expect(await filesOf([tar])).toEqual([
      { label: "deep/dir/part.csv", size: CSV_A.length, text: CSV_A },
      { label: longName, size: CSV_B.length, text: CSV_B },
      { label: "pax/ünïcode name.csv", size: 5, text: "id\n9\n" },
    ]);
  });

  it("streams a large entry in pieces no larger than those it is given", async () => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 17, "a");
    const tar = tarOf(entry("big.csv", big));
    let largest = 0;
    let total = 0;
    for await (const file of archiveFiles(pieces(tar, 64 * 1024))) {
      for await (const piece of file.body) {
        largest = Math.max(largest, piece.byteLength);
        total += piece.byteLength;
      }
    }
    expect(total).toBe(big.length);
    expect(largest).toBeLessThanOrEqual(64 * 1024);
  });

  it("refuses more files than allowed, and an archive without any file to load", async () => {
    const tar = tarOf(entry("a.csv", "1"), entry("b.csv", "2"), entry("c.csv", "3"));
    expect(await filesOf([tar], 3)).toHaveLength(3);
    const tooMany = await failure(filesOf([tar], 2));
    expect(isDrayError(tooMany) && tooMany.code).toBe("invalid_argument");
    expect(tooMany.message).toMatch(/more than 2 files/);
    const none = await failure(filesOf([tarOf(entry("dir/", "", { type: "5" }), entry("._x", "m"))]));
    expect(none.message).toMatch(/no file to load/);
  });

  it("refuses paths that leave the archive", async () => {
    for (const path of ["../escape.csv", "data/../../escape.csv", "/etc/passwd", "a\\..\\..\\b.csv"]) {
      const error = await failure(filesOf([tarOf(entry(path, CSV_A))]));
      expect(isDrayError(error) && error.code).toBe("invalid_argument");
      expect(error.message).toMatch(/refused/);
    }
  });

  it("refuses damaged archives: truncated data, a bad checksum, no end block, bad pax", async () => {
    const truncated = SAMPLE.subarray(0, 512 * 3 + 10);
    const damaged = Buffer.from(SAMPLE);
    damaged[512 * 3 + 5] = damaged[512 * 3 + 5]! ^ 0xff; // a byte of the third header
    const noEnd = SAMPLE.subarray(0, SAMPLE.length - 1024);
    const badPax = tarOf(entry("PaxHeader/x", "99 path=x\n", { type: "x" }), entry("a.csv", CSV_A));
    for (const [bytes, reason] of [
      [truncated, /ends inside/],
      [damaged, /damaged \(checksum\)/],
      [noEnd, /without an end-of-archive block/],
      [badPax, /pax extended header is malformed/],
    ] as const) {
      const error = await failure(filesOf([bytes]));
      expect(isDrayError(error) && error.code).toBe("invalid_argument");
      expect(error.message).toMatch(/^the archive is not a valid tar: /);
      expect(error.message).toMatch(reason);
    }
  });

  it("reads archives written by GNU tar (gnu and pax formats, gzip), links and directories skipped", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dray-tar-"));
    try {
      const long = "l".repeat(120);
      mkdirSync(join(dir, "in", long), { recursive: true });
      writeFileSync(join(dir, "in", "a.csv"), CSV_A);
      writeFileSync(join(dir, "in", long, "b.csv"), CSV_B);
      writeFileSync(join(dir, "in", ".hidden.csv"), "x");
      symlinkSync("a.csv", join(dir, "in", "link.csv"));
      for (const format of ["gnu", "pax", "ustar"]) {
        if (format === "ustar") rmSync(join(dir, "in", long), { recursive: true });
        const out = join(dir, `out-${format}.tar.gz`);
        execFileSync("tar", ["-czf", out, `--format=${format}`, "--sort=name", "-C", dir, "in"]);
        const bytes = execFileSync("cat", [out]);
        const sniffed = await sniffUpload(pieces(bytes, 1000));
        expect(sniffed).toMatchObject({ kind: "tar", gzip: true });
        const files = await filesOf(gunzipPieces(sniffed.bytes));
        const expected = [{ label: "in/a.csv", size: CSV_A.length, text: CSV_A }];
        if (format !== "ustar") expected.push({ label: `in/${long}/b.csv`, size: CSV_B.length, text: CSV_B });
        expect(files).toEqual(expected);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("gunzipPieces", () => {
  it("decompresses piece by piece", async () => {
    const text = CSV_A.repeat(5000);
    expect((await collect(gunzipPieces(pieces(gzipSync(text), 333)))).toString()).toBe(text);
  });

  it("answers invalid_argument for a truncated or damaged gzip stream", async () => {
    const gz = gzipSync(SAMPLE);
    for (const bytes of [
      gz.subarray(0, gz.length - 30),
      Buffer.concat([gz.subarray(0, 40), Buffer.alloc(200, 7)]),
    ]) {
      const error = await failure(collect(gunzipPieces(pieces(bytes, 64))));
      expect(isDrayError(error) && error.code).toBe("invalid_argument");
      expect(error.message).toMatch(/^the archive is not valid gzip: /);
    }
  });

  it("passes an error of its source through unchanged (the upload limit stays a 413)", async () => {
    const gz = gzipSync(Buffer.alloc(100_000, "z"));
    const error = await failure(collect(gunzipPieces(limitBytes(pieces(gz, 10), 50))));
    expect(isUploadTooLarge(error)).toBe(true);
  });
});

describe("entryLabel, tarNumber, parsePaxRecords", () => {
  it("normalises paths and spots hidden and metadata entries", () => {
    expect(entryLabel("./data/./orders.csv")).toEqual({ label: "data/orders.csv", hidden: false });
    expect(entryLabel("data//x\u0001y.csv")).toEqual({ label: "data/xy.csv", hidden: false });
    expect(entryLabel("__MACOSX/data/orders.csv").hidden).toBe(true);
    expect(entryLabel("data/._orders.csv").hidden).toBe(true);
    expect(entryLabel(".git/config").hidden).toBe(true);
    expect(entryLabel("a..b/c...csv")).toEqual({ label: "a..b/c...csv", hidden: false });
    expect(Array.from(entryLabel(`${"é".repeat(300)}.csv`).label)).toHaveLength(255);
  });

  it("reads octal and base-256 numbers and refuses anything else", () => {
    expect(tarNumber(Buffer.from("00000000017\0"))).toBe(15);
    expect(tarNumber(Buffer.from("  17 \0"))).toBe(15);
    expect(tarNumber(Buffer.alloc(12))).toBe(0);
    expect(tarNumber(Buffer.from([0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]))).toBe(256);
    expect(tarNumber(Buffer.from([0xff, 0xff, 0xff, 0xff]))).toBeUndefined();
    expect(tarNumber(Buffer.from("0018\0"))).toBeUndefined();
    expect(tarNumber(Buffer.from("12 3"))).toBeUndefined();
  });

  it("parses pax records (lengths in bytes, `=` inside values)", () => {
    const records = parsePaxRecords(Buffer.from("16 path=a=b.csv\n11 size=42\n"));
    expect(Object.fromEntries(records)).toEqual({ path: "a=b.csv", size: "42" });
  });
});

describe("readTar", () => {
  it("gives every entry its type and size", async () => {
    const seen = [];
    for await (const e of readTar([SAMPLE])) seen.push([e.path, e.type, e.size]);
    expect(seen).toEqual([
      ["data/", "directory", 0],
      ["data/a.csv", "file", CSV_A.length],
      ["data/link.csv", "symlink", 0],
      ["data/hard.csv", "hardlink", 0],
      ["data/._a.csv", "file", 12],
      ["__MACOSX/data/b.csv", "file", 13],
      [".DS_Store", "file", 6],
      ["data/empty.csv", "file", 0],
      ["./data/b.csv", "file", CSV_B.length],
    ]);
  });
});
