import { isDrayError } from "@dray/common";
import { describe, expect, it } from "vitest";
import { readTar } from "./tar-stream-reader.js";
import { CSV_A, CSV_B, collect, entry, failure, SAMPLE, tarOf } from "./tar-test-fixtures.js";

/** Reads every entry of a tar and every byte of its body. */
async function readAll(tar: Iterable<Uint8Array>): Promise<void> {
  for await (const e of readTar(tar)) await collect(e.body);
}

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
      const error = await failure(readAll([bytes]));
      expect(isDrayError(error) && error.code).toBe("invalid_argument");
      expect(error.message).toMatch(/^the archive is not a valid tar: /);
      expect(error.message).toMatch(reason);
    }
  });
});
