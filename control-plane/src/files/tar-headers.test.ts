import { describe, expect, it } from "vitest";
import { parsePaxRecords, tarNumber } from "./tar-headers.js";

describe("tarNumber, parsePaxRecords", () => {
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
