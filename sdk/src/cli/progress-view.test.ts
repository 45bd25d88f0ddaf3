import { stripVTControlCharacters } from "node:util";
import { describe, expect, it } from "vitest";
import { count, duration, table } from "./output.js";
import { entityState, progressFrame } from "./progress-view.js";

const ENTITIES = [
  { entity: "public.accounts", total: 2_000, processed: 2_000 },
  {
    entity: "public.opportunities_with_a_long_name",
    total: 40_000,
    processed: 12_345,
    skipped: 3,
    failed: 1,
  },
  { entity: "public.activities", total: 65_000, processed: 0 },
];

describe("progressFrame", () => {
  it("draws state, name, bar, counts and percent per entity, then rate and ETA", () => {
    const lines = progressFrame(
      [
        { entity: "public.accounts", total: 200, processed: 100 },
        { entity: "public.contacts", total: 0, processed: 0 },
      ],
      { rate: 1234.4, eta: 7, columns: 80 },
    );
    expect(lines[0]).toMatch(/^copying public\.accounts █+░+ 100\/200 {2}50%$/);
    expect(lines[1]).toMatch(/^waiting public\.contacts ░+ +0\/0 +0%$/);
    expect(lines[2]).toBe("1,234 records/s  ETA 7s");
  });

  it("fits every line in the width from 40 to 200 columns", () => {
    for (let columns = 40; columns <= 200; columns++) {
      const lines = progressFrame(ENTITIES, { rate: 10, eta: 3, columns });
      for (const line of lines) expect(line.length, `${columns} columns: ${line}`).toBeLessThan(columns);
      // Every entity keeps its state, a bar and its percent.
      expect(lines[1]).toMatch(/^copying .+ █+░+ .*30%$/);
    }
  });

  it("keeps the width with colours on (colours do not count)", () => {
    const colours = {
      green: (s: string) => `\u001b[32m${s}\u001b[0m`,
      red: (s: string) => `\u001b[31m${s}\u001b[0m`,
      yellow: (s: string) => `\u001b[33m${s}\u001b[0m`,
      blue: (s: string) => `\u001b[34m${s}\u001b[0m`,
      grey: (s: string) => `\u001b[90m${s}\u001b[0m`,
    };
    const lines = progressFrame(ENTITIES, { rate: 10, eta: 3, columns: 50, colours });
    expect(lines[0]).toContain("\u001b[32mdone");
    for (const line of lines) expect(stripVTControlCharacters(line).length).toBeLessThan(50);
  });

  it("shows a completed entity full, with its final count, whatever its estimate said", () => {
    const [line] = progressFrame([{ entity: "t", total: 1_000, processed: 930, status: "completed" }], {
      rate: 0,
      eta: null,
      columns: 60,
    });
    expect(line).toMatch(/^done {4}t +█+ 930\/1,000 100%$/);
    expect(line).not.toContain("░");
  });

  it("mentions skipped and failed records, and infers states from counts", () => {
    const lines = progressFrame(ENTITIES, { rate: 0, eta: null, columns: 120 });
    expect(lines[1]).toContain("12,345/40,000 3s/1f");
    expect(entityState({ entity: "a", total: 5, processed: 5 })).toBe("completed");
    expect(entityState({ entity: "a", total: 5, processed: 0 })).toBe("pending");
    expect(entityState({ entity: "a", total: 5, processed: 9, status: "failed" })).toBe("failed");
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
