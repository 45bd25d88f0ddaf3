/**
 * The executor's core — batch loop, write window, settlement, resume — run in
 * process against a fake agent (fake-agent.ts) and a real store: ordering and
 * the contiguous checkpoint, retries, stopOnError both ways, cancel at each
 * phase, lease loss and hand-over, resume with gaps and sealed ids, and the
 * monthly limit at a batch boundary.
 */
import { DrayError, silentLogger } from "@dray/common";
import { and, asc, eq } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import type { ReadRequest, WriteRequest } from "../src/executor/agent-port.js";
import { readPage } from "../src/executor/batch-read.js";
import { copyEntity } from "../src/executor/entity-copier.js";
import { compileExecutorOptions, type ExecutorTuning } from "../src/executor/executor-options.js";
import type { EntityCounters } from "../src/executor/progress-math.js";
import type {
  EntityRunPlan,
  ErrorEntry,
  PipelineSettings,
  RunContext,
  StageEntry,
} from "../src/executor/run-context.js";
import { AgentUnavailable, BatchFailed, RecordLimitReached, RunAborted } from "../src/executor/run-errors.js";
import { runExecution } from "../src/executor/run-execution.js";
import { openRunSnapshot } from "../src/executor/run-snapshot.js";
import { moveSequences } from "../src/executor/target-tasks.js";
import { type Db, executionBatches, executionEntities, executions, usage } from "../src/store/index.js";
import { useTestStore } from "./api-test-harness.js";
import { seedOrganisation, seedRunningExecution } from "./execution-fixtures.js";
import { awayError, FakeAgent, transientError } from "./fake-agent.js";

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

const testStore = useTestStore();
let db: Db;
beforeAll(() => {
  db = testStore.db;
});

/** An organisation, two environments, a pipeline and a running execution of the one entity. */
async function execution(limit = 1_000_000) {
  const org = await seedOrganisation(db, limit);
  const { executionId } = await seedRunningExecution(db, org, { entities: [ENTITY], withEntityRows: true });
  return {
    organisationId: org.organisationId,
    executionId,
    source: org.sourceEnvironmentId,
    target: org.targetEnvironmentId,
  };
}

type Fixture = Awaited<ReturnType<typeof execution>>;

/** A run context over the fake agent, with a journal that records what it is given. */
function context(
  f: Fixture,
  agent: FakeAgent,
  over: { settings?: Partial<PipelineSettings>; tuning?: ExecutorTuning; controller?: AbortController } = {},
) {
  const stages: StageEntry[] = [];
  const errors: ErrorEntry[] = [];
  const counters = new Map<string, EntityCounters>([
    [ENTITY, { total: 0, processed: 0, created: 0, updated: 0, skipped: 0, failed: 0 }],
  ]);
  const controller = over.controller ?? new AbortController();
  const settings: PipelineSettings = {
    name: "p",
    sourceEnvironmentId: f.source,
    targetEnvironmentId: f.target,
    action: "copy",
    writeStrategy: "merge",
    entities: [ENTITY],
    batchSize: 100,
    batchBytes: 4_000_000,
    maxRetriesPerBatch: 2,
    stopOnError: true,
    entityConcurrency: 1,
    targetTriggers: "off",
    loadOrder: "dependencies",
    ...over.settings,
  };
  const ctx: RunContext = {
    db,
    bus: undefined as never,
    agents: agent,
    logger: silentLogger,
    executionId: f.executionId,
    organisationId: f.organisationId,
    pipelineToken: "pt",
    settings,
    plan: {
      levels: [[ENTITY]],
      entities: [PLAN],
      sourcePlatform: "postgres",
      targetPlatform: "postgres",
      sourceName: "source",
      targetName: "target",
    },
    signal: controller.signal,
    counters,
    onProgress: () => {},
    options: compileExecutorOptions({ firstRetryDelayMs: 5, maxRetryDelayMs: 20, ...over.tuning }),
    journal: {
      stage: async (e) => void stages.push(e),
      error: async (e) => void errors.push(e),
      errors: async (es) => void errors.push(...es),
      status: async () => {},
      progress: async () => {},
      flush: async () => {},
    },
  };
  return { ctx, stages, errors, counters: counters.get(ENTITY)!, controller };
}

async function batches(executionId: string) {
  return db
    .select()
    .from(executionBatches)
    .where(eq(executionBatches.executionId, executionId))
    .orderBy(asc(executionBatches.pass), asc(executionBatches.seq));
}

async function checkpoint(executionId: string) {
  const [row] = await db
    .select({ checkpoint: executionEntities.checkpoint })
    .from(executionEntities)
    .where(and(eq(executionEntities.executionId, executionId), eq(executionEntities.entity, ENTITY)));
  return row?.checkpoint ?? null;
}

const keys = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => String(from + i));

/** Resolves when `fn` returns true, checked every few ms. */
async function until(fn: () => boolean) {
  while (!fn()) await new Promise((r) => setTimeout(r, 2));
}

describe("the batch loop", () => {
  it("settles batches in order and moves the checkpoint over a contiguous run only, whatever order writes finish in", async () => {
    const f = await execution();
    const agent = new FakeAgent();
    agent.seed(ENTITY, 1_000);
    // Batch 1's write is held until batches 2 and 3 were sent: they finish before it, and must wait for it.
    const sent = (seq: number) =>
      agent.calls.some(
        (c) =>
          c.kind === "write" &&
          c.request.entity &&
          (c.request as { batchId: string }).batchId.endsWith(`:1:${seq}`),
      );
    agent.onWrite = async (req) => {
      if (req.batchId.endsWith(":1:1")) await until(() => sent(3));
    };
    const { ctx, counters } = context(f, agent, { tuning: { writesInFlight: 3 } });
    await copyEntity(ctx, PLAN, 1, undefined, true);
    expect(agent.targetKeys(ENTITY)).toEqual(keys(1, 1_000));
    const rows = await batches(f.executionId);
    expect(rows.map((b) => [b.seq, b.state])).toEqual(keys(1, 10).map((s) => [Number(s), "succeeded"]));
    expect(await checkpoint(f.executionId)).toEqual(["1000"]);
    expect(counters).toMatchObject({ created: 1_000, processed: 1_000, failed: 0 });
    // Writes named their predecessor, so the target committed them in order although later ones finished first.
    expect(agent.commits.map((id) => Number(id.split(":").pop()))).toEqual(keys(1, 10).map(Number));
    const named = agent.calls
      .filter((c) => c.kind === "write")
      .map((c) => c.request as { previousBatchId: string; batchId: string })
      .filter((w) => w.previousBatchId !== "");
    expect(named.map((w) => w.batchId.split(":").pop())).toEqual(expect.arrayContaining(["2", "3"]));
    for (const w of named)
      expect(Number(w.previousBatchId.split(":").pop())).toBe(Number(w.batchId.split(":").pop()) - 1);
  });

  it("starts from a first page read ahead: it is written as batch 1 and never read again", async () => {
    const f = await execution();
    const agent = new FakeAgent();
    agent.seed(ENTITY, 250);
    const { ctx, counters } = context(f, agent);
    const firstPage = readPage(ctx, PLAN, 1, { after: null });
    await firstPage;
    const readsBefore = agent.calls.filter((c) => c.kind === "read").length;
    await copyEntity(ctx, PLAN, 1, undefined, true, firstPage);
    expect(agent.targetKeys(ENTITY)).toEqual(keys(1, 250));
    expect(counters).toMatchObject({ created: 250, processed: 250 });
    // Without the page, the copy would read from the start again: here it reads only after the first page.
    const reads = agent.calls.filter((c) => c.kind === "read").slice(readsBefore);
    expect(reads.map((c) => (c.request as { after: readonly string[] | null }).after)).toEqual([
      ["100"],
      ["200"],
    ]);
    expect((await batches(f.executionId)).map((b) => b.cursorFrom)).toEqual([null, ["100"], ["200"]]);
  });

  it("retries a failing write with backoff and records its attempts", async () => {
    const f = await execution();
    const agent = new FakeAgent();
    agent.seed(ENTITY, 250);
    let failures = 0;
    agent.onWrite = (req) => {
      if (req.batchId.endsWith(":1:1") && failures++ < 2) throw transientError();
    };
    const { ctx, errors } = context(f, agent);
    await copyEntity(ctx, PLAN, 1, undefined, true);
    expect(agent.targetKeys(ENTITY)).toHaveLength(250);
    const rows = await batches(f.executionId);
    expect(rows[0]).toMatchObject({ state: "succeeded", attempts: 3 });
    expect(errors.filter((e) => e.severity === "warning" && /retrying/.test(e.message))).toHaveLength(2);
  });

  it("with stopOnError=true, fails the run at a batch that keeps failing and writes nothing after it", async () => {
    const f = await execution();
    const agent = new FakeAgent();
    agent.seed(ENTITY, 500);
    agent.onWrite = (req) => {
      if (req.batchId.endsWith(":1:2")) throw transientError("deadlock detected");
    };
    const { ctx } = context(f, agent, { tuning: { writesInFlight: 1 } });
    const error = await copyEntity(ctx, PLAN, 1, undefined, true).catch((e) => e);
    expect(error).toBeInstanceOf(BatchFailed);
    expect(error.message).toMatch(/batch 2 of public\.t failed after 3 attempt\(s\): deadlock detected/);
    expect(agent.targetKeys(ENTITY)).toEqual(keys(1, 100));
    const rows = await batches(f.executionId);
    expect(rows.map((b) => b.state)).toEqual(["succeeded", "failed"]);
    expect(await checkpoint(f.executionId)).toEqual(["100"]);
  });

  it("with stopOnError=false, skips the failing batch, counts its records failed and copies the rest", async () => {
    const f = await execution();
    const agent = new FakeAgent();
    agent.seed(ENTITY, 500);
    agent.onWrite = (req) => {
      if (req.batchId.endsWith(":1:2"))
        throw new DrayError("invalid_argument", "value too long", { retryable: false });
    };
    agent.rejectKeys.add("450");
    const { ctx, counters, errors } = context(f, agent, { settings: { stopOnError: false } });
    await copyEntity(ctx, PLAN, 1, undefined, true);
    expect(agent.targetKeys(ENTITY)).toEqual([...keys(1, 100), ...keys(201, 449), ...keys(451, 500)]);
    const rows = await batches(f.executionId);
    expect(rows.map((b) => b.state)).toEqual(["succeeded", "skipped", "succeeded", "succeeded", "succeeded"]);
    expect(counters).toMatchObject({ created: 399, failed: 100, skipped: 1, processed: 500 });
    expect(await checkpoint(f.executionId)).toEqual(["500"]);
    expect(errors.find((e) => e.recordKey?.[0] === "450")).toMatchObject({ code: "23505", entity: ENTITY });
  });
});

describe("cancel", () => {
  it("during a read: stops before any batch is reserved", async () => {
    const f = await execution();
    const agent = new FakeAgent();
    agent.seed(ENTITY, 300);
    const controller = new AbortController();
    agent.onRead = async (_req, call) => {
      if (call === 1) controller.abort(new RunAborted("cancel", "cancelled by test"));
    };
    const { ctx } = context(f, agent, { controller });
    await expect(copyEntity(ctx, PLAN, 1, undefined, true)).rejects.toBeInstanceOf(DrayError);
    expect(await batches(f.executionId)).toEqual([]);
    expect(agent.targetKeys(ENTITY)).toEqual([]);
  });

  it("during a write that had not committed: the fence seals its id and the batch is cancelled", async () => {
    const f = await execution();
    const agent = new FakeAgent();
    agent.seed(ENTITY, 300);
    const controller = new AbortController();
    agent.onWrite = async (req) => {
      if (!req.batchId.endsWith(":1:2")) return;
      controller.abort(new RunAborted("cancel", "cancelled by test"));
      throw new DrayError("cancelled", "write cancelled");
    };
    const { ctx } = context(f, agent, { controller, tuning: { writesInFlight: 1 } });
    await expect(copyEntity(ctx, PLAN, 1, undefined, true)).rejects.toBeInstanceOf(DrayError);
    const rows = await batches(f.executionId);
    expect(rows.map((b) => b.state)).toEqual(["succeeded", "cancelled"]);
    expect(agent.ledger.get(rows[1]!.batchId)?.state).toBe("sealed");
    expect(agent.targetKeys(ENTITY)).toEqual(keys(1, 100));
    expect(agent.calls.filter((c) => c.kind === "fence")).toHaveLength(1);
  });

  it("during a write that committed: the fence finds it committed and the batch counts", async () => {
    const f = await execution();
    const agent = new FakeAgent();
    agent.seed(ENTITY, 100);
    const controller = new AbortController();
    const { ctx, counters } = context(f, agent, { controller });
    const real = agent.writeBatch.bind(agent);
    agent.writeBatch = async (env, req, options) => {
      const result = await real(env, req, options);
      if (!req.fence) {
        controller.abort(new RunAborted("cancel", "cancelled by test"));
        throw new DrayError("cancelled", "the answer was lost");
      }
      return result;
    };
    await copyEntity(ctx, PLAN, 1, undefined, true).catch(() => {});
    const rows = await batches(f.executionId);
    expect(rows.map((b) => [b.state, b.created])).toEqual([["succeeded", 100]]);
    expect(counters.created).toBe(100);
  });

  it("while waiting for an agent that is away: stops at once", async () => {
    const f = await execution();
    const agent = new FakeAgent();
    agent.seed(ENTITY, 100);
    agent.disconnect(f.source);
    const controller = new AbortController();
    const { ctx } = context(f, agent, { controller, tuning: { agentAwayLimitMs: 60_000 } });
    const run = copyEntity(ctx, PLAN, 1, undefined, true);
    setTimeout(() => controller.abort(new RunAborted("cancel", "cancelled by test")), 20);
    const started = Date.now();
    await expect(run).rejects.toMatchObject({ code: "cancelled" });
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("an agent away longer than the limit fails the run with AgentUnavailable", async () => {
    const f = await execution();
    const agent = new FakeAgent();
    agent.seed(ENTITY, 100);
    agent.disconnect(f.target);
    const { ctx } = context(f, agent, { tuning: { agentAwayLimitMs: 30 } });
    const error = await copyEntity(ctx, PLAN, 1, undefined, true).catch((e) => e);
    expect(error).toBeInstanceOf(AgentUnavailable);
    expect(error.message).toMatch(/target environment "target"/);
  });

  it("an agent that comes back is waited for without counting an attempt", async () => {
    const f = await execution();
    const agent = new FakeAgent();
    agent.seed(ENTITY, 100);
    agent.disconnect(f.target);
    setTimeout(() => agent.reconnect(f.target), 30);
    const { ctx } = context(f, agent, { tuning: { agentAwayLimitMs: 10_000 } });
    await copyEntity(ctx, PLAN, 1, undefined, true);
    expect((await batches(f.executionId))[0]).toMatchObject({ state: "succeeded", attempts: 1 });
    expect(awayError("x").details).toMatchObject({ reason: "agent_away" });
  });
});

describe("hand-over and resume", () => {
  it("a lost lease leaves the batch in flight in progress, and the next owner finishes it under the same ledger id", async () => {
    const f = await execution();
    const agent = new FakeAgent();
    agent.seed(ENTITY, 500);
    const first = new AbortController();
    let gate: (() => void) | undefined;
    agent.onWrite = async (req) => {
      if (req.batchId.endsWith(":1:3") && !gate) {
        await new Promise<void>((resolve) => {
          gate = resolve;
        });
      }
    };
    const owner1 = context(f, agent, { controller: first, tuning: { writesInFlight: 1 } });
    const run1 = copyEntity(owner1.ctx, PLAN, 1, undefined, true).catch((e) => e);
    await until(() => gate !== undefined);
    first.abort(new RunAborted("lost", "the lease was lost"));
    gate!();
    await run1;
    const left = await batches(f.executionId);
    expect(left.map((b) => b.state)).toEqual(["succeeded", "succeeded", "in_progress"]);
    expect(agent.calls.filter((c) => c.kind === "fence")).toHaveLength(0);

    agent.onWrite = undefined;
    const owner2 = context(f, agent);
    await copyEntity(owner2.ctx, PLAN, 1);
    const rows = await batches(f.executionId);
    expect(rows.map((b) => b.state)).toEqual(keys(1, 5).map(() => "succeeded"));
    expect(new Set(rows.map((b) => b.batchId)).size).toBe(5);
    expect(rows[2]!.batchId).toBe(left[2]!.batchId);
    expect(agent.targetKeys(ENTITY)).toEqual(keys(1, 500));
    expect(await checkpoint(f.executionId)).toEqual(["500"]);
  });

  it("a resumed run finishes a batch left in progress even when its entity still reads pending", async () => {
    const f = await execution();
    const agent = new FakeAgent();
    agent.seed(ENTITY, 300);
    const first = new AbortController();
    let gate: (() => void) | undefined;
    agent.onWrite = async (req) => {
      if (req.batchId.endsWith(":1:1") && !gate) await new Promise<void>((resolve) => (gate = resolve));
    };
    const owner1 = context(f, agent, { controller: first, tuning: { writesInFlight: 1 } });
    const run1 = copyEntity(owner1.ctx, PLAN, 1, undefined, true).catch((e) => e);
    await until(() => gate !== undefined);
    first.abort(new RunAborted("lost", "the process died"));
    gate!();
    await run1;
    expect((await batches(f.executionId)).map((b) => b.state)).toEqual(["in_progress"]);
    // The owner died after reserving its first batch and before its entity's in_progress status landed.
    await db
      .update(executionEntities)
      .set({ status: "pending" })
      .where(eq(executionEntities.executionId, f.executionId));
    agent.onWrite = undefined;

    const { ctx: owner2 } = context(f, agent);
    const snapshot = { ...owner2.settings, plan: owner2.plan };
    const [claimed] = await db
      .update(executions)
      .set({ snapshot, attempts: 2 })
      .where(eq(executions.id, f.executionId))
      .returning();
    const { plan: _plan, ...base } = owner2;
    const outcome = await runExecution(base, claimed!);
    expect(outcome).toEqual({ status: "completed" });
    const rows = await batches(f.executionId);
    expect(rows.map((b) => b.state)).toEqual(["succeeded", "succeeded", "succeeded"]);
    expect(new Set(rows.map((b) => b.batchId)).size).toBe(3);
    expect(agent.targetKeys(ENTITY)).toEqual(keys(1, 300));
  });

  it("resumes past a gap and re-writes the range of an id a fence sealed as new batches", async () => {
    const f = await execution();
    const agent = new FakeAgent();
    agent.seed(ENTITY, 600);
    const first = new AbortController();
    let held = 0;
    const gates: (() => void)[] = [];
    agent.onWrite = async (req) => {
      const seq = Number(req.batchId.split(":").pop());
      if (seq >= 2) {
        held++;
        await new Promise<void>((resolve) => gates.push(resolve));
      }
    };
    const owner1 = context(f, agent, { controller: first, tuning: { writesInFlight: 3 } });
    const run1 = copyEntity(owner1.ctx, PLAN, 1, undefined, true).catch((e) => e);
    await until(() => held === 3);
    first.abort(new RunAborted("lost", "shutting down"));
    for (const open of gates) open();
    await run1;
    const left = await batches(f.executionId);
    expect(left.map((b) => b.state)).toEqual(["succeeded", "in_progress", "in_progress", "in_progress"]);
    // Batch 2 was settled without being written (a gap before batch 3); batch 3's id was sealed by a fence.
    await db.update(executionBatches).set({ state: "cancelled" }).where(eq(executionBatches.id, left[1]!.id));
    agent.ledger.delete(left[2]!.batchId);
    agent.ledger.delete(left[3]!.batchId);
    for (const k of keys(101, 400)) agent.target.get(ENTITY)?.delete(k);
    agent.ledger.set(left[2]!.batchId, { state: "sealed" });

    agent.onWrite = undefined;
    const owner2 = context(f, agent);
    await copyEntity(owner2.ctx, PLAN, 1);
    expect(agent.targetKeys(ENTITY)).toEqual(keys(1, 600));
    const rows = await batches(f.executionId);
    const sealed = rows.find((b) => b.batchId === left[2]!.batchId);
    expect(sealed?.state).toBe("cancelled");
    expect(rows.filter((b) => b.state === "in_progress")).toEqual([]);
    expect(await checkpoint(f.executionId)).toEqual(["600"]);
  });
});

describe("sequences moved by an entity's last write", () => {
  const writes = (agent: FakeAgent) =>
    agent.calls.filter((c) => c.kind === "write").map((c) => c.request as WriteRequest);

  it("asks only the last write of pass 1 to move them, and logs its moves without a finish task", async () => {
    const f = await execution();
    const agent = new FakeAgent();
    agent.movesSequencesInWrites = true;
    agent.seed(ENTITY, 250);
    const { ctx, stages } = context(f, agent, { tuning: { writesInFlight: 2 } });
    ctx.sequenceMoves = new Map();
    await copyEntity(ctx, PLAN, 1, undefined, true);
    expect(writes(agent).map((w) => [w.batchId.split(":").pop(), w.moveSequences === true])).toEqual([
      ["1", false],
      ["2", false],
      ["3", true],
    ]);
    await moveSequences(ctx, PLAN);
    expect(agent.finishes).toEqual([]);
    expect(stages.filter((s) => s.code === "sequences").map((s) => s.description)).toEqual([
      "Moved public.t_id_seq (id) from 1 to 250",
    ]);
  });

  it("leaves them to a finish task when the agent's write did not move them (an agent that predates it)", async () => {
    const f = await execution();
    const agent = new FakeAgent();
    agent.seed(ENTITY, 150);
    const { ctx } = context(f, agent);
    ctx.sequenceMoves = new Map();
    await copyEntity(ctx, PLAN, 1, undefined, true);
    expect(writes(agent).at(-1)?.moveSequences).toBe(true);
    await moveSequences(ctx, PLAN);
    expect(agent.finishes).toEqual([
      {
        entity: { schema: "public", name: "t" },
        moveSequences: true,
        checkReferences: [],
        keyFields: ["id"],
      },
    ]);
  });

  it("is not asked for by a run that does not move sequences, nor by pass 2", async () => {
    const f = await execution();
    const agent = new FakeAgent();
    agent.movesSequencesInWrites = true;
    agent.seed(ENTITY, 150);
    const { ctx } = context(f, agent);
    await copyEntity(ctx, PLAN, 1, undefined, true);
    ctx.sequenceMoves = new Map();
    await copyEntity(ctx, { ...PLAN, deferredFields: ["v"] }, 2, undefined, true);
    expect(writes(agent).length).toBe(4);
    expect(writes(agent).some((w) => w.moveSequences)).toBe(false);
    expect(ctx.sequenceMoves.size).toBe(0);
  });
});

describe("the monthly record limit", () => {
  it("stops at a batch boundary: committed batches stay, no batch goes over the limit", async () => {
    const f = await execution(250);
    const agent = new FakeAgent();
    agent.seed(ENTITY, 1_000);
    const { ctx } = context(f, agent);
    const error = await copyEntity(ctx, PLAN, 1, undefined, true).catch((e) => e);
    expect(error).toBeInstanceOf(RecordLimitReached);
    // Batch 2 was still being written when batch 3 asked: its records were reserved, not yet used.
    expect(error.message).toMatch(/100 of 250 records used this month \(100 reserved by runs in flight\)/);
    expect(agent.targetKeys(ENTITY)).toEqual(keys(1, 200));
    const [row] = await db.select().from(usage).where(eq(usage.organisationId, f.organisationId));
    expect(Number(row!.records)).toBe(200);
    expect(Number(row!.reserved)).toBe(0);
  });
});

describe("the run's source snapshot", () => {
  const snapshotGone = () =>
    new DrayError("failed_precondition", "snapshot 00000003-0000001B-1 is no longer held", {
      retryable: false,
      details: { reason: "snapshot_gone" },
    });

  it("goes with every read and lets writes skip the references it vouches for", async () => {
    const f = await execution();
    const agent = new FakeAgent();
    agent.seed(ENTITY, 250);
    const { ctx, counters } = context(f, agent);
    ctx.snapshot = { id: "00000003-0000001B-1", lost: false, loadedWhole: new Set(["public.parent"]) };
    const plan = {
      ...PLAN,
      trustedReferences: [{ name: "t_parent_fkey", referencedEntity: "public.parent" }],
    };
    await copyEntity(ctx, plan, 1, ctx.signal, true);
    expect(counters.created).toBe(250);
    const reads = agent.calls.filter((c) => c.kind === "read").map((c) => c.request as ReadRequest);
    expect(reads.length).toBeGreaterThan(1);
    expect(reads.every((r) => r.snapshotId === "00000003-0000001B-1")).toBe(true);
    const writes = agent.calls.filter((c) => c.kind === "write").map((c) => c.request as WriteRequest);
    expect(writes.every((w) => w.uncheckedReferences.includes("t_parent_fkey"))).toBe(true);
  });

  it("once gone, is read without (the same page again), logged once, and vouches for nothing more", async () => {
    const f = await execution();
    const agent = new FakeAgent();
    agent.seed(ENTITY, 250);
    agent.onRead = (request, n) => {
      if (n === 2 && request.snapshotId) throw snapshotGone();
    };
    const { ctx, stages, counters } = context(f, agent);
    ctx.snapshot = { id: "00000003-0000001B-1", lost: false, loadedWhole: new Set(["public.parent"]) };
    const plan = {
      ...PLAN,
      trustedReferences: [{ name: "t_parent_fkey", referencedEntity: "public.parent" }],
    };
    await copyEntity(ctx, plan, 1, ctx.signal, true);
    expect(counters).toMatchObject({ created: 250, skipped: 0, failed: 0 });
    expect(await agent.targetKeys(ENTITY)).toEqual(keys(1, 250));
    const reads = agent.calls.filter((c) => c.kind === "read").map((c) => c.request as ReadRequest);
    expect(reads.map((r) => r.snapshotId ?? null)).toEqual([
      "00000003-0000001B-1",
      "00000003-0000001B-1",
      null,
      null,
    ]);
    expect(reads[1]!.after).toEqual(reads[2]!.after);
    expect(stages.filter((s) => s.code === "snapshot_lost")).toHaveLength(1);
    expect(ctx.snapshot.lost).toBe(true);
    const writes = agent.calls.filter((c) => c.kind === "write").map((c) => c.request as WriteRequest);
    // The first batch's write may be sent before or after the loss (either is right); none after it trusts.
    expect(writes.slice(1).every((w) => w.uncheckedReferences.length === 0)).toBe(true);
  });

  it("is not asked for by a read without one (a resumed run)", async () => {
    const f = await execution();
    const agent = new FakeAgent();
    agent.seed(ENTITY, 10);
    const { ctx } = context(f, agent);
    await readPage(ctx, PLAN, 1, { after: null });
    expect((agent.calls[0]!.request as ReadRequest).snapshotId).toBeUndefined();
  });
});

describe("opening the run's source snapshot", () => {
  it("returns the snapshot the source agent exported", async () => {
    const f = await execution();
    const agent = new FakeAgent();
    const { ctx, stages } = context(f, agent);
    const snapshot = await openRunSnapshot(ctx);
    expect(snapshot).toEqual({ id: agent.exportedSnapshots[0], lost: false, loadedWhole: new Set() });
    expect(stages).toEqual([]);
  });

  it("reads without one when the source agent cannot hold it, and says why in the stage log", async () => {
    const f = await execution();
    const agent = new FakeAgent();
    agent.exportSnapshotError = new DrayError(
      "failed_precondition",
      "this agent holds no snapshot for runs (DRAY_AGENT_RUN_SNAPSHOTS=off)",
    );
    const { ctx, stages } = context(f, agent);
    expect(await openRunSnapshot(ctx)).toBeUndefined();
    expect(stages).toHaveLength(1);
    expect(stages[0]).toMatchObject({ code: "snapshot", state: "processing" });
    expect(stages[0]!.description).toContain("DRAY_AGENT_RUN_SNAPSHOTS=off");
    expect(stages[0]!.description).toContain("every reference is checked");
  });
});
