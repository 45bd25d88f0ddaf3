import { describe, expect, it } from "vitest";
import { staleAfterMs } from "../health/health-rules.js";
import { compileExecutorOptions, DEFAULT_EXECUTOR_TUNABLES } from "./executor-options.js";

describe("compileExecutorOptions", () => {
  it("fills in every default, and the away limit follows the agents' heartbeat unless given", () => {
    expect(compileExecutorOptions()).toEqual(DEFAULT_EXECUTOR_TUNABLES);
    expect(compileExecutorOptions({ heartbeatIntervalMs: 2_000 }).agentAwayLimitMs).toBe(staleAfterMs(2_000));
    expect(compileExecutorOptions({ heartbeatIntervalMs: 2_000, agentAwayLimitMs: 9 }).agentAwayLimitMs).toBe(
      9,
    );
    expect(compileExecutorOptions({ leaseMs: undefined }).leaseMs).toBe(15_000);
  });

  it("refuses a value that is not a positive integer, naming it", () => {
    expect(() => compileExecutorOptions({ writesInFlight: 0 })).toThrow(
      /writesInFlight must be a positive integer/,
    );
    expect(() => compileExecutorOptions({ leaseMs: 1.5 })).toThrow(/leaseMs/);
  });

  it("is frozen", () => {
    expect(Object.isFrozen(compileExecutorOptions())).toBe(true);
  });
});
