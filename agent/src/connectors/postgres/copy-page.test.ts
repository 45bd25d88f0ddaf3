import { describe, expect, it } from "vitest";
import { CopyPageCollector, type CopyPageLayout, leadingFieldsLength } from "./copy-page.js";
import { encodePage } from "./keyset-read.js";

const layout = (extra: Partial<CopyPageLayout> = {}): CopyPageLayout => ({
  fieldCount: 2,
  columnCount: 2,
  maxBytes: 1000,
  discardLimit: 1000,
  ...extra,
});

function collect(lines: string[], extra: Partial<CopyPageLayout> = {}, keyPositions = [0]) {
  const collector = new CopyPageCollector(layout(extra));
  const answers = lines.map((line) => collector.add(Buffer.from(line)));
  return { ...collector.finish(keyPositions), answers };
}

describe("leadingFieldsLength", () => {
  it("finds the end of the first fields at raw tabs only", () => {
    const line = Buffer.from("a\\tb\tc\t7\n");
    expect(leadingFieldsLength(line, 1)).toBe(4);
    expect(leadingFieldsLength(line, 2)).toBe(6);
    expect(leadingFieldsLength(line, 3)).toBe(8);
    expect(leadingFieldsLength(line, 4)).toBe(8);
  });
});

describe("CopyPageCollector", () => {
  it("joins the lines as they are and reports the last key", () => {
    const page = collect(["1\ta\\tb\n", "2\t\\N\n"]);
    expect(page.data.toString()).toBe("1\ta\\tb\n2\t\\N\n");
    expect(page).toMatchObject({ rowCount: 2, last: ["2"], trimmed: false, received: 2 });
    expect(page.answers).toEqual([true, true]);
  });

  it("decodes escaped key values for the cursor", () => {
    const page = collect(["x\tk\\\\1\\t2\n"], {}, [1, 0]);
    expect(page.last).toEqual(["k\\1\t2", "x"]);
  });

  it("stops keeping rows before the one that would pass the budget, but always keeps one", () => {
    const rows = ["1\txxxxxxxxxx\n", "2\txxxxxxxxxx\n", "3\txxxxxxxxxx\n"];
    const page = collect(rows, { maxBytes: 30 });
    expect(page.data.toString()).toBe(rows[0]! + rows[1]!);
    expect(page).toMatchObject({ rowCount: 2, last: ["2"], trimmed: true, received: 3 });
    const tiny = collect(rows, { maxBytes: 1 });
    expect(tiny).toMatchObject({ rowCount: 1, last: ["1"], trimmed: true, received: 3 });
    const exact = collect(rows, { maxBytes: 39 });
    expect(exact).toMatchObject({ rowCount: 3, trimmed: false });
  });

  it("asks to stop once more than the discard limit was discarded", () => {
    const rows = Array.from({ length: 6 }, (_, i) => `${i}\t${"x".repeat(8)}\n`); // 11 bytes each
    const page = collect(rows, { maxBytes: 11, discardLimit: 25 });
    expect(page.answers).toEqual([true, true, true, false, false, false]);
    expect(page).toMatchObject({ rowCount: 1, trimmed: true, received: 6 });
  });

  it("cuts off trailing key columns, counting only the fields against the budget", () => {
    const rows = ["body\\t1\t7\n", "body 2\t8\n", "three\t9\n"];
    const page = collect(rows, { fieldCount: 1, columnCount: 2, maxBytes: 15 }, [1]);
    expect(page.data.toString()).toBe("body\\t1\nbody 2\n");
    expect(page).toMatchObject({ rowCount: 2, last: ["8"], trimmed: true });
  });

  it("gives the same page as encoding decoded rows", () => {
    const values = [
      ["1", "tab\there", null],
      ["2", "back\\slash", "nl\nx"],
      ["3", "", "ünï ✓"],
    ];
    const raw = values.map((row) => row.map((v) => (v === null ? null : Buffer.from(v))));
    for (const maxBytes of [1, 20, 40, 1000]) {
      const encoded = encodePage(raw, 2, [0], maxBytes);
      const lines = raw.map((row) => encodePage([row], 3, [0], 1 << 20).data.toString());
      const page = collect(lines, { fieldCount: 2, columnCount: 3, maxBytes });
      expect(page.data.equals(encoded.data)).toBe(true);
      expect(page).toMatchObject({
        rowCount: encoded.rowCount,
        last: encoded.last,
        trimmed: encoded.trimmed,
      });
    }
  });

  it("returns an empty page without rows", () => {
    expect(collect([])).toMatchObject({ rowCount: 0, last: null, trimmed: false, received: 0 });
    expect(collect([]).data.length).toBe(0);
  });

  it("refuses a message that is not exactly one line", () => {
    expect(() => collect(["1\ta"])).toThrow(expect.objectContaining({ code: "internal" }));
    expect(() => collect(["1\ta\n2\tb\n"])).toThrow(expect.objectContaining({ code: "internal" }));
  });
});
