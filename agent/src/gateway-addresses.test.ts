import { describe, expect, it } from "vitest";
import { createGatewayRotation, parseGatewayAddresses } from "./gateway-addresses.js";

/** Randomness pinned at the middle of its range: backoff without jitter. */
const middle = () => 0.5;

describe("createGatewayRotation", () => {
  it("moves round-robin to the next gateway, without waiting inside a round", () => {
    const rotation = createGatewayRotation(["a", "b", "c"], { random: middle });
    expect(rotation.current).toBe("a");
    expect(rotation.failed()).toEqual({ address: "b", index: 1, delayMs: 0 });
    expect(rotation.failed()).toEqual({ address: "c", index: 2, delayMs: 0 });
    // Every gateway failed in a row: a full round, so the step back to the first one waits.
    expect(rotation.failed()).toEqual({ address: "a", index: 0, delayMs: 200 });
    expect(rotation.current).toBe("a");
  });

  it("backs off exponentially between full rounds, up to 2 s", () => {
    const rotation = createGatewayRotation(["a", "b"], { random: middle });
    const waits: number[] = [];
    for (let i = 0; i < 14; i++) waits.push(rotation.failed().delayMs);
    expect(waits).toEqual([0, 200, 0, 400, 0, 800, 0, 1600, 0, 2000, 0, 2000, 0, 2000]);
  });

  it("jitters each wait by at most ±25 %", () => {
    const low = createGatewayRotation(["a"], { random: () => 0 });
    const high = createGatewayRotation(["a"], { random: () => 0.999_999 });
    expect([low.failed().delayMs, low.failed().delayMs]).toEqual([150, 300]);
    expect([high.failed().delayMs, high.failed().delayMs]).toEqual([250, 500]);
  });

  it("starts a new round once a gateway answers: the next failure moves on at once", () => {
    const rotation = createGatewayRotation(["a", "b"], { random: middle });
    rotation.failed();
    rotation.failed();
    rotation.failed(); // b, after two full rounds' worth of failures
    rotation.answered();
    expect(rotation.failed()).toEqual({ address: "a", index: 0, delayMs: 0 });
    expect(rotation.failed()).toEqual({ address: "b", index: 1, delayMs: 200 });
  });

  it("with one gateway, every failure is a full round", () => {
    const rotation = createGatewayRotation(["a"], { random: middle });
    expect(rotation.failed()).toEqual({ address: "a", index: 0, delayMs: 200 });
    expect(rotation.failed()).toEqual({ address: "a", index: 0, delayMs: 400 });
  });

  it("refuses an empty list", () => {
    expect(() => createGatewayRotation([])).toThrow(/at least one address/);
  });
});

describe("parseGatewayAddresses", () => {
  it("leaves the TLS choice of a bare host:port to the caller", () => {
    expect(parseGatewayAddresses("https://cp-1:7070, cp-2:7070")).toEqual({
      addresses: [
        { address: "cp-1:7070", tls: true },
        { address: "cp-2:7070", tls: undefined },
      ],
    });
  });
});
