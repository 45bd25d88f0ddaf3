import { describe, expect, it } from "vitest";
import { type BisectSteps, bisectWrite } from "./isolation.js";

class DataError extends Error {}

/** A fake table: rows are keys; `bad` keys always fail; a key written twice fails (unique). */
function fakeTable(rows: string[], bad: Set<string>) {
  const stored = new Set<string>();
  const attempts: [number, number][] = [];
  const steps: BisectSteps<string> = {
    async write(first, last) {
      attempts.push([first, last]);
      const slice = rows.slice(first - 1, last);
      const seen = new Set(stored);
      for (const key of slice) {
        if (bad.has(key) || seen.has(key)) throw new DataError(`bad ${key}`);
        seen.add(key);
      }
      for (const key of slice) stored.add(key);
      return { created: slice.length, updated: 0 };
    },
    async reject(ordinal, error) {
      return `${rows[ordinal - 1]}:${(error as Error).message}`;
    },
    isDataError: (error) => error instanceof DataError,
  };
  return { steps, stored, attempts };
}

describe("bisectWrite", () => {
  it("writes a clean batch in one attempt", async () => {
    const rows = Array.from({ length: 100 }, (_, i) => `k${i}`);
    const { steps, attempts } = fakeTable(rows, new Set());
    expect(await bisectWrite(1, 100, steps)).toEqual({ created: 100, updated: 0, rejected: [] });
    expect(attempts).toEqual([[1, 100]]);
  });

  it("isolates each bad row, keeps every good one, reports in order", async () => {
    const rows = Array.from({ length: 100 }, (_, i) => `k${i + 1}`);
    const { steps, stored, attempts } = fakeTable(rows, new Set(["k1", "k50", "k100", "k51"]));
    const result = await bisectWrite(1, 100, steps);
    expect(result.created).toBe(96);
    expect(result.rejected).toEqual(["k1:bad k1", "k50:bad k50", "k51:bad k51", "k100:bad k100"]);
    expect(stored.size).toBe(96);
    expect(attempts.length).toBeLessThan(2 * 4 * Math.ceil(Math.log2(100)) + 2);
  });

  it("lets the earlier of two duplicates win", async () => {
    const rows = ["a", "b", "c", "a", "d"];
    const { steps, stored } = fakeTable(rows, new Set());
    const result = await bisectWrite(1, 5, steps);
    expect(result.rejected).toEqual(["a:bad a"]);
    expect([...stored].sort()).toEqual(["a", "b", "c", "d"]);
  });

  it("stops at the first error that is not about data", async () => {
    const steps: BisectSteps<string> = {
      write: async () => {
        throw new Error("connection lost");
      },
      reject: async () => "never",
      isDataError: (error) => error instanceof DataError,
    };
    await expect(bisectWrite(1, 10, steps)).rejects.toThrow("connection lost");
  });

  it("does nothing for an empty range", async () => {
    const { steps, attempts } = fakeTable([], new Set());
    expect(await bisectWrite(1, 0, steps)).toEqual({ created: 0, updated: 0, rejected: [] });
    expect(attempts).toEqual([]);
  });
});
