import { describe, expect, it } from "vitest";
import {
  CopyTextBuilder,
  checkCopyLine,
  checkCopyText,
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

describe("checkCopyText", () => {
  /** The line-by-line answer checkCopyText must reproduce. */
  function reference(data: Uint8Array, fieldCount: number) {
    const lines = splitCopyLines(data);
    const malformed = lines.flatMap((line, index) => {
      const problem = checkCopyLine(line, fieldCount);
      const start = line.byteOffset - data.byteOffset;
      return problem === null ? [] : [{ index, start, end: start + line.length, problem }];
    });
    return { lineCount: lines.length, malformed };
  }

  /** `text` placed at byte `offset` of a larger buffer, so word alignment varies. */
  function at(offset: number, content: Uint8Array): Uint8Array {
    const big = new Uint8Array(offset + content.length + 5).fill(0x5c);
    big.set(content, offset);
    return big.subarray(offset, offset + content.length);
  }

  it("agrees with checkCopyLine on every line, at every alignment", () => {
    // Byte runs of hand-made lines; those that are not UTF-8 only in some rounds, since one
    // such byte sends every line of its buffer through the line-by-line check.
    const raw = [[0x61], [0x09], [0x0a], [0x0d], [0x00], [0x5c], [0x2e], [0x78], [0x30], [0x37], [0x4e]];
    raw.push(
      [0xc3, 0xa9],
      [0x5c, 0x09],
      [0x5c, 0x5c],
      [0x5c, 0x0d],
      [0x5c, 0x0a],
      [0x5c, 0x2e],
      [0x5c, 0x78],
    );
    const notUtf8 = [[0xff], [0x80], [0xc3]];
    const values = ["a", "\\", "\t", "\n", "\r", "é", "🚀", "\u0001", "N", ".", "x", "07"];
    let seed = 11;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const pick = <T>(list: readonly T[]) => list[Math.floor(random() * list.length)]!;
    for (let round = 0; round < 3000; round++) {
      const fieldCount = 1 + Math.floor(random() * 3);
      const runs = random() < 0.15 ? [...raw, ...notUtf8] : raw;
      const lines: Buffer[] = [];
      for (let n = Math.floor(random() * 6); n > 0; n--) {
        if (random() < 0.75) {
          const row = Array.from({ length: fieldCount }, () =>
            random() < 0.1
              ? null
              : Array.from({ length: Math.floor(random() * 6) }, () => pick(values)).join(""),
          );
          lines.push(bytes(formatCopyLine(row)));
        } else {
          lines.push(Buffer.from(Array.from({ length: Math.floor(random() * 12) }, () => pick(runs)).flat()));
        }
      }
      let data = Buffer.concat(lines);
      if (random() < 0.3 && data.length > 0) data = data.subarray(0, data.length - 1);
      const view = at(Math.floor(random() * 8), data);
      expect(checkCopyText(view, fieldCount)).toEqual(reference(view, fieldCount));
    }
  });

  it("counts a last line without a newline, and no line in empty data", () => {
    expect(checkCopyText(bytes("1\ta\n2\tb"), 2)).toEqual({ lineCount: 2, malformed: [] });
    expect(checkCopyText(bytes("\n\n"), 1)).toEqual({ lineCount: 2, malformed: [] });
    expect(checkCopyText(new Uint8Array(), 3)).toEqual({ lineCount: 0, malformed: [] });
  });

  it("names a wrong field count on the last line, with or without its newline", () => {
    for (const data of ["1\ta\n2\tb\n3\n", "1\ta\n2\tb\n3"])
      expect(checkCopyText(bytes(data), 2)).toEqual({
        lineCount: 3,
        malformed: [{ index: 2, start: 8, end: 9, problem: "line has 1 fields, expected 2" }],
      });
  });

  it("refuses the end-of-data marker, a raw CR or NUL and a lone backslash, wherever they are", () => {
    const problems = (data: string | Buffer, fieldCount = 1) =>
      checkCopyText(typeof data === "string" ? bytes(data) : data, fieldCount).malformed.map((m) => [
        m.index,
        m.problem,
      ]);
    expect(problems("ok\n\\.\nok\nab\\.\n")).toEqual([
      [1, "\\. (end-of-data marker) inside data"],
      [3, "\\. (end-of-data marker) inside data"],
    ]);
    expect(problems("abc\r\n\\r\nabc\rx")).toEqual([
      [0, "raw carriage return in data (must be escaped as \\r)"],
      [2, "raw carriage return in data (must be escaped as \\r)"],
    ]);
    expect(problems(Buffer.from("a\0\nb\\\0\nc\n"))).toEqual([
      [0, "NUL byte in data"],
      [1, "NUL byte in data"],
    ]);
    expect(problems("abc\\\nok\nabc\\")).toEqual([
      [0, "line ends with a lone backslash"],
      [2, "line ends with a lone backslash"],
    ]);
    expect(problems("\\000\nok\n\\x41\\101\n\\xff\n")).toEqual([
      [0, "escape sequence decodes to a NUL byte"],
      [3, "escape sequences decode to invalid UTF-8"],
    ]);
  });

  it("does not count escaped tabs, whatever the word boundary", () => {
    for (let pad = 0; pad < 8; pad++) {
      const line = `${"a".repeat(pad)}\\\tb\tc\\\\\td`;
      expect(checkCopyText(bytes(`${line}\n${line}`), 3)).toEqual({ lineCount: 2, malformed: [] });
      expect(checkCopyText(bytes(`${line}\n${line}`), 4).malformed.map((m) => m.problem)).toEqual([
        "line has 3 fields, expected 4",
        "line has 3 fields, expected 4",
      ]);
      // One real field short, one escaped tab: still refused.
      expect(checkCopyText(bytes(`${"a".repeat(pad)}\\\tb`), 2).malformed.map((m) => m.problem)).toEqual([
        "line has 1 fields, expected 2",
      ]);
    }
  });

  it("finds invalid UTF-8 anywhere in the buffer, even a sequence cut by a newline", () => {
    const data = Buffer.concat([
      bytes("é\t1\n"),
      Buffer.from([0xc3, 0x0a, 0xa9, 0x09, 0x31, 0x0a]),
      bytes("ok\t2\n"),
    ]);
    expect(checkCopyText(data, 2)).toEqual({
      lineCount: 4,
      malformed: [
        { index: 1, start: 5, end: 6, problem: "line has 1 fields, expected 2" },
        { index: 2, start: 7, end: 10, problem: "line is not valid UTF-8" },
      ],
    });
    const late = Buffer.concat([bytes("a\tb\n".repeat(1000)), Buffer.from([0x61, 0x09, 0xff])]);
    expect(checkCopyText(late, 2).malformed).toEqual([
      { index: 1000, start: 4000, end: 4003, problem: "line is not valid UTF-8" },
    ]);
  });
});
