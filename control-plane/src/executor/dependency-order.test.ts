import { describe, expect, it } from "vitest";
import { inDependencyOrder } from "./dependency-order.js";
import type { EntityRunPlan } from "./run-context.js";

const entity = (name: string, level: number, dependsOn?: string[]): EntityRunPlan => ({
  entity: name,
  schema: "public",
  name,
  level,
  keyFields: ["id"],
  fields: ["id"],
  deferredFields: [],
  ...(dependsOn ? { dependsOn } : {}),
});

/** Runs the scheduler with tasks that finish when told to; records starts and ends. */
function harness(entities: EntityRunPlan[], limit: number) {
  const log: string[] = [];
  const finishers = new Map<string, (error?: Error) => void>();
  const running = inDependencyOrder(entities, limit, (e) => {
    log.push(`start ${e.entity}`);
    return new Promise<void>((resolve, reject) =>
      finishers.set(e.entity, (error) => {
        log.push(`end ${e.entity}`);
        if (error) reject(error);
        else resolve();
      }),
    );
  });
  const tick = () => new Promise((resolve) => setImmediate(resolve));
  return {
    log,
    finish: async (name: string, error?: Error) => {
      finishers.get(name)!(error);
      await tick();
    },
    running,
    tick,
  };
}

describe("inDependencyOrder", () => {
  it("starts an entity as soon as the entities it depends on are done, not when their whole level is", async () => {
    const h = harness(
      [entity("a", 0), entity("slow", 0), entity("b", 1, ["a"]), entity("c", 2, ["b", "slow"])],
      4,
    );
    await h.tick();
    expect(h.log).toEqual(["start a", "start slow"]);
    await h.finish("a");
    expect(h.log).toEqual(["start a", "start slow", "end a", "start b"]);
    await h.finish("b");
    expect(h.log.at(-1)).toBe("end b");
    await h.finish("slow");
    expect(h.log.at(-1)).toBe("start c");
    await h.finish("c");
    await h.running;
  });

  it("keeps at most `limit` running, in level then name order among the ready ones", async () => {
    const h = harness([entity("z", 0, []), entity("y", 0, []), entity("x", 1, [])], 2);
    await h.tick();
    expect(h.log).toEqual(["start y", "start z"]);
    await h.finish("z");
    expect(h.log.at(-1)).toBe("start x");
    await h.finish("y");
    await h.finish("x");
    await h.running;
  });

  it("waits for every lower level when the plan has no dependsOn (plans stored before it)", async () => {
    const h = harness([entity("a", 0), entity("b", 0), entity("c", 1)], 4);
    await h.tick();
    await h.finish("a");
    expect(h.log).not.toContain("start c");
    await h.finish("b");
    expect(h.log.at(-1)).toBe("start c");
    await h.finish("c");
    await h.running;
  });

  it("starts nothing more after a failure and rethrows it once the running ones stopped", async () => {
    const h = harness([entity("a", 0, []), entity("b", 0, []), entity("c", 1, ["a"])], 4);
    const outcome = h.running.then(
      () => "resolved",
      (error: Error) => error.message,
    );
    await h.tick();
    await h.finish("a", new Error("boom"));
    expect(h.log).not.toContain("start c");
    await h.finish("b");
    expect(await outcome).toBe("boom");
  });
});
