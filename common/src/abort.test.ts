import { describe, expect, it } from "vitest";
import { settleWithin } from "./abort.js";

describe("settleWithin", () => {
  it("resolves false once every promise settled, rejections included", async () => {
    const started = Date.now();
    const timedOut = await settleWithin([Promise.resolve(1), Promise.reject(new Error("no"))], 5_000);
    expect(timedOut).toBe(false);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it("resolves true when time runs out first", async () => {
    expect(await settleWithin([new Promise(() => {})], 20)).toBe(true);
  });
});
