import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  compress,
  finish,
  loadBlock,
  SHA256_PADDING,
  sha256,
  sha256Block,
  sha256Initial,
  writeDigest,
} from "./sha256.js";

const native = (data: Uint8Array): string => createHash("sha256").update(data).digest("hex");

describe("sha256", () => {
  it("gives the FIPS 180-4 digests of 'abc' and of the empty message", () => {
    expect(sha256(Buffer.from("abc")).toString("hex")).toBe(
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    expect(sha256(new Uint8Array(0)).toString("hex")).toBe(
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
  });

  it("matches node:crypto at every length from 0 to 300 bytes", () => {
    // Covers the padding limits: 55/56 bytes in one block, 64, 119/120, …
    const data = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 131 + 7) & 0xff));
    for (let length = 0; length <= 300; length++)
      expect(sha256(data.subarray(0, length)).toString("hex")).toBe(native(data.subarray(0, length)));
  });

  it("matches node:crypto for random data", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1000 }), (data) => {
        expect(sha256(data).toString("hex")).toBe(native(data));
      }),
    );
  });
});

describe("finish", () => {
  it("continues from a midstate: a whole first block, then the message at an offset", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 64, maxLength: 64 }),
        fc.uint8Array({ maxLength: 200 }),
        (first, rest) => {
          const state = sha256Initial();
          const w = sha256Block();
          loadBlock(w, first, 0);
          compress(state, w);
          const bytes = new Uint8Array(10 + rest.length + SHA256_PADDING);
          bytes.set(rest, 10);
          finish(state, w, bytes, 10, rest.length, 64);
          const digest = Buffer.alloc(32);
          writeDigest(state, digest);
          expect(digest.toString("hex")).toBe(native(Buffer.concat([first, rest])));
        },
      ),
    );
  });
});
