import { describe, expect, it } from "vitest";
import { sequenceDecision } from "./sequence-moves.js";

const INT4_MAX = 2147483647n;

describe("sequenceDecision", () => {
  it("moves a fresh sequence up to the maximum", () => {
    expect(sequenceDecision({ lastValue: 1n, isCalled: false }, 100n, INT4_MAX, 1n)).toEqual({
      move: true,
      to: 100n,
    });
  });

  it("moves a fresh sequence whose first value is the maximum (it would be handed out again)", () => {
    expect(sequenceDecision({ lastValue: 1n, isCalled: false }, 1n, INT4_MAX, 1n)).toEqual({
      move: true,
      to: 1n,
    });
  });

  it("never moves a sequence down or to where it already is", () => {
    expect(sequenceDecision({ lastValue: 500n, isCalled: true }, 100n, INT4_MAX, 1n)).toEqual({
      move: false,
      reason: "ahead",
    });
    expect(sequenceDecision({ lastValue: 100n, isCalled: true }, 100n, INT4_MAX, 1n)).toEqual({
      move: false,
      reason: "ahead",
    });
    expect(sequenceDecision({ lastValue: 101n, isCalled: false }, 100n, INT4_MAX, 1n)).toEqual({
      move: false,
      reason: "ahead",
    });
  });

  it("leaves a sequence alone for an empty table, past MAXVALUE, or descending", () => {
    expect(sequenceDecision({ lastValue: 1n, isCalled: false }, null, INT4_MAX, 1n)).toEqual({
      move: false,
      reason: "empty",
    });
    expect(sequenceDecision({ lastValue: 1n, isCalled: false }, INT4_MAX + 1n, INT4_MAX, 1n)).toEqual({
      move: false,
      reason: "above_max_value",
    });
    expect(sequenceDecision({ lastValue: -1n, isCalled: false }, 5n, -1n, -1n)).toEqual({
      move: false,
      reason: "descending",
    });
  });
});
