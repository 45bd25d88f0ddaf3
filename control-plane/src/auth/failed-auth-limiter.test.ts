import { describe, expect, it } from "vitest";
import { createFailedAuthLimiter, limitKeyOf, peerAddress } from "./failed-auth-limiter.js";

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

describe("limitKeyOf", () => {
  it("limits IPv4 (also IPv4-mapped) per address and IPv6 per /64", () => {
    expect(limitKeyOf("10.0.0.7")).toBe("10.0.0.7");
    expect(limitKeyOf("::ffff:10.0.0.7")).toBe("10.0.0.7");
    expect(limitKeyOf("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(limitKeyOf("2001:0DB8:0001:0002:ffff:1:2:3")).toBe("2001:db8:1:2::/64");
    expect(limitKeyOf("::1")).toBe("0:0:0:0::/64");
    expect(limitKeyOf("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
  });

  it("counts the failures of one /64 together, whatever the host part", () => {
    const limiter = createFailedAuthLimiter({ maxFailures: 3, windowMs: 60_000 });
    for (let i = 1; i <= 3; i++) limiter.recordFailure(`2001:db8:1:2::${i}`, 0);
    expect(limiter.retryAfterSeconds("2001:db8:1:2:ffff::9", 1_000)).toBeGreaterThan(0);
    expect(limiter.retryAfterSeconds("2001:db8:1:3::1", 1_000)).toBe(0);
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
