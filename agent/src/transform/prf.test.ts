import { createHmac, randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createPrf, keyId } from "./prf.js";

const KEY = Buffer.alloc(32, 7);

describe("createPrf", () => {
  it("is HMAC-SHA256(key, transformer \\0 value)", { timeout: 30_000 }, () => {
    for (const key of [KEY, randomBytes(16), randomBytes(64), randomBytes(100)]) {
      const prf = createPrf(key);
      fc.assert(
        fc.property(fc.string({ unit: "grapheme", maxLength: 2000 }), fc.string(), (value, name) => {
          const expected = createHmac("sha256", key).update(`${name}\0${value}`).digest();
          expect(prf.bytes(name, value).equals(expected)).toBe(true);
          expect(prf.bytes(name, value, 10).equals(expected.subarray(0, 10))).toBe(true);
          expect(prf.uint32(name, value)).toBe(expected.readUInt32BE(0));
        }),
        { numRuns: 200 },
      );
    }
  });

  it("depends only on key, transformer and value, not on call order", () => {
    const a = createPrf(KEY);
    const b = createPrf(Buffer.from(KEY));
    const values = fc.sample(fc.string(), 500);
    const first = values.map((v) => a.bytes("hash", v).toString("hex"));
    const reversed = [...values]
      .reverse()
      .map((v) => b.bytes("hash", v).toString("hex"))
      .reverse();
    expect(reversed).toEqual(first);
    expect(a.bytes("hash", "x").equals(a.bytes("mask", "x"))).toBe(false);
  });

  it("extends past 32 bytes deterministically, with the first 32 bytes unchanged", () => {
    const prf = createPrf(KEY);
    const long = prf.bytes("char_scramble", "abc", 100);
    expect(long.length).toBe(100);
    expect(long.subarray(0, 32).equals(prf.bytes("char_scramble", "abc"))).toBe(true);
    expect(long.equals(prf.bytes("char_scramble", "abc", 100))).toBe(true);
    expect(long.subarray(32, 64).equals(long.subarray(0, 32))).toBe(false);
  });

  it("gives floats in [0, 1) and indexes in [0, modulo)", () => {
    const prf = createPrf(KEY);
    fc.assert(
      fc.property(fc.string(), fc.integer({ min: 1, max: 2 ** 32 }), (v, m) => {
        const f = prf.float("noise_number", v);
        expect(f).toBeGreaterThanOrEqual(0);
        expect(f).toBeLessThan(1);
        const i = prf.index("choice", v, m);
        expect(Number.isInteger(i) && i >= 0 && i < m).toBe(true);
      }),
    );
    // Roughly uniform: 10,000 picks over 10 buckets.
    const counts = new Array<number>(10).fill(0);
    for (let i = 0; i < 10_000; i++) {
      const bucket = prf.index("choice", String(i), 10);
      counts[bucket] = (counts[bucket] as number) + 1;
    }
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(150);
    expect(() => prf.index("choice", "x", 0)).toThrow(/modulo/);
  });

  it("refuses keys shorter than 16 bytes", () => {
    expect(() => createPrf(Buffer.alloc(15))).toThrow(/at least 16 bytes/);
  });

  it("names the key by a 16-hex id without revealing it", () => {
    const id = keyId(KEY);
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    expect(createPrf(KEY).keyId).toBe(id);
    expect(keyId(Buffer.alloc(32, 8))).not.toBe(id);
  });
});
