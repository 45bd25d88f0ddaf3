import { describe, expect, it } from "vitest";
import { createFailedAuthLimiter, peerAddress } from "./failed-auth-limiter.js";

describe("failed-auth limiter", () => {
  it("blocks an address after maxFailures within the window, until the window ends", () => {
    const limiter = createFailedAuthLimiter({ maxFailures: 3, windowMs: 10_000 });
    for (let i = 0; i < 3; i++) {
      expect(limiter.retryAfterSeconds("a", 1_000)).toBe(0);
      limiter.recordFailure("a", 1_000);
    }
    expect(limiter.retryAfterSeconds("a", 1_000)).toBe(10);
    expect(limiter.retryAfterSeconds("a", 10_500)).toBe(1);
    expect(limiter.retryAfterSeconds("b", 1_000)).toBe(0);
    expect(limiter.retryAfterSeconds("a", 11_000)).toBe(0);
    limiter.recordFailure("a", 11_000);
    expect(limiter.retryAfterSeconds("a", 11_000)).toBe(0);
  });

  it("still lets through a credential that succeeded from the address before", () => {
    const limiter = createFailedAuthLimiter({ maxFailures: 2, windowMs: 60_000, knownPerAddress: 2 });
    limiter.recordSuccess("a", "good");
    limiter.recordFailure("a", 0);
    limiter.recordFailure("a", 0);
    expect(limiter.retryAfterSeconds("a", 1_000)).toBe(59);
    expect(limiter.retryAfterSeconds("a", 1_000, "unknown")).toBe(59);
    expect(limiter.retryAfterSeconds("a", 1_000, "good")).toBe(0);
    expect(limiter.retryAfterSeconds("b", 1_000, "good")).toBe(0);
    // Only the last knownPerAddress credentials are remembered.
    limiter.recordSuccess("a", "second");
    limiter.recordSuccess("a", "third");
    expect(limiter.retryAfterSeconds("a", 1_000, "good")).toBe(59);
    expect(limiter.retryAfterSeconds("a", 1_000, "third")).toBe(0);
  });

  it("tracks at most maxAddresses, dropping the oldest", () => {
    const limiter = createFailedAuthLimiter({ maxFailures: 1, windowMs: 60_000, maxAddresses: 100 });
    for (let i = 0; i < 1_000; i++) limiter.recordFailure(`10.0.${i >> 8}.${i & 255}`, i);
    expect(limiter.size()).toBe(100);
    expect(limiter.retryAfterSeconds("10.0.0.0", 1_000)).toBe(0);
    expect(limiter.retryAfterSeconds("10.0.3.231", 1_000)).toBeGreaterThan(0);
  });
});

describe("peerAddress", () => {
  it("keeps the host of gRPC peers", () => {
    expect(peerAddress("ipv4:127.0.0.1:5000")).toBe("127.0.0.1");
    expect(peerAddress("127.0.0.1:5000")).toBe("127.0.0.1");
    expect(peerAddress("[::1]:5000")).toBe("::1");
    expect(peerAddress("ipv6:[::ffff:10.0.0.1]:5000")).toBe("::ffff:10.0.0.1");
    expect(peerAddress("::1")).toBe("::1");
    expect(peerAddress(undefined)).toBeUndefined();
    expect(peerAddress("")).toBeUndefined();
  });
});
