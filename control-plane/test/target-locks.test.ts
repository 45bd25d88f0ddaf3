/**
 * Target entity locks, against a real store: a run takes the write lock of
 * every entity it copies into the target environment, all of them or none.
 * While another queued or running execution holds one, the run holds nothing,
 * says once in its stage log whom it waits for, and retries until it gets
 * them all or is aborted. A lock left by an execution that has ended is taken
 * over at once, and releasing a run's locks removes its rows.
 */
import { silentLogger } from "@dray/common";
import { and, asc, eq } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import type { EntityRunPlan, RunContext, StageEntry } from "../src/executor/run-context.js";
import { acquireTargetLocks, releaseTargetLocks } from "../src/executor/target-locks.js";
import { type Db, executions, targetEntityLocks } from "../src/store/index.js";
import { useTestStore } from "./api-test-harness.js";
import { type SeededOrganisation, seedOrganisation, seedRunningExecution } from "./execution-fixtures.js";

const testStore = useTestStore();
let db: Db;
beforeAll(() => {
  db = testStore.db;
});

/** The bits of an entity plan the locks do not read, filled in. */
const entityPlan = (entity: string): EntityRunPlan => {
  const [schema = "public", name = entity] = entity.split(".");
  return { entity, schema, name, level: 0, keyFields: ["id"], fields: ["id"], deferredFields: [] };
};

/**
 * A run context of `executionId` writing `entities` into the organisation's
 * target environment, with a journal that records its stage entries. Only
 * what the locks read is real; the rest is cast.
 */
function context(org: SeededOrganisation, executionId: string, entities: string[]) {
  const stages: StageEntry[] = [];
  const controller = new AbortController();
  const ctx = {
    db,
    logger: silentLogger,
    executionId,
    organisationId: org.organisationId,
    settings: { targetEnvironmentId: org.targetEnvironmentId, sourceEnvironmentId: org.sourceEnvironmentId },
    plan: {
      levels: [entities],
      entities: entities.map(entityPlan),
      sourcePlatform: "postgres",
      targetPlatform: "postgres",
      sourceName: "source",
      targetName: "warehouse",
    },
    signal: controller.signal,
    journal: {
      stage: async (e: StageEntry) => void stages.push(e),
      error: async () => {},
      errors: async () => {},
      status: async () => {},
      progress: async () => {},
      flush: async () => {},
    },
  } as unknown as RunContext;
  return { ctx, stages, controller };
}

/** The lock rows of the target environment, as [entity, executionId], in entity order. */
async function locks(environmentId: string): Promise<[string, string][]> {
  const rows = await db
    .select({ entity: targetEntityLocks.entity, executionId: targetEntityLocks.executionId })
    .from(targetEntityLocks)
    .where(eq(targetEntityLocks.environmentId, environmentId))
    .orderBy(asc(targetEntityLocks.entity));
  return rows.map((r) => [r.entity, r.executionId]);
}

/** The entities `executionId` holds a lock on in the environment. */
async function heldBy(environmentId: string, executionId: string): Promise<string[]> {
  const rows = await db
    .select({ entity: targetEntityLocks.entity })
    .from(targetEntityLocks)
    .where(
      and(eq(targetEntityLocks.environmentId, environmentId), eq(targetEntityLocks.executionId, executionId)),
    )
    .orderBy(asc(targetEntityLocks.entity));
  return rows.map((r) => r.entity);
}

/** A promise with a flag saying whether it has settled (and how). */
function track<T>(promise: Promise<T>) {
  const state: { settled: boolean; error: unknown } = { settled: false, error: undefined };
  const done = promise.then(
    () => {
      state.settled = true;
    },
    (error: unknown) => {
      state.settled = true;
      state.error = error;
      throw error;
    },
  );
  // The test awaits `done` itself; this keeps an early rejection from counting as unhandled.
  done.catch(() => {});
  return { state, done };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves once `fn` is true, checked every few ms; fails after `ms`. */
async function until(fn: () => boolean, ms = 3_000) {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await pause(5);
  }
}

const ABC = ["public.c", "public.a", "public.b"];

/** An organisation with two running executions of the same target environment. */
async function twoRuns() {
  const org = await seedOrganisation(db);
  const a = await seedRunningExecution(db, org, { entities: ["public.b"] });
  const b = await seedRunningExecution(db, org, { entities: ABC });
  return { org, a: a.executionId, b: b.executionId, target: org.targetEnvironmentId };
}

describe("target entity locks", () => {
  it("takes a lock on every entity of the plan, again without harm, and releases them all", async () => {
    const org = await seedOrganisation(db);
    const { executionId } = await seedRunningExecution(db, org, { entities: ABC });
    const { ctx, stages } = context(org, executionId, ABC);

    await acquireTargetLocks(ctx);
    expect(await locks(org.targetEnvironmentId)).toEqual([
      ["public.a", executionId],
      ["public.b", executionId],
      ["public.c", executionId],
    ]);

    // Its own locks do not block it: taking them again succeeds at once and changes nothing.
    await acquireTargetLocks(ctx);
    expect(await locks(org.targetEnvironmentId)).toEqual([
      ["public.a", executionId],
      ["public.b", executionId],
      ["public.c", executionId],
    ]);
    expect(stages).toEqual([]);

    await releaseTargetLocks(ctx);
    expect(await locks(org.targetEnvironmentId)).toEqual([]);
  });

  it("takes all the locks or none: waits, holding nothing, while a running execution holds one, and says so once", async () => {
    const { org, a, b, target } = await twoRuns();
    await acquireTargetLocks(context(org, a, ["public.b"]).ctx);
    expect(await locks(target)).toEqual([["public.b", a]]);

    const runB = context(org, b, ABC);
    const acquiring = track(acquireTargetLocks(runB.ctx));

    // Several retries (every 500 ms): still waiting, holding none of a, b or c, and one stage entry only.
    const started = Date.now();
    while (Date.now() - started < 1_200) {
      await pause(100);
      expect(acquiring.state.settled).toBe(false);
      expect(await heldBy(target, b)).toEqual([]);
    }
    expect(await locks(target)).toEqual([["public.b", a]]);
    expect(runB.stages).toEqual([
      {
        processName: "JobRunner",
        state: "processing",
        code: "waiting",
        description: `Waiting for execution ${a}, which is writing public.b in warehouse`,
      },
    ]);

    // A finishes (its lock row stays behind): B takes over public.b and gets all three.
    await db.update(executions).set({ status: "completed" }).where(eq(executions.id, a));
    await acquiring.done;
    expect(await locks(target)).toEqual([
      ["public.a", b],
      ["public.b", b],
      ["public.c", b],
    ]);
    expect(runB.stages).toHaveLength(1);
  });

  it("takes over at once, without waiting, a lock left by an execution that failed", async () => {
    const { org, a, b, target } = await twoRuns();
    await acquireTargetLocks(context(org, a, ["public.b"]).ctx);
    await db.update(executions).set({ status: "failed" }).where(eq(executions.id, a));

    const runB = context(org, b, ABC);
    const started = Date.now();
    await acquireTargetLocks(runB.ctx);
    // No retry happened (one would have slept 500 ms).
    expect(Date.now() - started).toBeLessThan(500);
    expect(runB.stages).toEqual([]);
    expect(await locks(target)).toEqual([
      ["public.a", b],
      ["public.b", b],
      ["public.c", b],
    ]);
  });

  it("stops waiting when the run is aborted, holding nothing", async () => {
    const { org, a, b, target } = await twoRuns();
    await acquireTargetLocks(context(org, a, ["public.b"]).ctx);

    const runB = context(org, b, ABC);
    const acquiring = track(acquireTargetLocks(runB.ctx));
    await until(() => runB.stages.length === 1);
    expect(acquiring.state.settled).toBe(false);

    runB.controller.abort();
    await expect(acquiring.done).rejects.toThrow();
    expect(await heldBy(target, b)).toEqual([]);
    expect(await locks(target)).toEqual([["public.b", a]]);

    // Aborted for good: A ending later does not make B take anything.
    await db.update(executions).set({ status: "completed" }).where(eq(executions.id, a));
    await pause(600);
    expect(await heldBy(target, b)).toEqual([]);
  });
});
