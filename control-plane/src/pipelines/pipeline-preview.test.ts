import { describe, expect, it } from "vitest";
import { decodeCopyRows, varcharLength } from "./pipeline-preview.js";

const bytes = (s: string) => Buffer.from(s, "utf8");

describe("decodeCopyRows", () => {
  it("splits rows and fields, decodes NULL and escapes", () => {
    expect(decodeCopyRows(bytes("a\\tb\t\\N\nc\\\\N\t\\101\\x41\\n\n"))).toEqual([
      ["a\tb", null],
      ["c\\N", "AA\n"],
    ]);
  });
  it("keeps empty strings apart from NULL and decodes UTF-8", () => {
    expect(decodeCopyRows(bytes("\t\\N\nZoë\t€\n"))).toEqual([
      ["", null],
      ["Zoë", "€"],
    ]);
    expect(decodeCopyRows(new Uint8Array())).toEqual([]);
  });
});

describe("varcharLength", () => {
  it("reads n of character varying(n) only", () => {
    expect(varcharLength("character varying(40)")).toBe(40);
    expect(varcharLength("character varying")).toBeUndefined();
    expect(varcharLength("text")).toBeUndefined();
    expect(varcharLength("numeric(12,2)")).toBeUndefined();
  });
});
