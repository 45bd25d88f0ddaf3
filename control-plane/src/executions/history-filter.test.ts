import { isDrayError } from "@dray/common";
import { describe, expect, it } from "vitest";
import { parseCreatedRange, parseDateParam, parseStatusFilter } from "./history-filter.js";

const errorOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    if (isDrayError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error("expected an error");
};

describe("parseStatusFilter", () => {
  it("reads a comma list, trimmed and deduplicated", () => {
    expect(parseStatusFilter("failed, cancelled,failed")).toEqual(["failed", "cancelled"]);
    expect(parseStatusFilter("in_progress")).toEqual(["in_progress"]);
  });
  it("treats absent or empty as no filter", () => {
    expect(parseStatusFilter(undefined)).toBeUndefined();
    expect(parseStatusFilter(" , ")).toBeUndefined();
  });
  it("names the bad value", () => {
    expect(errorOf(() => parseStatusFilter("failed,running"))).toEqual({
      code: "invalid_argument",
      message: expect.stringContaining('status "running" is not one of queued, in_progress'),
    });
  });
});

describe("parseDateParam", () => {
  it("reads dates as UTC midnight and datetimes with or without offset", () => {
    expect(parseDateParam("from", "2026-05-01")).toEqual({
      at: new Date("2026-05-01T00:00:00Z"),
      dateOnly: true,
    });
    expect(parseDateParam("from", "2026-05-01T12:30:00Z").at).toEqual(new Date("2026-05-01T12:30:00Z"));
    expect(parseDateParam("from", "2026-05-01T12:30:00.5+02:00").at).toEqual(
      new Date("2026-05-01T10:30:00.5Z"),
    );
    expect(parseDateParam("from", "2026-05-01T12:30").at).toEqual(new Date("2026-05-01T12:30:00Z"));
  });
  it("refuses what is not an ISO date", () => {
    for (const bad of ["yesterday", "2026-02-30", "2026-13-01", "2026-05-01T25:00:00Z", "1714000000", ""]) {
      expect(errorOf(() => parseDateParam("to", bad)).message).toContain(`to "${bad}" is not an ISO date`);
    }
  });
});

describe("parseCreatedRange", () => {
  it("makes a date-only `to` include its whole day", () => {
    expect(parseCreatedRange("2026-05-01", "2026-05-01")).toEqual({
      from: new Date("2026-05-01T00:00:00Z"),
      before: new Date("2026-05-02T00:00:00Z"),
    });
  });
  it("keeps a datetime `to` inclusive", () => {
    expect(parseCreatedRange(undefined, "2026-05-01T10:00:00Z")).toEqual({
      until: new Date("2026-05-01T10:00:00Z"),
    });
    expect(parseCreatedRange(undefined, undefined)).toEqual({});
  });
  it("refuses from after to", () => {
    expect(errorOf(() => parseCreatedRange("2026-05-02", "2026-05-01")).message).toContain("is after to");
    expect(errorOf(() => parseCreatedRange("2026-05-01T10:00:01Z", "2026-05-01T10:00:00Z")).code).toBe(
      "invalid_argument",
    );
  });
});

describe("pathological input", () => {
  it("checks lengths before any pattern and never echoes long values", () => {
    const huge = `${".".repeat(1024 * 1024)}\n`;
    for (const fn of [
      () => parseStatusFilter(huge),
      () => parseStatusFilter(",".repeat(1024 * 1024)),
      () => parseDateParam("from", huge),
      () => parseDateParam("to", `2026-05-01T${"1".repeat(1024 * 1024)}`),
      () => parseCreatedRange(huge, undefined),
    ]) {
      const e = errorOf(fn);
      expect(e.code).toBe("invalid_argument");
      expect(e.message.length).toBeLessThan(200);
      expect(e.message).toContain("must be at most");
    }
  });

  it("cuts a bad value short in the message", () => {
    const e = errorOf(() => parseStatusFilter(`failed,${"x".repeat(150)}`));
    expect(e.message).toContain(`status "${"x".repeat(40)}…"`);
  });
});
