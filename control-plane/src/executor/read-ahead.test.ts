import { describe, expect, it } from "vitest";
import type { ReadResult } from "./agent-port.js";
import { ReadAhead } from "./read-ahead.js";
import type { EntityRunPlan } from "./run-context.js";

const entity = (name: string, level: number): EntityRunPlan => ({
  entity: name,
  schema: "public",
  name,
  level,
  keyFields: ["id"],
  fields: ["id"],
  deferredFields: [],
});

const page = (entity: string) => ({ entity }) as unknown as ReadResult;

/** A ReadAhead whose reads are recorded and answered at once (or fail for the names in `failing`). */
function harness(entities: EntityRunPlan[], limit: number, failing: string[] = []) {
  const reads: string[] = [];
  const ahead = new ReadAhead(entities, limit, (e) => {
    reads.push(e.entity);
    return failing.includes(e.entity)
      ? Promise.reject(new Error(`${e.entity} failed`))
      : Promise.resolve(page(e.entity));
  });
  return { ahead, reads };
}

const chain = [entity("c", 2), entity("a2", 0), entity("b", 1), entity("a1", 0), entity("d", 3)];

describe("ReadAhead", () => {
  it("reads first pages in the order entities start (level, then name), at most `limit` held", () => {
    const { reads } = harness(chain, 3);
    expect(reads).toEqual(["a1", "a2", "b"]);
  });

  it("hands over a page read ahead once, and reads the next entity's in its place", async () => {
    const { ahead, reads } = harness(chain, 2);
    expect(reads).toEqual(["a1", "a2"]);
    await expect(ahead.take("a1")).resolves.toEqual(page("a1"));
    expect(reads).toEqual(["a1", "a2", "b"]);
    expect(ahead.take("a1")).toBeUndefined();
    await expect(ahead.take("b")).resolves.toEqual(page("b"));
    expect(reads).toEqual(["a1", "a2", "b", "c"]);
  });

  it("never reads ahead for an entity that started without a page (it read its own)", () => {
    const { ahead, reads } = harness(chain, 1);
    expect(ahead.take("c")).toBeUndefined();
    expect(ahead.take("a1")).toBeDefined();
    expect(ahead.take("a2")).toBeDefined();
    expect(ahead.take("b")).toBeDefined();
    expect(reads).toEqual(["a1", "a2", "b", "d"]);
  });

  it("reads nothing with a limit of 0, and nothing more once closed", () => {
    expect(harness(chain, 0).reads).toEqual([]);
    const { ahead, reads } = harness(chain, 2);
    ahead.close();
    expect(ahead.take("a1")).toBeUndefined();
    expect(reads).toEqual(["a1", "a2"]);
  });

  it("hands over a failed read as a rejection for its entity, and none unhandled for pages never taken", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      const { ahead } = harness(chain, 3, ["a1", "b"]);
      await expect(ahead.take("a1")).rejects.toThrow("a1 failed");
      ahead.close();
      await new Promise((resolve) => setTimeout(resolve, 10));
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });
});
