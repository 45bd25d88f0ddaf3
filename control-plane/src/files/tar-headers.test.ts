import { describe, expect, it } from "vitest";
import { isTarHeader, tarNumber } from "./tar-headers.js";
import { header } from "./tar-test-fixtures.js";

describe("tarNumber, isTarHeader", () => {
  it("reads octal and base-256 numbers and refuses anything else", () => {
    expect(tarNumber(Buffer.from("00000000017\0"))).toBe(15);
    expect(tarNumber(Buffer.from("  17 \0"))).toBe(15);
    expect(tarNumber(Buffer.alloc(12))).toBe(0);
    expect(tarNumber(Buffer.from([0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]))).toBe(256);
    expect(tarNumber(Buffer.from([0xff, 0xff, 0xff, 0xff]))).toBeUndefined();
    expect(tarNumber(Buffer.from("0018\0"))).toBeUndefined();
    expect(tarNumber(Buffer.from("12 3"))).toBeUndefined();
  });

  it("takes a block with the ustar magic and a matching checksum, nothing else", () => {
    expect(isTarHeader(header("a.csv", 10))).toBe(true);
    expect(isTarHeader(header("a.csv", 10, { gnu: true }))).toBe(true);
    const damaged = header("a.csv", 10);
    damaged[0] = damaged[0]! ^ 0xff;
    expect(isTarHeader(damaged)).toBe(false);
    expect(isTarHeader(header("a.csv", 10).subarray(0, 511))).toBe(false);
  });
});
