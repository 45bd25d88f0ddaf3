import { describe, expect, it } from "vitest";
import { SESSION_SETTINGS, withoutSessionOverrides } from "./connection-options.js";

describe("withoutSessionOverrides", () => {
  it("drops URL parameters that would override the deterministic session settings", () => {
    expect(
      withoutSessionOverrides("postgres://u@h/db?TimeZone=Europe/Paris&sslmode=require&datestyle=SQL"),
    ).toBe("postgres://u@h/db?sslmode=require");
    expect(withoutSessionOverrides("postgres://u@h/db?application_name=x")).toBe("postgres://u@h/db");
    expect(withoutSessionOverrides("postgres://u@h/db")).toBe("postgres://u@h/db");
  });

  it("pins the settings COPY text relies on", () => {
    expect(SESSION_SETTINGS).toEqual({
      application_name: "dray-agent",
      DateStyle: "ISO",
      TimeZone: "UTC",
      IntervalStyle: "postgres",
      extra_float_digits: 3,
      bytea_output: "hex",
    });
  });
});
