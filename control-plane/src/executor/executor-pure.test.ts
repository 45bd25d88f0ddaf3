import { describe, expect, it } from "vitest";
import { chainOrder } from "./batch-chain.js";
import { createThrottle, etaSeconds } from "./progress-math.js";
import { minimumRetrySpanMs, retryDecision, retryDelayMs } from "./retry-policy.js";

describe("retryDecision", () => {
  const retryable = { code: "unavailable" as const, retryable: true };
  it("retries retryable errors with growing delays until the limit", () => {
    const delays = [0, 1, 2, 3].map((a) => retryDecision(retryable, a, 4, () => 0));
    expect(delays.every((d) => d.retry)).toBe(true);
    expect(delays.map((d) => (d.retry ? d.delayMs : 0))).toEqual([2000, 4000, 8000, 16000]);
    expect(retryDecision(retryable, 4, 4)).toEqual({ retry: false });
  });
  it("spans at least 30 s over the default 4 retries, whatever the jitter", () => {
    expect(minimumRetrySpanMs(4)).toBe(30_000);
    for (const r of [0, 0.3, 0.999]) {
      const total = [0, 1, 2, 3].reduce((sum, a) => sum + retryDelayMs(a, () => r), 0);
      expect(total).toBeGreaterThanOrEqual(30_000);
      expect(total).toBeLessThanOrEqual(30_000 * 1.25);
    }
  });
  it("adds jitter on top and caps each delay at 30 s (+ jitter)", () => {
    expect(retryDelayMs(0, () => 1)).toBe(2500);
    expect(retryDelayMs(10, () => 0)).toBe(30_000);
    expect(retryDelayMs(10, () => 1)).toBe(37_500);
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

describe("chainOrder", () => {
  const b = (seq: number, from: string | null, to: string) => ({
    seq,
    cursorFrom: from === null ? null : [from],
    cursorTo: [to],
  });
  it("follows the cursor chain from the checkpoint, whatever the seq order", () => {
    const batches = [b(7, "30", "40"), b(5, "10", "20"), b(9, "20", "30")];
    expect(chainOrder(batches, ["10"]).map((x) => x.seq)).toEqual([5, 9, 7]);
  });
  it("starts from the beginning when there is no checkpoint", () => {
    expect(chainOrder([b(2, "5", "9"), b(1, null, "5")], null).map((x) => x.seq)).toEqual([1, 2]);
  });
  it("falls back to seq order for batches off the chain", () => {
    expect(chainOrder([b(4, "90", "99"), b(3, "50", "60")], ["10"]).map((x) => x.seq)).toEqual([3, 4]);
  });
});
