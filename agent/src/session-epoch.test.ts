import { describe, expect, it } from "vitest";
import { SessionEpochFence } from "./session-epoch.js";

describe("SessionEpochFence", () => {
  it("refuses commands older than the newest session, and takes every newer epoch given", () => {
    const fence = new SessionEpochFence();
    expect(fence.announce(4n, true)).toEqual({ raised: true, wentBack: false, previous: 0n });
    expect(fence.admit(4n)).toEqual({ admitted: true, raised: false });
    expect(fence.announce(5n, false)).toEqual({ raised: true, wentBack: false, previous: 4n });
    expect(fence.isStale(4n)).toBe(true);
    expect(fence.admit(4n)).toEqual({ admitted: false, raised: false });
    // A task of a newer epoch than announced is the newest given.
    expect(fence.admit(6n)).toEqual({ admitted: true, raised: true });
    expect(fence.current).toBe(6n);
    expect(fence.admit(5n).admitted).toBe(false);
    expect(fence.staleMessage(5n, "task")).toMatch(/epoch 5, older than this agent's session epoch 6/);
  });

  it("accepts epoch 0 (a control plane that does not send it) whatever it has seen", () => {
    const fence = new SessionEpochFence();
    expect(fence.admit(0n)).toEqual({ admitted: true, raised: false });
    fence.announce(9n, true);
    expect(fence.admit(0n)).toEqual({ admitted: true, raised: false });
    expect(fence.announce(0n, true)).toEqual({ raised: false, wentBack: false, previous: 9n });
    expect(fence.current).toBe(9n);
  });

  it("ignores an older announcement within a stream, but adopts one that opens a new stream", () => {
    const fence = new SessionEpochFence();
    fence.announce(9n, true);
    expect(fence.announce(3n, false)).toEqual({ raised: false, wentBack: false, previous: 9n });
    expect(fence.current).toBe(9n);
    // The stream just dialled is the only authority: its control plane started counting again.
    expect(fence.announce(3n, true)).toEqual({ raised: false, wentBack: true, previous: 9n });
    expect(fence.current).toBe(3n);
    expect(fence.admit(3n).admitted).toBe(true);
    expect(fence.admit(2n).admitted).toBe(false);
  });
});
