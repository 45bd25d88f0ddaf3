import { createHmac, randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createPrf, keyId } from "./prf.js";

const KEY = Buffer.alloc(32, 7);

const hmac = (key: Buffer, message: string): Buffer => createHmac("sha256", key).update(message).digest();

/** The documented counter-mode extension, from node:crypto. */
function extended(key: Buffer, name: string, value: string, n: number): Buffer {
  const parts = [hmac(key, `${name}\0${value}`)];
  for (let i = 1; parts.length * 32 < n; i++) parts.push(hmac(key, `\u0001${name}\0${value}\0${i}`));
  return Buffer.concat(parts).subarray(0, n);
}

const float = (d: Buffer): number => (d.readUInt32BE(0) * 2 ** 21 + (d.readUInt32BE(4) >>> 11)) / 2 ** 53;
const index = (d: Buffer, modulo: number): number =>
  (d.readUInt32BE(0) * 2 ** 20 + (d.readUInt32BE(4) >>> 12)) % modulo;

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

  it("matches node:crypto HMAC for random keys, names and unicode values (lone surrogates too)", () => {
    // One unit: any code point, a lone surrogate half, or a 1-4 byte UTF-8 sample.
    const unit = fc.oneof(
      fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
      fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)),
      fc.constantFrom("a", "\0", "\u0001", "é", "€", "😀"),
    );
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 100 }),
        fc.string({ unit, maxLength: 20 }),
        fc.string({ unit, maxLength: 300 }),
        fc.integer({ min: 1, max: 100 }),
        (keyBytes, name, value, n) => {
          const key = Buffer.from(keyBytes);
          const prf = createPrf(key);
          const expected = hmac(key, `${name}\0${value}`);
          expect(prf.bytes(name, value).toString("hex")).toBe(expected.toString("hex"));
          expect(prf.uint32(name, value)).toBe(expected.readUInt32BE(0));
          expect(prf.float(name, value)).toBe(float(expected));
          expect(prf.index(name, value, 1000)).toBe(index(expected, 1000));
          expect(prf.bytes(name, value, n).toString("hex")).toBe(
            extended(key, name, value, n).toString("hex"),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it("matches node:crypto HMAC at every message length from 0 to 320 bytes", () => {
    // Crosses the one-block limit (55/56 bytes), the block size (64), later
    // block limits and the switch to the native hash for long messages.
    for (const key of [KEY, Buffer.alloc(64, 3), Buffer.alloc(65, 4)]) {
      const prf = createPrf(key);
      for (let length = 2; length <= 320; length++) {
        // "t\0" + value is `length` bytes, all ASCII or ending in the 3-byte "€".
        const values = ["a".repeat(length - 2), ...(length >= 5 ? ["a".repeat(length - 5) + "€"] : [])];
        for (const value of values) {
          expect(Buffer.byteLength(`t\0${value}`)).toBe(length);
          const expected = hmac(key, `t\0${value}`);
          expect(prf.bytes("t", value).toString("hex")).toBe(expected.toString("hex"));
          expect(prf.bytes("t", value, 80).toString("hex")).toBe(
            extended(key, "t", value, 80).toString("hex"),
          );
        }
      }
      // The empty transformer and value: a one-byte message.
      expect(prf.bytes("", "").equals(hmac(key, "\0"))).toBe(true);
    }
  });

  it("returns a fresh buffer on every call, which later calls leave alone", () => {
    const prf = createPrf(KEY);
    for (const n of [8, 32, 100]) {
      const first = prf.bytes("hash", "x", n);
      const copy = Buffer.from(first);
      prf.bytes("hash", "y", n);
      prf.uint32("hash", "z");
      expect(first.equals(copy)).toBe(true);
      // Not a slice of a shared pool: its whole ArrayBuffer is the caller's.
      expect(first.byteLength).toBe(n);
      expect(first.buffer.byteLength).toBe(n);
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
