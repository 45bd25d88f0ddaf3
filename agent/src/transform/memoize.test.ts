import { describe, expect, it } from "vitest";
import { memoizeTransform } from "./memoize.js";

describe("memoizeTransform", () => {
  it("answers repeated values from the cache with the transformer's own output", () => {
    let calls = 0;
    const f = memoizeTransform((v) => {
      calls++;
      return v === "none" ? null : `t(${v})`;
    });
    const values = Array.from({ length: 1000 }, (_, i) => `fk-${i % 10}`).concat(["none", "none"]);
    const out = values.map(f);
    expect(out.slice(0, 3)).toEqual(["t(fk-0)", "t(fk-1)", "t(fk-2)"]);
    expect(out.slice(-2)).toEqual([null, null]);
    expect(calls).toBe(11);
    expect(f.hits()).toBe(991);
  });

  it("switches itself off on distinct values, and keeps transforming them", () => {
    let calls = 0;
    const f = memoizeTransform(
      (v) => {
        calls++;
        return v.toUpperCase();
      },
      { sample: 100 },
    );
    for (let i = 0; i < 250; i++) expect(f(`v${i}`)).toBe(`V${i}`);
    expect(f.active()).toBe(false);
    expect(f("v1")).toBe("V1");
    expect(calls).toBe(251);
  });

  it("stays bounded: the cache empties when full", () => {
    let calls = 0;
    const f = memoizeTransform(
      (v) => {
        calls++;
        return v;
      },
      { maxEntries: 4, minHitRate: 0 },
    );
    for (const v of ["a", "b", "c", "d", "e", "a"]) f(v);
    // "e" emptied the cache, so "a" is transformed again.
    expect(calls).toBe(6);
  });

  it("does not cache a value the transformer refuses", () => {
    let calls = 0;
    const f = memoizeTransform(() => {
      calls++;
      throw new Error("no");
    });
    expect(() => f("x")).toThrow("no");
    expect(() => f("x")).toThrow("no");
    expect(calls).toBe(2);
  });
});

describe("memoizeTransform on long values", () => {
  it("does not keep values longer than maxValueLength", () => {
    let calls = 0;
    const f = memoizeTransform(
      (v) => {
        calls++;
        return v.length.toString();
      },
      { maxValueLength: 8 },
    );
    for (let i = 0; i < 3; i++) f("x".repeat(20));
    for (let i = 0; i < 3; i++) f("short");
    expect(calls).toBe(4);
  });
});
