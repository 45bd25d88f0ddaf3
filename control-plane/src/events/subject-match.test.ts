import { describe, expect, it } from "vitest";
import { subjectMatches } from "./subject-match.js";

describe("subjectMatches", () => {
  it("matches literal subjects exactly", () => {
    expect(subjectMatches("dray.a.b", "dray.a.b")).toBe(true);
    expect(subjectMatches("dray.a.b", "dray.a.c")).toBe(false);
    expect(subjectMatches("dray.a", "dray.a.b")).toBe(false);
  });
  it("matches * as one token and > as the rest", () => {
    expect(subjectMatches("dray.*.environments.*.health", "dray.o.environments.e.health")).toBe(true);
    expect(subjectMatches("dray.*.health", "dray.o.x.health")).toBe(false);
    expect(subjectMatches("dray.>", "dray.o.x.health")).toBe(true);
    expect(subjectMatches("dray.>", "dray")).toBe(false);
  });
});
