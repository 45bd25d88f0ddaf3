import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isDrayError } from "@dray/common";
import { describe, expect, it } from "vitest";
import { archiveFiles, entryLabel } from "./archive-entries.js";
import { gunzipPieces } from "./gunzip-pieces.js";
import {
  CSV_A,
  CSV_B,
  collect,
  entry,
  failure,
  paxEntry,
  pieces,
  SAMPLE,
  tarOf,
} from "./tar-test-fixtures.js";
import { sniffUpload } from "./upload-sniff.js";

/** The files archiveFiles yields, with their text. */
async function filesOf(tar: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, maxFiles?: number) {
  const out: { label: string; size: number; text: string }[] = [];
  for await (const file of archiveFiles(tar, { maxFiles })) {
    out.push({ label: file.label, size: file.size, text: (await collect(file.body)).toString("utf8") });
  }
  return out;
}

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

describe("entryLabel", () => {
  it("normalises paths and spots hidden and metadata entries", () => {
    expect(entryLabel("./data/./orders.csv")).toEqual({ label: "data/orders.csv", hidden: false });
    expect(entryLabel("data//x\u0001y.csv")).toEqual({ label: "data/xy.csv", hidden: false });
    expect(entryLabel("__MACOSX/data/orders.csv").hidden).toBe(true);
    expect(entryLabel("data/._orders.csv").hidden).toBe(true);
    expect(entryLabel(".git/config").hidden).toBe(true);
    expect(entryLabel("a..b/c...csv")).toEqual({ label: "a..b/c...csv", hidden: false });
    expect(Array.from(entryLabel(`${"é".repeat(300)}.csv`).label)).toHaveLength(255);
  });
});
