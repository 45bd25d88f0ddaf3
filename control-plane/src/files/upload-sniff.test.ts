import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { isTarHeader } from "./tar-headers.js";
import { CSV_A, collect, pieces, SAMPLE } from "./tar-test-fixtures.js";
import { isZip, sniffUpload, ZIP_REFUSAL } from "./upload-sniff.js";

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
