/**
 * Reconcile by hash ranges (reconcile.ts) against the fake agent: only the
 * keys of ranges whose digests differ are read, target-only keys are deleted
 * wherever they are (first and last open ranges, a side with no rows), equal
 * sides read no key at all, a transformed key is skipped, and an agent that
 * cannot digest gets the key-by-key comparison.
 */
import { DrayError, silentLogger } from "@dray/common";
import { describe, expect, it } from "vitest";
import { compileExecutorOptions } from "../src/executor/executor-options.js";
import { reconcileEntity } from "../src/executor/reconcile.js";
import type { EntityRunPlan, ErrorEntry, RunContext, StageEntry } from "../src/executor/run-context.js";
import { FakeAgent, type FakeRow } from "./fake-agent.js";

const ENTITY = "public.t";
const PLAN: EntityRunPlan = {
  entity: ENTITY,
  schema: "public",
  name: "t",
  level: 0,
  keyFields: ["id"],
  fields: ["id", "v"],
  deferredFields: [],
};

const row = (id: number): FakeRow => ({ key: [String(id)], values: { v: `row ${id}` } });

/** A fake agent whose source holds `sourceIds` and target `targetIds` of the one entity. */
function agentWith(sourceIds: readonly number[], targetIds: readonly number[]): FakeAgent {
  const agent = new FakeAgent();
  agent.targetEnvironmentId = "tgt";
  agent.source.set(ENTITY, [...sourceIds].sort((a, b) => a - b).map(row));
  agent.target.set(ENTITY, new Map(targetIds.map((id) => [String(id), row(id)])));
  return agent;
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function context(agent: FakeAgent) {
  const stages: StageEntry[] = [];
  const errors: ErrorEntry[] = [];
  const ctx = {
    agents: agent,
    logger: silentLogger,
    settings: {
      sourceEnvironmentId: "src",
      targetEnvironmentId: "tgt",
      batchBytes: 4_000_000,
      maxRetriesPerBatch: 2,
    },
    options: compileExecutorOptions({ firstRetryDelayMs: 5, maxRetryDelayMs: 20 }),
    signal: new AbortController().signal,
    journal: {
      stage: async (e: StageEntry) => void stages.push(e),
      error: async (e: ErrorEntry) => void errors.push(e),
    },
  } as unknown as RunContext;
  return { ctx, stages, errors };
}

const never = () => new AbortController().signal;

describe("reconcile by hash ranges", () => {
  it("deletes exactly the target-only keys and reads only the keys of differing small ranges", async () => {
    const all = range(1, 120_000);
    const gone = new Set([1, 50_000, 50_001, 77_777, 120_000]);
    const agent = agentWith(
      all.filter((id) => !gone.has(id)),
      [...all, 130_000],
    );
    const { ctx, stages } = context(agent);
    expect(await reconcileEntity(ctx, PLAN, never())).toBe(6);
    expect(agent.targetKeys(ENTITY)).toEqual(all.filter((id) => !gone.has(id)).map(String));
    // Both sides hold 120,000 keys; only ranges of a few thousand around each difference are read.
    expect(agent.rowsRead).toBeGreaterThan(0);
    expect(agent.rowsRead).toBeLessThan(6 * 2 * 3_000);
    expect(agent.digests[0]).toMatchObject({
      environmentId: "src",
      request: { after: null, until: null, splitEvery: 50_000, boundaries: [] },
    });
    expect(agent.digests[1]).toMatchObject({
      environmentId: "tgt",
      // The source's every 50,000th key, after its deletes.
      request: { splitEvery: 0, boundaries: [["50003"], ["100004"]] },
    });
    const [stage] = stages;
    expect(stage?.code).toBe("reconcile");
    expect(stage?.description).toMatch(
      /^Reconcile of public\.t: 6 target rows deleted \(.*\d+ key ranges compared, \d+ differed\)$/,
    );
    console.info(
      `reconcile: ${agent.rowsRead} keys read, ${agent.digests.length} digests: ${stage?.description}`,
    );
    // A second pass finds nothing to do and reads no key.
    const before = agent.rowsRead;
    const again = context(agent);
    expect(await reconcileEntity(again.ctx, PLAN, never())).toBe(0);
    expect(agent.rowsRead).toBe(before);
    expect(again.stages[0]?.description).toMatch(
      /: 0 target rows deleted \(.*3 key ranges compared, 0 differed\)/,
    );
  });

  it("splits by the target's keys when the source has none in a large range", async () => {
    const agent = agentWith(range(1, 1_000), range(1, 40_000));
    const { ctx } = context(agent);
    expect(await reconcileEntity(ctx, PLAN, never())).toBe(39_000);
    expect(agent.targetKeys(ENTITY)).toEqual(range(1, 1_000).map(String));
    expect(agent.digests.some((d) => d.environmentId === "tgt" && d.request.splitEvery > 0)).toBe(true);
  });

  it("empties the target of an entity whose source is empty", async () => {
    const agent = agentWith([], range(1, 25_000));
    const { ctx } = context(agent);
    expect(await reconcileEntity(ctx, PLAN, never())).toBe(25_000);
    expect(agent.targetKeys(ENTITY)).toEqual([]);
  });

  it("skips an entity whose key is transformed, with a warning", async () => {
    const agent = agentWith(range(1, 10), range(1, 20));
    const { ctx, errors } = context(agent);
    const plan = {
      ...PLAN,
      transforms: [{ field: "id", transformer: "hash", options: {} }],
    } as EntityRunPlan;
    expect(await reconcileEntity(ctx, plan, never())).toBe(0);
    expect(errors[0]).toMatchObject({ severity: "warning", code: "reconcile_skipped" });
    expect(agent.digests).toEqual([]);
    expect(agent.targetKeys(ENTITY)).toHaveLength(20);
  });

  it("compares key by key when an agent cannot digest", async () => {
    const agent = agentWith(range(2, 30_000), range(1, 30_000));
    agent.onDigest = () => {
      throw new DrayError("unimplemented", "the task has no kind this agent knows: upgrade the agent");
    };
    const { ctx, stages } = context(agent);
    expect(await reconcileEntity(ctx, PLAN, never())).toBe(1);
    expect(agent.targetKeys(ENTITY)[0]).toBe("2");
    expect(agent.rowsRead).toBe(2 * 29_999 + 1);
    expect(stages[0]?.description).toMatch(/: 1 target rows deleted/);
  });
});
