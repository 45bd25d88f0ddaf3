import { isDrayError } from "@dray/common";
import { describe, expect, it } from "vitest";
import { readTar } from "./tar-stream-reader.js";
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

/** Reads every entry of a tar and every byte of its body. */
async function readAll(tar: Iterable<Uint8Array> | AsyncIterable<Uint8Array>): Promise<void> {
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
    const badPaxSize = tarOf(paxEntry({ size: "12abc" }), entry("a.csv", CSV_A));
    const inData = SAMPLE.subarray(0, 512 * 2 + 10);
    for (const [bytes, reason] of [
      [truncated, /ends inside a header/],
      [inData, /ends inside the entry "data\/a\.csv"/],
      [badPaxSize, /pax size is not a number/],
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

  it("pulls no more of the archive while an entry's bytes are unread", async () => {
    const big = Buffer.alloc(1024 * 1024, "a");
    const tar = tarOf(entry("big.csv", big), entry("b.csv", CSV_B));
    const pieceBytes = 16 * 1024;
    const total = Math.ceil(tar.length / pieceBytes);
    let pulled = 0;
    async function* counted() {
      for await (const piece of pieces(tar, pieceBytes)) {
        pulled++;
        yield piece;
      }
    }
    const seen: [string, number][] = [];
    for await (const e of readTar(counted())) {
      const iterator = e.body[Symbol.asyncIterator]();
      let read = (await iterator.next()).value?.byteLength ?? 0;
      if (e.path === "big.csv") {
        for (let i = 0; i < 50; i++) await new Promise((resolve) => setImmediate(resolve));
        expect(pulled).toBeLessThan(total / 4);
      }
      for (let next = await iterator.next(); !next.done; next = await iterator.next())
        read += next.value.byteLength;
      seen.push([e.path, read]);
    }
    expect(seen).toEqual([
      ["big.csv", big.length],
      ["b.csv", CSV_B.length],
    ]);
    expect(pulled).toBe(total);
  });

  it("throws a failure of the bytes' source as it is", async () => {
    const broken = new Error("connection reset");
    async function* breaking() {
      yield SAMPLE.subarray(0, 512 * 2);
      throw broken;
    }
    expect(await failure(readAll(breaking()))).toBe(broken);
  });
});
