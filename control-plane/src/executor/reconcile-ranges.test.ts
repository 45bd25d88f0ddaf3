import { describe, expect, it } from "vitest";
import {
  LEAF_KEYS,
  MAX_SPLIT_DEPTH,
  MAX_SPLIT_EVERY,
  nextStep,
  rangeDiffers,
  rangesOf,
  SPLIT_FANOUT,
} from "./reconcile-ranges.js";

const d = (count: number, digest = "00000000000000aa") => ({ count, digest });

describe("rangesOf", () => {
  it("makes boundaries + 1 ranges that chain end to start, open ends kept", () => {
    expect(rangesOf({ after: null, until: null }, [["10"], ["20"]])).toEqual([
      { after: null, until: ["10"] },
      { after: ["10"], until: ["20"] },
      { after: ["20"], until: null },
    ]);
    expect(rangesOf({ after: ["1", "a"], until: ["9", "z"] }, [])).toEqual([
      { after: ["1", "a"], until: ["9", "z"] },
    ]);
  });
});

describe("nextStep", () => {
  it("leaves ranges alone when count and digest agree, whatever their size", () => {
    expect(nextStep(d(5_000_000), d(5_000_000), 0)).toEqual({ kind: "same" });
    expect(rangeDiffers(d(3), d(3, "00000000000000ab"))).toBe(true);
    expect(rangeDiffers(d(3), d(4))).toBe(true);
  });

  it("compares keys of a differing range of at most LEAF_KEYS rows on both sides", () => {
    expect(nextStep(d(LEAF_KEYS), d(LEAF_KEYS - 3), 0)).toEqual({ kind: "keys" });
    expect(nextStep(d(0), d(1), 3)).toEqual({ kind: "keys" });
  });

  it("splits a larger differing range into about SPLIT_FANOUT ranges by the side with more rows", () => {
    expect(nextStep(d(50_000), d(50_001, "0000000000000001"), 0)).toEqual({
      kind: "split",
      splitEvery: Math.ceil(50_001 / SPLIT_FANOUT),
      picker: "target",
    });
    expect(nextStep(d(40_000), d(0, "0000000000000000"), 1)).toEqual({
      kind: "split",
      splitEvery: 2_000,
      picker: "source",
    });
    expect(nextStep(d(900_000_000), d(1), 0)).toMatchObject({ splitEvery: MAX_SPLIT_EVERY });
  });

  it("compares keys when the depth is exhausted or the last split made no progress", () => {
    expect(nextStep(d(50_000), d(49_000), MAX_SPLIT_DEPTH)).toEqual({ kind: "keys" });
    expect(nextStep(d(50_000), d(49_000), 2, false)).toEqual({ kind: "keys" });
  });
});
