import { describe, expect, it } from "vitest";
import { loadConfig } from "./config.js";

const defaults = { replicaId: "test:1" };

describe("loadConfig", () => {
  it("keeps two writes of an entity in flight unless told otherwise", () => {
    expect(loadConfig({}, defaults).writesInFlight).toBe(2);
    expect(loadConfig({ DRAY_EXECUTION_WRITES_IN_FLIGHT: "1" }, defaults).writesInFlight).toBe(1);
  });
  it("refuses a writes-in-flight setting out of range, naming the variable", () => {
    for (const bad of ["0", "9", "two"])
      expect(() => loadConfig({ DRAY_EXECUTION_WRITES_IN_FLIGHT: bad }, defaults)).toThrow(
        /DRAY_EXECUTION_WRITES_IN_FLIGHT/,
      );
  });
});
