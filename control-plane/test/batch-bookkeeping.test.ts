/**
 * The batch bookkeeping statements (reserve, finalise, cancel) on both stores:
 * Postgres (production) and PGlite (the demo). Reservations respect the
 * monthly limit, also when many are made at once; a refusal records nothing;
 * a finalisation applies once, to batch, entity and usage together.
 */
import { silentLogger } from "@dray/common";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type BatchPlan,
  cancelBatch,
  finalizeBatch,
  releaseUnfinishedBatches,
  reserveBatch,
} from "../src/executor/batch-bookkeeping.js";
import {
  type Db,
  executionBatches,
  executionEntities,
  isUniqueViolation,
  newId,
  openStore,
  type Store,
  usage,
} from "../src/store/index.js";
import { createTestDatabase } from "./api-test-harness.js";
import { seedOrganisation, seedRunningExecution } from "./execution-fixtures.js";

const MONTH = "2026-05";

interface Fixture {
  organisationId: string;
  executionId: string;
  entity: string;
}

/** An organisation with `limit`, one execution and its entity row. */
async function fixture(db: Db, limit: number): Promise<Fixture> {
  const org = await seedOrganisation(db, limit);
  const { executionId } = await seedRunningExecution(db, org, {
    entities: ["public.t"],
    withEntityRows: true,
    checkpoint: ["0"],
  });
  return { organisationId: org.organisationId, executionId, entity: "public.t" };
}

let seqs = 0;
function plan(f: Fixture, over: Partial<BatchPlan> = {}): BatchPlan {
  const seq = ++seqs;
  return {
    id: newId(),
    executionId: f.executionId,
    organisationId: f.organisationId,
    entity: f.entity,
    pass: 1,
    seq,
    batchId: `${f.executionId}:${f.entity}:1:${seq}`,
    cursorFrom: [String(seq - 1)],
    cursorTo: [String(seq), "b"],
    rows: 10,
    bytes: 100,
    reserve: 10,
    month: MONTH,
    ...over,
  };
}

async function usageOf(db: Db, f: Fixture) {
  const [row] = await db
    .select({ records: usage.records, reserved: usage.reserved })
    .from(usage)
    .where(and(eq(usage.organisationId, f.organisationId), eq(usage.month, MONTH)));
  return row ? { records: Number(row.records), reserved: Number(row.reserved) } : undefined;
}

async function batchesOf(db: Db, f: Fixture) {
  return db.select().from(executionBatches).where(eq(executionBatches.executionId, f.executionId));
}

async function entityOf(db: Db, f: Fixture) {
  const [row] = await db
    .select()
    .from(executionEntities)
    .where(and(eq(executionEntities.executionId, f.executionId), eq(executionEntities.entity, f.entity)));
  return row!;
}

const succeeded = (f: Fixture, batchRowId: string) => ({
  batchRowId,
  executionId: f.executionId,
  organisationId: f.organisationId,
  entity: f.entity,
  state: "succeeded" as const,
  created: 6,
  updated: 3,
  rejected: 1,
  failedRecords: 0,
  attempts: 1,
  durationMs: 42,
  error: null,
  advance: true,
  countRecords: true,
});

describe.each([{ kind: "postgres" as const }, { kind: "pglite" as const }])(
  "batch bookkeeping on $kind",
  ({ kind }) => {
    let store: Store;
    let drop: (() => Promise<void>) | undefined;
    let db: Db;

    beforeAll(async () => {
      if (kind === "postgres") {
        const database = await createTestDatabase();
        drop = database.drop;
        store = await openStore({ databaseUrl: database.url, dataDir: "memory://", logger: silentLogger });
      } else {
        store = await openStore({ databaseUrl: undefined, dataDir: "memory://", logger: silentLogger });
      }
      expect(store.kind).toBe(kind);
      db = store.db;
    });
    afterAll(async () => {
      await store?.close();
      await drop?.();
    });

    it("reserves within the limit and records the batch in progress", async () => {
      const f = await fixture(db, 25);
      const p = plan(f, { cursorFrom: null });
      expect(await reserveBatch(db, p)).toEqual({ ok: true });
      expect(await usageOf(db, f)).toEqual({ records: 0, reserved: 10 });
      const [batch] = await batchesOf(db, f);
      expect(batch).toMatchObject({
        id: p.id,
        entity: f.entity,
        pass: 1,
        seq: p.seq,
        batchId: p.batchId,
        state: "in_progress",
        cursorFrom: null,
        cursorTo: p.cursorTo,
        rows: 10,
        bytes: 100,
        reserved: 10,
        usageMonth: MONTH,
        attempts: 0,
      });
      expect(await reserveBatch(db, plan(f))).toEqual({ ok: true });
      expect(await usageOf(db, f)).toEqual({ records: 0, reserved: 20 });
    });

    it("refuses a reservation that would cross the limit, records nothing and reports the figures", async () => {
      const f = await fixture(db, 25);
      expect(await reserveBatch(db, plan(f, { reserve: 8 }))).toEqual({ ok: true });
      const first = (await batchesOf(db, f))[0]!;
      expect(await finalizeBatch(db, { ...succeeded(f, first.id), created: 5, updated: 2 })).toBe(true);
      expect(await reserveBatch(db, plan(f, { reserve: 9 }))).toEqual({ ok: true });
      // 7 used + 9 reserved + 10 > 25.
      const refused = await reserveBatch(db, plan(f, { reserve: 10 }));
      expect(refused).toEqual({ ok: false, used: 7, reserved: 9, limit: 25, needed: 10 });
      expect(await usageOf(db, f)).toEqual({ records: 7, reserved: 9 });
      expect(await batchesOf(db, f)).toHaveLength(2);
      // Exactly at the limit is fine.
      expect(await reserveBatch(db, plan(f, { reserve: 9 }))).toEqual({ ok: true });
      expect(await usageOf(db, f)).toEqual({ records: 7, reserved: 18 });
    });

    it("refuses a batch larger than the whole limit without a usage row", async () => {
      const f = await fixture(db, 5);
      const refused = await reserveBatch(db, plan(f, { reserve: 6 }));
      expect(refused).toEqual({ ok: false, used: 0, reserved: 0, limit: 5, needed: 6 });
      expect(await batchesOf(db, f)).toHaveLength(0);
      expect((await usageOf(db, f)) ?? { records: 0, reserved: 0 }).toEqual({ records: 0, reserved: 0 });
    });

    it("records a batch with nothing to reserve without touching usage, even at the limit", async () => {
      const f = await fixture(db, 0);
      const p = plan(f, { pass: 2, reserve: 0 });
      expect(await reserveBatch(db, p)).toEqual({ ok: true });
      expect(await usageOf(db, f)).toBeUndefined();
      const [batch] = await batchesOf(db, f);
      expect(batch).toMatchObject({
        id: p.id,
        pass: 2,
        state: "in_progress",
        reserved: 0,
        cursorTo: p.cursorTo,
      });
    });

    it("takes back the reservation when the batch row cannot be written", async () => {
      const f = await fixture(db, 100);
      const p = plan(f);
      expect(await reserveBatch(db, p)).toEqual({ ok: true });
      const again = await reserveBatch(db, { ...plan(f), batchId: p.batchId }).catch((e: unknown) => e);
      expect(isUniqueViolation(again)).toBe(true);
      expect(await usageOf(db, f)).toEqual({ records: 0, reserved: 10 });
      expect(await batchesOf(db, f)).toHaveLength(1);
    });

    it("never reserves past the limit when many batches reserve at once", async () => {
      const f = await fixture(db, 95);
      const answers = await Promise.all(Array.from({ length: 20 }, () => reserveBatch(db, plan(f))));
      expect(answers.filter((a) => a.ok)).toHaveLength(9);
      for (const refused of answers.filter((a) => !a.ok)) {
        expect(refused).toMatchObject({ limit: 95, needed: 10, used: 0 });
        expect((refused as { reserved: number }).reserved).toBeGreaterThanOrEqual(90);
      }
      expect(await usageOf(db, f)).toEqual({ records: 0, reserved: 90 });
      expect(await batchesOf(db, f)).toHaveLength(9);
    });

    it("finalises once: batch, entity counters and checkpoint, usage", async () => {
      const f = await fixture(db, 100);
      const p = plan(f);
      await reserveBatch(db, p);
      expect(await finalizeBatch(db, { ...succeeded(f, p.id), error: "note" })).toBe(true);
      const [batch] = await batchesOf(db, f);
      expect(batch).toMatchObject({
        state: "succeeded",
        created: 6,
        updated: 3,
        rejected: 1,
        attempts: 1,
        durationMs: 42,
        error: "note",
        cursorTo: p.cursorTo,
        rows: 10,
        bytes: 100,
      });
      expect(batch!.finishedAt).toBeInstanceOf(Date);
      expect(await entityOf(db, f)).toMatchObject({
        processed: 10,
        created: 6,
        updated: 3,
        skipped: 1,
        failed: 0,
        checkpoint: p.cursorTo,
        batches: 1,
      });
      expect(await usageOf(db, f)).toEqual({ records: 9, reserved: 0 });

      // A second outcome for the same batch changes nothing.
      expect(await finalizeBatch(db, succeeded(f, p.id))).toBe(false);
      expect(await cancelBatch(db, { ...f, batchRowId: p.id, pass: 1 }, "late")).toBe(false);
      expect((await batchesOf(db, f))[0]).toMatchObject({ state: "succeeded", error: "note" });
      expect(await entityOf(db, f)).toMatchObject({ processed: 10, created: 6, batches: 1 });
      expect(await usageOf(db, f)).toEqual({ records: 9, reserved: 0 });
    });

    it("records a re-read's range and moves the checkpoint to it", async () => {
      const f = await fixture(db, 100);
      const p = plan(f);
      await reserveBatch(db, p);
      const reread = { cursorTo: ["77", "z"], rows: 4, bytes: 40 };
      expect(await finalizeBatch(db, { ...succeeded(f, p.id), reread })).toBe(true);
      expect((await batchesOf(db, f))[0]).toMatchObject({ cursorTo: ["77", "z"], rows: 4, bytes: 40 });
      expect((await entityOf(db, f)).checkpoint).toEqual(["77", "z"]);
      const q = plan(f, { cursorTo: null });
      await reserveBatch(db, q);
      expect(await finalizeBatch(db, succeeded(f, q.id))).toBe(true);
      expect(await entityOf(db, f)).toMatchObject({ checkpoint: null, batches: 2 });
    });

    it("a back-fill batch moves the checkpoint without counting records", async () => {
      const f = await fixture(db, 100);
      const p = plan(f, { pass: 2, reserve: 0 });
      await reserveBatch(db, p);
      expect(await finalizeBatch(db, { ...succeeded(f, p.id), countRecords: false })).toBe(true);
      expect(await entityOf(db, f)).toMatchObject({
        processed: 0,
        created: 0,
        updated: 0,
        checkpoint: p.cursorTo,
        batches: 1,
      });
      // Committed records of an uncounted batch touch the month's row but add nothing.
      expect(await usageOf(db, f)).toEqual({ records: 0, reserved: 0 });
    });

    it("a skipped batch counts its failures, advances and releases its reservation", async () => {
      const f = await fixture(db, 100);
      const p = plan(f);
      await reserveBatch(db, p);
      const outcome = {
        ...succeeded(f, p.id),
        state: "skipped" as const,
        created: 0,
        updated: 0,
        rejected: 0,
        failedRecords: 10,
        error: "gave up",
      };
      expect(await finalizeBatch(db, outcome)).toBe(true);
      expect(await entityOf(db, f)).toMatchObject({
        processed: 10,
        failed: 10,
        checkpoint: p.cursorTo,
        batches: 1,
      });
      expect(await usageOf(db, f)).toEqual({ records: 0, reserved: 0 });
    });

    it("a failed batch neither advances nor counts commits, and still releases", async () => {
      const f = await fixture(db, 100);
      const p = plan(f);
      await reserveBatch(db, p);
      const outcome = { ...succeeded(f, p.id), state: "failed" as const, advance: false, error: "boom" };
      expect(await finalizeBatch(db, outcome)).toBe(true);
      expect(await entityOf(db, f)).toMatchObject({
        processed: 10,
        created: 6,
        updated: 3,
        skipped: 1,
        checkpoint: ["0"],
        batches: 0,
      });
      expect(await usageOf(db, f)).toEqual({ records: 0, reserved: 0 });
    });

    it("cancels and releases every unfinished batch of an execution", async () => {
      const f = await fixture(db, 100);
      const done = plan(f);
      await reserveBatch(db, done);
      await finalizeBatch(db, succeeded(f, done.id));
      await reserveBatch(db, plan(f));
      await reserveBatch(db, plan(f, { reserve: 7 }));
      expect(await usageOf(db, f)).toEqual({ records: 9, reserved: 17 });
      expect(await releaseUnfinishedBatches(db, f, "run failed")).toBe(2);
      const states = (await batchesOf(db, f)).map((b) => [b.state, b.error]).sort();
      expect(states).toEqual([
        ["cancelled", "run failed"],
        ["cancelled", "run failed"],
        ["succeeded", null],
      ]);
      expect(await entityOf(db, f)).toMatchObject({ processed: 10, batches: 1 });
      expect(await usageOf(db, f)).toEqual({ records: 9, reserved: 0 });
    });

    it("takes one statement per reservation and finalisation (two for a refusal), outside any transaction", async () => {
      const f = await fixture(db, 15);
      const calls: string[] = [];
      const counted = new Proxy(db, {
        get(target, key) {
          const value = Reflect.get(target, key, target);
          if (key !== "execute" && key !== "transaction") return value;
          return (...args: unknown[]) => {
            calls.push(key);
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      });
      const p = plan(f);
      expect(await reserveBatch(counted, p)).toEqual({ ok: true });
      expect(calls).toEqual(["execute"]);
      calls.length = 0;
      expect(await reserveBatch(counted, plan(f))).toMatchObject({ ok: false, needed: 10 });
      expect(calls).toEqual(["execute", "execute"]);
      calls.length = 0;
      expect(await finalizeBatch(counted, succeeded(f, p.id))).toBe(true);
      expect(calls).toEqual(["execute"]);
      calls.length = 0;
      expect(await finalizeBatch(counted, succeeded(f, p.id))).toBe(false);
      expect(calls).toEqual(["execute"]);
    });

    it("answers false for an unknown batch and changes nothing", async () => {
      const f = await fixture(db, 100);
      expect(await finalizeBatch(db, succeeded(f, newId()))).toBe(false);
      expect(await entityOf(db, f)).toMatchObject({ processed: 0, checkpoint: ["0"], batches: 0 });
      expect(await usageOf(db, f)).toBeUndefined();
    });
  },
);
