import { describe, expect, it } from "vitest";
import { count, duration, table } from "./output.js";
import { progressLines } from "./progress-view.js";

describe("progressLines", () => {
  it("draws a bar, counts, percent, rate and ETA per entity", () => {
    const lines = progressLines(
      [
        { entity: "public.accounts", total: 200, processed: 100 },
        { entity: "public.contacts", total: 0, processed: 0 },
      ],
      { rate: 1234.4, eta: 7, width: 10 },
    );
    expect(lines[0]).toBe("public.accounts  █████░░░░░  100/200   50%");
    expect(lines[1]).toBe("public.contacts  ░░░░░░░░░░  0/0    0%");
    expect(lines[2]).toContain("1,234 records/s  ETA 7s");
  });
  it("mentions skipped and failed records", () => {
    const [line] = progressLines([{ entity: "t", total: 10, processed: 10, skipped: 2, failed: 1 }], {
      rate: 0,
      eta: null,
    });
    expect(line).toContain("(2 skipped, 1 failed)");
  });
});

describe("output helpers", () => {
  it("formats counts, durations and tables", () => {
    expect(count(1234567)).toBe("1,234,567");
    expect(duration(1500)).toBe("1.5s");
    expect(duration(185_000)).toBe("3m 05s");
    expect(
      table([
        ["A", "BB"],
        ["ccc", "d"],
      ]),
    ).toBe("A    BB\nccc  d");
  });
});
