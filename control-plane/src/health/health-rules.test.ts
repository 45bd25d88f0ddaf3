import { describe, expect, it } from "vitest";
import { healthAfterHeartbeat, staleAfterMs, sweepEveryMs } from "./health-rules.js";

describe("health rules", () => {
  it("is healthy when the database answers", () => {
    expect(healthAfterHeartbeat({ databaseReachable: true, databaseError: "", draining: false })).toEqual({
      health: "healthy",
      reason: null,
    });
  });
  it("is unhealthy with the reason when the database is unreachable or the agent drains", () => {
    const down = healthAfterHeartbeat({
      databaseReachable: false,
      databaseError: "ECONNREFUSED",
      draining: false,
    });
    expect(down.health).toBe("unhealthy");
    expect(down.reason).toContain("ECONNREFUSED");
    expect(healthAfterHeartbeat({ databaseReachable: true, databaseError: "", draining: true }).health).toBe(
      "unhealthy",
    );
  });
  it("detects silence after three missed beats and within four intervals", () => {
    for (const interval of [200, 1000, 10_000]) {
      expect(staleAfterMs(interval)).toBeGreaterThanOrEqual(3 * interval);
      expect(staleAfterMs(interval) + sweepEveryMs(interval)).toBeLessThan(4 * interval);
    }
  });
});
