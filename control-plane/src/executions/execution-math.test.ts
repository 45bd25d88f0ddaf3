import { describe, expect, it } from "vitest";
import { durationMsOf, percentOf, sumCounters, throughputOf } from "./execution-math.js";

const at = (ms: number) => new Date(ms);

describe("durationMsOf", () => {
  it("is finished − started, now − started while running, null before the start", () => {
    expect(durationMsOf(at(1_000), at(3_500), at(99_000))).toBe(2_500);
    expect(durationMsOf(at(1_000), null, at(4_000))).toBe(3_000);
    expect(durationMsOf(null, null, at(4_000))).toBeNull();
    expect(durationMsOf(null, at(4_000), at(4_000))).toBeNull();
  });
  it("never goes negative", () => {
    expect(durationMsOf(at(5_000), null, at(4_000))).toBe(0);
  });
});

describe("throughputOf", () => {
  it("is records per second with two decimals", () => {
    expect(throughputOf(1_000, 4_000)).toBe(250);
    expect(throughputOf(10, 3_000)).toBe(3.33);
  });
  it("is 0 without a duration", () => {
    expect(throughputOf(10, null)).toBe(0);
    expect(throughputOf(10, 0)).toBe(0);
  });
});

describe("percentOf", () => {
  it("is processed over total with one decimal, capped at 100", () => {
    expect(percentOf(1, 3, "in_progress")).toBe(33.3);
    expect(percentOf(50, 200, "in_progress")).toBe(25);
    expect(percentOf(12, 10, "completed")).toBe(100);
  });
  it("treats an empty entity as done once completed", () => {
    expect(percentOf(0, 0, "completed")).toBe(100);
    expect(percentOf(0, 0, "pending")).toBe(0);
  });
});

describe("sumCounters", () => {
  it("adds every counter", () => {
    const row = { total: 10, processed: 8, created: 5, updated: 2, skipped: 1, failed: 0 };
    expect(sumCounters([row, { ...row, failed: 3 }])).toEqual({
      total: 20,
      processed: 16,
      created: 10,
      updated: 4,
      skipped: 2,
      failed: 3,
    });
    expect(sumCounters([])).toEqual({
      total: 0,
      processed: 0,
      created: 0,
      updated: 0,
      skipped: 0,
      failed: 0,
    });
  });
});
