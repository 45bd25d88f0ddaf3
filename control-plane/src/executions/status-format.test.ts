import { describe, expect, it } from "vitest";
import { formatTotalTime, isoSeconds, isoSecondsOrNull, jobStatusOf } from "./status-format.js";

describe("isoSeconds", () => {
  it("drops the milliseconds, keeping UTC", () => {
    expect(isoSeconds(new Date("2026-03-15T10:00:00.999Z"))).toBe("2026-03-15T10:00:00Z");
    expect(isoSeconds(new Date(1710500400000))).toBe("2024-03-15T11:00:00Z");
  });
  it("maps a missing date to null", () => {
    expect(isoSecondsOrNull(null)).toBeNull();
    expect(isoSecondsOrNull(undefined)).toBeNull();
    expect(isoSecondsOrNull(new Date("2026-01-01T00:00:00Z"))).toBe("2026-01-01T00:00:00Z");
  });
});

describe("formatTotalTime", () => {
  it("formats seconds, minutes and hours like the seed", () => {
    expect(formatTotalTime(0)).toBe("0s");
    expect(formatTotalTime(999)).toBe("0s");
    expect(formatTotalTime(3_000)).toBe("3s");
    expect(formatTotalTime(59_999)).toBe("59s");
    expect(formatTotalTime(60_000)).toBe("1m 0s");
    expect(formatTotalTime(125_000)).toBe("2m 5s");
    expect(formatTotalTime(3_600_000)).toBe("1h 0m 0s");
    expect(formatTotalTime(3_723_000)).toBe("1h 2m 3s");
    expect(formatTotalTime(26 * 3_600_000 + 61_000)).toBe("26h 1m 1s");
  });
  it("never goes negative (clock skew)", () => {
    expect(formatTotalTime(-5_000)).toBe("0s");
  });
});

describe("jobStatusOf", () => {
  it("keeps the last stage state for queued, running and completed jobs", () => {
    expect(jobStatusOf("completed", "end")).toBe("end");
    expect(jobStatusOf("completed", null)).toBeNull();
    expect(jobStatusOf("in_progress", "processing")).toBe("processing");
    expect(jobStatusOf("queued", "begin")).toBe("begin");
  });
  it("never shows a failed or cancelled job like a successful one", () => {
    expect(jobStatusOf("failed", "end")).toBe("error");
    expect(jobStatusOf("failed", null)).toBe("error");
    expect(jobStatusOf("cancelled", "end")).toBe("cancelled");
    expect(jobStatusOf("cancelled", "processing")).toBe("cancelled");
  });
});
