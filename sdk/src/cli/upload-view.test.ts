import { describe, expect, it } from "vitest";
import { uploadFrame } from "./upload-view.js";

describe("uploadFrame", () => {
  it("draws a bar per file in bytes with upload words, then the byte rate", () => {
    const lines = uploadFrame(
      [
        { entity: "day1.csv", total: 2048, processed: 2048, status: "completed" },
        { entity: "day2.csv", total: 4 * 1024 * 1024, processed: 1024 * 1024, status: "in_progress" },
        { entity: "day3.csv", total: 10, processed: 0, status: "pending" },
        { entity: "big.csv", total: 10, processed: 3, status: "failed" },
      ],
      { rate: 1024 * 1024, eta: 3, columns: 80 },
    );
    expect(lines[0]).toMatch(/^sent {4}day1\.csv █+ +2\.0 KiB\/2\.0 KiB 100%$/);
    expect(lines[1]).toMatch(/^sending day2\.csv █+░+ 1\.0 MiB\/4\.0 MiB {2}25%$/);
    expect(lines[2]).toMatch(/^waiting day3\.csv ░+ +0 B\/10 B {3}0%$/);
    expect(lines[3]).toMatch(/^refused big\.csv /);
    expect(lines[4]).toBe("1.0 MiB/s  ETA 3s");
    for (const line of lines) expect(line.length).toBeLessThan(80);
  });
});
