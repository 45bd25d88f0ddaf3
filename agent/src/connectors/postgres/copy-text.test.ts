import { describe, expect, it } from "vitest";
import {
  CopyTextBuilder,
  checkCopyLine,
  decodeCopyField,
  formatCopyLine,
  parseCopyLine,
  splitCopyFields,
  splitCopyLines,
} from "./copy-text.js";

const bytes = (text: string) => Buffer.from(text, "utf8");
const text = (value: Uint8Array | null) => (value === null ? null : Buffer.from(value).toString("utf8"));

describe("CopyTextBuilder / formatCopyLine", () => {
  it("escapes exactly what COPY TO escapes", () => {
    expect(formatCopyLine(["a\\b", "t\tn\nr\rb\bf\fv\v", null, "", "\u0001raw"])).toBe(
      "a\\\\b\tt\\tn\\nr\\rb\\bf\\fv\\v\t\\N\t\t\u0001raw\n",
    );
  });

  it("keeps multi-byte UTF-8 untouched", () => {
    expect(formatCopyLine(["日本語 🚀", "é"])).toBe("日本語 🚀\té\n");
  });

  it("grows beyond its initial capacity and truncates at a remembered boundary", () => {
    const builder = new CopyTextBuilder(16);
    const first = builder.addRow([bytes("x".repeat(100))]);
    expect(first).toBe(101);
    const mark = builder.byteLength;
    builder.addRow([bytes("second"), null]);
    builder.truncate(mark);
    expect(builder.toBuffer().toString()).toBe(`${"x".repeat(100)}\n`);
  });
});

describe("splitCopyLines", () => {
  it("splits on newlines, with or without a final newline", () => {
    expect(splitCopyLines(bytes("a\nb\n")).map(text)).toEqual(["a", "b"]);
    expect(splitCopyLines(bytes("a\nb")).map(text)).toEqual(["a", "b"]);
    expect(splitCopyLines(bytes("\n\n")).map(text)).toEqual(["", ""]);
    expect(splitCopyLines(new Uint8Array())).toEqual([]);
  });

  it("works on a view into a larger buffer", () => {
    const big = bytes("xxa\nbyy");
    expect(splitCopyLines(big.subarray(2, 5)).map(text)).toEqual(["a", "b"]);
  });
});

describe("decodeCopyField", () => {
  it("reads \\N as NULL only when it is the whole field", () => {
    expect(decodeCopyField(bytes("\\N"))).toBeNull();
    expect(text(decodeCopyField(bytes("\\\\N")))).toBe("\\N");
    expect(text(decodeCopyField(bytes("\\Nx")))).toBe("Nx");
  });

  it("decodes letter, octal and hex escapes", () => {
    expect(text(decodeCopyField(bytes("\\b\\f\\n\\r\\t\\v\\\\")))).toBe("\b\f\n\r\t\v\\");
    expect(text(decodeCopyField(bytes("\\101\\60\\7x")))).toBe("A0\u0007x");
    expect(text(decodeCopyField(bytes("\\x41\\x4a\\x7")))).toBe("AJ\u0007");
    expect(text(decodeCopyField(bytes("\\xg")))).toBe("xg");
    expect(text(decodeCopyField(bytes("\\q\\'")))).toBe("q'");
    expect(text(decodeCopyField(bytes("\\303\\251")))).toBe("é");
    expect(text(decodeCopyField(bytes("\\1011")))).toBe("A1");
  });
});

describe("splitCopyFields and parseCopyLine", () => {
  it("splits at unescaped tabs only", () => {
    expect(splitCopyFields(bytes("a\tb\\\tc\t")).map(text)).toEqual(["a", "b\\\tc", ""]);
    expect(parseCopyLine(bytes("1\t\\N\tx\\ty"))).toEqual(["1", null, "x\ty"]);
  });

  it("round-trips random values through format and parse", () => {
    const alphabet = [
      "a",
      "\\",
      "\t",
      "\n",
      "\r",
      "\b",
      "\f",
      "\v",
      "N",
      "é",
      "🚀",
      "\u0001",
      " ",
      "'",
      '"',
      ".",
    ];
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let i = 0; i < 300; i++) {
      const values = Array.from({ length: 1 + Math.floor(random() * 4) }, () =>
        random() < 0.15
          ? null
          : Array.from(
              { length: Math.floor(random() * 8) },
              () => alphabet[Math.floor(random() * alphabet.length)],
            ).join(""),
      );
      const line = formatCopyLine(values);
      expect(line.endsWith("\n")).toBe(true);
      expect(splitCopyLines(bytes(line))).toHaveLength(1);
      expect(parseCopyLine(bytes(line.slice(0, -1)))).toEqual(values);
      expect(checkCopyLine(bytes(line.slice(0, -1)), values.length)).toBeNull();
    }
  });
});

describe("checkCopyLine", () => {
  it("accepts well-formed lines", () => {
    expect(checkCopyLine(bytes("1\tabc\t\\N"), 3)).toBeNull();
    expect(checkCopyLine(bytes(""), 1)).toBeNull();
    expect(checkCopyLine(bytes("\\303\\251\t\\x41"), 2)).toBeNull();
    expect(checkCopyLine(bytes("a\\\rb"), 1)).toBeNull();
  });

  it("names what COPY FROM would refuse", () => {
    expect(checkCopyLine(bytes("1\t2\t3"), 2)).toMatch(/3 fields, expected 2/);
    expect(checkCopyLine(bytes("1"), 2)).toMatch(/1 fields, expected 2/);
    expect(checkCopyLine(bytes("a\rb"), 1)).toMatch(/carriage return/);
    expect(checkCopyLine(bytes("a\0b"), 1)).toMatch(/NUL/);
    expect(checkCopyLine(bytes("\\."), 1)).toMatch(/end-of-data/);
    expect(checkCopyLine(bytes("a\\.b"), 1)).toMatch(/end-of-data/);
    expect(checkCopyLine(bytes("abc\\"), 1)).toMatch(/lone backslash/);
    expect(checkCopyLine(Buffer.from([0x61, 0xff]), 1)).toMatch(/UTF-8/);
    expect(checkCopyLine(bytes("\\000"), 1)).toMatch(/NUL/);
    expect(checkCopyLine(bytes("\\x0"), 1)).toMatch(/NUL/);
    expect(checkCopyLine(bytes("\\xff"), 1)).toMatch(/UTF-8/);
  });
});

describe("textArrayLiteral", () => {
  it("quotes values, escapes quotes and backslashes, and keeps NULL", async () => {
    const { textArrayLiteral } = await import("./stage-rows.js");
    expect(textArrayLiteral(["a", null, 'say "hi"', "back\\slash", ""])).toBe(
      '{"a",NULL,"say \\"hi\\"","back\\\\slash",""}',
    );
  });
});
