import { describe, expect, it } from "vitest";
import { createThrottle, etaSeconds } from "./progress-math.js";
import { retryDecision } from "./retry-policy.js";

describe("retryDecision", () => {
  const retryable = { code: "unavailable" as const, retryable: true };
  it("retries retryable errors with growing delays until the limit", () => {
    const delays = [0, 1, 2, 3].map((a) => retryDecision(retryable, a, 4, () => 0.5));
    expect(delays.every((d) => d.retry)).toBe(true);
    expect(delays.map((d) => (d.retry ? d.delayMs : 0))).toEqual([250, 500, 1000, 2000]);
    expect(retryDecision(retryable, 4, 4)).toEqual({ retry: false });
  });
  it("never retries data errors or cancellations", () => {
    expect(retryDecision({ code: "failed_precondition", retryable: false }, 0, 4)).toEqual({ retry: false });
    expect(retryDecision({ code: "cancelled", retryable: true }, 0, 4)).toEqual({ retry: false });
  });
});

describe("progress math", () => {
  it("computes the ETA", () => {
    expect(etaSeconds(5000, 10_000, 2500)).toBe(2);
    expect(etaSeconds(10_000, 10_000, 2500)).toBe(0);
    expect(etaSeconds(5000, 10_000, 0)).toBeNull();
  });
  it("throttles to one call per interval", () => {
    let t = 0;
    const throttle = createThrottle(250, () => t);
    expect(throttle.ready()).toBe(true);
    t = 100;
    expect(throttle.ready()).toBe(false);
    t = 260;
    expect(throttle.ready()).toBe(true);
  });
});
