/**
 * Preflight's counts, against a real store and an in-process agent: the
 * entities a pipeline names are counted while both schemas are described, the
 * describes ask for planner statistics only, and a count that failed early is
 * taken again in the plan's terms.
 */
import { silentLogger } from "@dray/common";
import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import type { CallOptions } from "../src/executor/agent-port.js";
import { compileExecutorOptions } from "../src/executor/executor-options.js";
import { preflight } from "../src/executor/preflight.js";
import type { PipelineSettings } from "../src/executor/run-context.js";
import { environments } from "../src/store/index.js";
import { sampleSnapshot, useTestStore } from "./api-test-harness.js";
import { seedOrganisation } from "./execution-fixtures.js";
import { FakeAgent } from "./fake-agent.js";

const store = useTestStore();

/** Two entities, public.orders → public.customers. */
const SCHEMA = sampleSnapshot("fp");

/** The fake agent, describing SCHEMA once `release()` is called, and noting when each count was asked for. */
class DescribingAgent extends FakeAgent {
  readonly events: string[] = [];
  readonly describeOptions: (CallOptions & { statisticsOnly?: boolean })[] = [];
  failFirstCountOf: string | undefined;
  private released!: () => void;
  private readonly describable = new Promise<void>((resolve) => {
    this.released = resolve;
  });

  release(): void {
    this.released();
  }

  override async describe(
    _environmentId: string,
    options: CallOptions & { statisticsOnly?: boolean },
  ): Promise<never> {
    this.describeOptions.push(options);
    await this.describable;
    this.events.push("described");
    return structuredClone(SCHEMA) as never;
  }

  override async count(environmentId: string, entity: { schema: string; name: string }): Promise<number> {
    const name = `${entity.schema}.${entity.name}`;
    this.events.push(`count ${name}`);
    if (this.failFirstCountOf === name) {
      this.failFirstCountOf = undefined;
      throw new Error(`no such table ${name} (first try)`);
    }
    return super.count(environmentId, entity);
  }
}

async function run(agent: DescribingAgent, entities: string[], monthlyRecordLimit = 1_000_000) {
  const db = store.db;
  const org = await seedOrganisation(db, monthlyRecordLimit);
  // Both agents reported just now.
  await db
    .update(environments)
    .set({ lastHeartbeatAt: new Date() })
    .where(eq(environments.organisationId, org.organisationId));
  const settings = {
    name: "p",
    sourceEnvironmentId: org.sourceEnvironmentId,
    targetEnvironmentId: org.targetEnvironmentId,
    action: "copy",
    writeStrategy: "merge",
    entities,
    batchSize: 100,
    batchBytes: 1_000_000,
    maxRetriesPerBatch: 1,
    stopOnError: true,
    entityConcurrency: 2,
    targetTriggers: "off",
    loadOrder: "dependencies",
  } as PipelineSettings;
  const journal = {
    stage: async () => {},
    error: async () => {},
    errors: async () => {},
    status: async () => {},
    progress: async () => {},
    flush: async () => {},
  };
  return preflight(
    {
      db,
      agents: agent,
      organisationId: org.organisationId,
      signal: new AbortController().signal,
      journal,
      logger: silentLogger,
      options: compileExecutorOptions({}),
    },
    settings,
    false,
  );
}

describe("preflight counts", () => {
  it("counts the named entities while the schemas are described, once each, and describes with statistics only", async () => {
    const agent = new DescribingAgent();
    agent.seed("public.customers", 30);
    agent.seed("public.orders", 120);
    const planned = run(agent, ["public.orders", "public.customers"]);
    // Both counts are asked for while neither describe has answered.
    while (agent.describeOptions.length < 2) await new Promise((r) => setTimeout(r, 2));
    await new Promise((r) => setTimeout(r, 20));
    expect(agent.events).toEqual(["count public.orders", "count public.customers"]);
    agent.release();
    const { plan, totals } = await planned;
    expect(plan.entities.map((e) => e.entity)).toEqual(["public.customers", "public.orders"]);
    expect(Object.fromEntries(totals)).toEqual({ "public.customers": 30, "public.orders": 120 });
    expect(agent.events.filter((e) => e.startsWith("count"))).toHaveLength(2);
    expect(agent.describeOptions.map((o) => o.statisticsOnly)).toEqual([true, true]);
  });

  it("counts an entity again when its early count failed", async () => {
    const agent = new DescribingAgent();
    agent.seed("public.customers", 7);
    agent.seed("public.orders", 9);
    agent.failFirstCountOf = "public.orders";
    agent.release();
    const { totals } = await run(agent, ["public.customers", "public.orders"]);
    expect(Object.fromEntries(totals)).toEqual({ "public.customers": 7, "public.orders": 9 });
    expect(agent.events.filter((e) => e === "count public.orders")).toHaveLength(2);
  });

  it("counts every named entity in one task of the source agent", async () => {
    const agent = new DescribingAgent();
    agent.seed("public.customers", 4);
    agent.seed("public.orders", 5);
    const asked: string[][] = [];
    const countMany = agent.countMany.bind(agent);
    agent.countMany = async (environmentId, entities) => {
      asked.push(entities.map((e) => `${e.schema}.${e.name}`));
      return countMany(environmentId, entities);
    };
    let single = 0;
    const count = agent.count.bind(agent);
    agent.count = async (environmentId, entity) => {
      single++;
      return count(environmentId, entity);
    };
    agent.release();
    const { totals } = await run(agent, ["public.orders", "public.customers"]);
    expect(Object.fromEntries(totals)).toEqual({ "public.customers": 4, "public.orders": 5 });
    expect(asked).toEqual([["public.orders", "public.customers"]]);
    // The fake counts each through count(): two in all means none was counted again outside countMany.
    expect(single).toBe(2);
  });

  it("counts one by one when the source agent predates counting several at once", async () => {
    const agent = new DescribingAgent();
    agent.seed("public.customers", 11);
    agent.seed("public.orders", 12);
    agent.countMany = async () => undefined;
    agent.release();
    const { totals } = await run(agent, ["public.orders", "public.customers"]);
    expect(Object.fromEntries(totals)).toEqual({ "public.customers": 11, "public.orders": 12 });
    expect(agent.events.filter((e) => e.startsWith("count"))).toEqual([
      "count public.orders",
      "count public.customers",
    ]);
  });

  it("takes a large table's estimate when the most rows it can hold fit the limit, and says so in the plan", async () => {
    const agent = new DescribingAgent();
    agent.seed("public.customers", 3);
    agent.seed("public.orders", 8);
    agent.estimateAs("public.orders", 1_000, 5_000);
    agent.release();
    const { plan, totals } = await run(agent, ["public.orders", "public.customers"], 10_000);
    expect(Object.fromEntries(totals)).toEqual({ "public.customers": 3, "public.orders": 1_000 });
    expect(plan.entities.find((e) => e.entity === "public.orders")?.totalEstimated).toBe(true);
    expect(plan.entities.find((e) => e.entity === "public.customers")?.totalEstimated).toBeUndefined();
    expect(agent.events.filter((e) => e.startsWith("count"))).toEqual(["count public.customers"]);
  });

  it("counts a large table exactly when the most rows it can hold could cross the limit", async () => {
    const agent = new DescribingAgent();
    agent.seed("public.customers", 3);
    agent.seed("public.orders", 8);
    agent.estimateAs("public.orders", 1_000, 5_000);
    agent.release();
    // 5,003 could not fit 4,000; the exact 11 do.
    const { plan, totals } = await run(agent, ["public.orders", "public.customers"], 4_000);
    expect(Object.fromEntries(totals)).toEqual({ "public.customers": 3, "public.orders": 8 });
    expect(plan.entities.some((e) => e.totalEstimated)).toBe(false);
    expect(agent.events.filter((e) => e === "count public.orders")).toHaveLength(1);
  });

  it("refuses with the exact count when even that crosses the limit", async () => {
    const agent = new DescribingAgent();
    agent.seed("public.customers", 3);
    agent.seed("public.orders", 8);
    agent.estimateAs("public.orders", 1_000, 5_000);
    agent.release();
    await expect(run(agent, ["public.orders", "public.customers"], 10)).rejects.toMatchObject({
      reasonCode: "monthly_record_limit",
      message: expect.stringContaining("this run needs 11"),
    });
  });
});
