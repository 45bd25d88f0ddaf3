import { describe, expect, it } from "vitest";
import { ConnectionTestLimiter } from "./connection-test-limiter.js";

describe("ConnectionTestLimiter", () => {
  it("admits one test at a time per environment", () => {
    const limiter = new ConnectionTestLimiter();
    const done = limiter.admit("e1", 0);
    expect(() => limiter.admit("e1", 10)).toThrow(/already running/);
    limiter.admit("e2", 10)();
    done();
    done();
    limiter.admit("e1", 20)();
  });

  it("admits `perWindow` tests per sliding window and says when to retry", () => {
    const limiter = new ConnectionTestLimiter({ perWindow: 3, windowMs: 10_000 });
    for (const at of [0, 1_000, 2_000]) limiter.admit("e", at)();
    expect(() => limiter.admit("e", 5_000)).toThrow(
      "tested 3 times in the last 10 s, the most allowed: retry in 5 s",
    );
    limiter.admit("e", 10_000)(); // the test at 0 has left the window
    expect(() => limiter.admit("e", 10_500)).toThrow(/retry in 1 s/);
  });
});
