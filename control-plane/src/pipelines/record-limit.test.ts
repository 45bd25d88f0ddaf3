import { describe, expect, it } from "vitest";
import { raiseLimitHint, recordLimitStatus, remainingRecords, utcMonth } from "./record-limit.js";

describe("utcMonth", () => {
  it("formats the UTC month with two digits", () => {
    expect(utcMonth(new Date("2026-05-01T00:00:00.000Z"))).toBe("2026-05");
    expect(utcMonth(new Date("2026-12-31T23:59:59.999Z"))).toBe("2026-12");
  });

  it("uses UTC, not the local time zone, at month boundaries", () => {
    expect(utcMonth(new Date("2026-01-31T23:30:00-05:00"))).toBe("2026-02");
    expect(utcMonth(new Date("2026-03-01T00:30:00+02:00"))).toBe("2026-02");
  });

  it("pads early years", () => {
    expect(utcMonth(new Date(Date.UTC(999, 0, 1)))).toBe("0999-01");
  });
});

describe("remainingRecords", () => {
  it("subtracts used and reserved records", () => {
    expect(remainingRecords({ limit: 1000, used: 300, reserved: 200 })).toBe(500);
    expect(remainingRecords({ limit: 1000, used: 0, reserved: 0 })).toBe(1000);
  });

  it("never goes below zero", () => {
    expect(remainingRecords({ limit: 1000, used: 900, reserved: 200 })).toBe(0);
    expect(remainingRecords({ limit: 0, used: 5, reserved: 0 })).toBe(0);
  });
});

describe("recordLimitStatus", () => {
  it("reports whether the estimate fits in the remainder", () => {
    expect(recordLimitStatus({ limit: 100, used: 40, reserved: 10 }, "2026-05", 50)).toEqual({
      limit: 100,
      used: 40,
      reserved: 10,
      remaining: 50,
      month: "2026-05",
      wouldExceed: false,
    });
    expect(recordLimitStatus({ limit: 100, used: 40, reserved: 10 }, "2026-05", 51).wouldExceed).toBe(true);
  });

  it("lets an empty run through even when nothing remains", () => {
    expect(recordLimitStatus({ limit: 10, used: 10, reserved: 0 }, "2026-05", 0).wouldExceed).toBe(false);
  });
});

describe("raiseLimitHint", () => {
  it("names who can raise the limit and the exact call", () => {
    const hint = raiseLimitHint("org-1");
    expect(hint).toContain("system administrator");
    expect(hint).toContain('PATCH /api/v1/organisations/org-1 with {"monthlyRecordLimit": <records>}');
    expect(hint).toContain("organisation tokens cannot change it");
  });
});
