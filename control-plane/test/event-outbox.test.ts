/**
 * The store is the outbox of execution events (issue 9, Reliability 4): events
 * stored while NATS is down reach JetStream exactly once, in order, even when
 * the control plane that stored them is gone; replicas share the work; a
 * republisher never holds up shutdown. Real Postgres, a NATS of this file.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "@dray/common";
import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { and, eq, isNull, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OwnNats } from "../../test/support/own-nats.js";
import { freePort } from "../../test/support/processes.js";
import type { EventBus } from "../src/events/event-bus.js";
import { createEventRepublisher } from "../src/events/event-republisher.js";
import { createNatsEventBus } from "../src/events/nats-event-bus.js";
import { EVENTS_STREAM } from "../src/events/subjects.js";
import { appendExecutionEvent } from "../src/executions/execution-events.js";
import type { EventChannel } from "../src/executions/execution-vocabulary.js";
import { executionEvents, openStore, type Store } from "../src/store/index.js";
import { createTestDatabase } from "./api-test-harness.js";
import { seedOrganisation, seedRunningExecution } from "./execution-fixtures.js";

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let store: Store;
let dir: string;
let nats: OwnNats;
const buses: EventBus[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  store = await openStore({ databaseUrl: database.url, dataDir: "memory://", logger: silentLogger });
  dir = await mkdtemp(join(tmpdir(), "dray-outbox-nats-"));
  nats = new OwnNats(await freePort(), dir);
});

afterAll(async () => {
  for (const bus of buses) await bus.close().catch(() => {});
  await nats?.stop();
  await store?.close();
  await database?.drop();
  await rm(dir, { recursive: true, force: true });
});

async function natsUp(): Promise<void> {
  if (!nats.running) await nats.start();
}

async function newBus(): Promise<EventBus> {
  const bus = await createNatsEventBus(nats.url, silentLogger, { firstConnectWaitMs: 300, closeFlushMs: 0 });
  buses.push(bus);
  return bus;
}

/** An organisation with `count` running executions, each of its own pipeline (ids returned). */
async function seedExecutions(count: number): Promise<{ organisationId: string; executionIds: string[] }> {
  const org = await seedOrganisation(store.db);
  const executionIds: string[] = [];
  for (let i = 0; i < count; i++) executionIds.push((await seedRunningExecution(store.db, org)).executionId);
  return { organisationId: org.organisationId, executionIds };
}

interface ReadEvent {
  subject: string;
  msgId: string | undefined;
  executionId: string;
  seq: number;
}

/** Every event of an organisation stored in DRAY_EVENTS, in stream order (an ordered JetStream consumer). */
async function readStream(organisationId: string, expected: number): Promise<ReadEvent[]> {
  const nc = await connect({ servers: nats.url });
  try {
    const js = jetstream(nc);
    const consumer = await js.consumers.get(EVENTS_STREAM, {
      filter_subjects: `dray.${organisationId}.executions.>`,
    });
    const out: ReadEvent[] = [];
    const until = Date.now() + 10_000;
    while (Date.now() < until) {
      const batch = await consumer.fetch({ max_messages: 500, expires: 1_000 });
      let got = 0;
      for await (const m of batch) {
        got++;
        const body = m.json<{ executionId: string; seq: number }>();
        out.push({
          subject: m.subject,
          msgId: m.headers?.get("Nats-Msg-Id"),
          executionId: body.executionId,
          seq: body.seq,
        });
      }
      if (got === 0 && out.length >= expected) break;
    }
    return out;
  } finally {
    await nc.close();
  }
}

async function unpublished(executionIds: string[]): Promise<number> {
  const [row] = await store.db
    .select({ n: sql<number>`count(*)::int` })
    .from(executionEvents)
    .where(and(isNull(executionEvents.publishedAt), sql`${executionEvents.executionId} in ${executionIds}`));
  return row?.n ?? 0;
}

async function eventually(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Checks each event once, msgId `<executionId>:<seq>`, seq 1..perExecution in order per execution. */
function expectExactlyOnceInOrder(read: ReadEvent[], executionIds: string[], perExecution: number) {
  expect(read).toHaveLength(executionIds.length * perExecution);
  for (const id of executionIds) {
    const mine = read.filter((e) => e.executionId === id);
    expect(mine.map((e) => e.seq)).toEqual(Array.from({ length: perExecution }, (_, i) => i + 1));
    for (const e of mine) {
      expect(e.msgId).toBe(`${id}:${e.seq}`);
      expect(e.subject.startsWith(`dray.`)).toBe(true);
      expect(e.subject.includes(`.executions.${id}.`)).toBe(true);
    }
  }
}

const CHANNELS: EventChannel[] = ["status", "progress", "log"];

describe("execution events while NATS is down", () => {
  it("are kept in the store only, survive the loss of the control plane, and a new one publishes each exactly once in order", async () => {
    await nats.stop();
    const { organisationId, executionIds } = await seedExecutions(3);
    // A control plane started while NATS is down.
    const bus = await newBus();
    const republisher = createEventRepublisher({
      db: store.db,
      bus,
      logger: silentLogger,
      graceMs: 0,
      intervalMs: 100,
    });
    republisher.start();
    const perExecution = 40;
    const appending = Date.now();
    for (let n = 0; n < perExecution; n++)
      await Promise.all(
        executionIds.map((executionId, i) =>
          appendExecutionEvent(
            { db: store.db, bus, logger: silentLogger },
            { executionId, organisationId },
            CHANNELS[(n + i) % 3]!,
            { type: "test.event", n },
          ),
        ),
      );
    // Never blocked on NATS.
    expect(Date.now() - appending).toBeLessThan(5_000);
    expect(await unpublished(executionIds)).toBe(executionIds.length * perExecution);
    // The republisher runs passes meanwhile; stopping it does not wait for NATS.
    await new Promise((r) => setTimeout(r, 300));
    const stopping = Date.now();
    await republisher.stop();
    expect(Date.now() - stopping).toBeLessThan(1_000);
    // The process "dies": nothing of it is used again (its bus never reaches NATS).
    await bus.close();

    await natsUp();
    // A new control plane after NATS is up.
    const bus2 = await newBus();
    const republisher2 = createEventRepublisher({
      db: store.db,
      bus: bus2,
      logger: silentLogger,
      graceMs: 0,
      intervalMs: 200,
      batchSize: 25,
    });
    republisher2.start();
    await eventually(async () => (await unpublished(executionIds)) === 0, 15_000);
    await republisher2.stop();
    expectExactlyOnceInOrder(
      await readStream(organisationId, executionIds.length * perExecution),
      executionIds,
      perExecution,
    );
  }, 60_000);

  it("once NATS is up, the live path publishes and marks each event without the republisher", async () => {
    await natsUp();
    const { organisationId, executionIds } = await seedExecutions(1);
    const bus = await newBus();
    const executionId = executionIds[0]!;
    for (let n = 0; n < 5; n++)
      await appendExecutionEvent(
        { db: store.db, bus, logger: silentLogger },
        { executionId, organisationId },
        "progress",
        { type: "test.event", n },
      );
    expect(await unpublished(executionIds)).toBe(0);
    const rows = await store.db
      .select({ publishedAt: executionEvents.publishedAt })
      .from(executionEvents)
      .where(eq(executionEvents.executionId, executionId));
    expect(rows.every((r) => r.publishedAt instanceof Date)).toBe(true);
    expectExactlyOnceInOrder(await readStream(organisationId, 5), executionIds, 5);
  }, 30_000);

  it("two republishers on one store publish each event exactly once, in order", async () => {
    const { organisationId, executionIds } = await seedExecutions(4);
    const perExecution = 60;
    // Events a dead control plane stored and never published, a minute ago.
    await store.db.insert(executionEvents).values(
      executionIds.flatMap((executionId) =>
        Array.from({ length: perExecution }, (_, i) => ({
          executionId,
          seq: i + 1,
          channel: CHANNELS[i % 3]!,
          payload: { type: "test.event", at: new Date().toISOString(), executionId, seq: i + 1 },
          at: new Date(Date.now() - 60_000),
        })),
      ),
    );
    await natsUp();
    const [a, b] = [await newBus(), await newBus()];
    const replicas = [a, b].map((bus) =>
      createEventRepublisher({ db: store.db, bus, logger: silentLogger, graceMs: 0, batchSize: 17 }),
    );
    const published = [0, 0];
    await Promise.all(
      replicas.map(async (r, i) => {
        const until = Date.now() + 20_000;
        while ((await unpublished(executionIds)) > 0 && Date.now() < until)
          published[i]! += await r.runOnce();
      }),
    );
    expect(await unpublished(executionIds)).toBe(0);
    // Each event was sent by exactly one replica: no double work.
    expect(published[0]! + published[1]!).toBe(executionIds.length * perExecution);
    expectExactlyOnceInOrder(
      await readStream(organisationId, executionIds.length * perExecution),
      executionIds,
      perExecution,
    );
  }, 60_000);

  it("never lets a later event of an execution overtake one NATS refused", async () => {
    const { executionIds } = await seedExecutions(2);
    const [refused, fine] = executionIds as [string, string];
    await store.db.insert(executionEvents).values(
      executionIds.flatMap((executionId) =>
        [1, 2, 3].map((seq) => ({
          executionId,
          seq,
          channel: "status" as const,
          payload: { type: "test.event", at: new Date().toISOString(), executionId, seq },
          at: new Date(Date.now() - 60_000),
        })),
      ),
    );
    // A bus that refuses seq 2 of one execution once (as JetStream does while it starts).
    const sent: string[] = [];
    let refusedOnce = false;
    const bus: EventBus = {
      async publish(_subject, _event, options) {
        const key = options?.msgId ?? "";
        if (key === `${refused}:2` && !refusedOnce) {
          refusedOnce = true;
          return false;
        }
        sent.push(key);
        return true;
      },
      subscribe: () => ({ unsubscribe() {} }),
      close: async () => {},
    };
    const republisher = createEventRepublisher({ db: store.db, bus, logger: silentLogger, graceMs: 0 });
    expect(await republisher.runOnce()).toBe(4); // refused:1, fine:1..3; refused:3 waits behind refused:2
    const of = (id: string) => sent.filter((k) => k.startsWith(`${id}:`));
    expect([of(refused), of(fine)]).toEqual([[`${refused}:1`], [`${fine}:1`, `${fine}:2`, `${fine}:3`]]);
    expect(await republisher.runOnce()).toBe(2);
    expect(of(refused)).toEqual([`${refused}:1`, `${refused}:2`, `${refused}:3`]);
    expect(await unpublished(executionIds)).toBe(0);
  });

  it("stops promptly while NATS is down, with unpublished events waiting", async () => {
    const { organisationId, executionIds } = await seedExecutions(1);
    const bus = await newBus();
    await nats.stop();
    await eventually(
      async () => !(await bus.publish("dray.test.probe", { type: "probe", at: "" }, { stored: true })),
      10_000,
    );
    const executionId = executionIds[0]!;
    for (let n = 0; n < 3; n++)
      await appendExecutionEvent(
        { db: store.db, bus, logger: silentLogger },
        { executionId, organisationId },
        "log",
        { type: "test.event", n },
      );
    expect(await unpublished(executionIds)).toBe(3);
    const republisher = createEventRepublisher({
      db: store.db,
      bus,
      logger: silentLogger,
      graceMs: 0,
      intervalMs: 50,
    });
    republisher.start();
    await new Promise((r) => setTimeout(r, 300));
    const stopping = Date.now();
    await republisher.stop();
    await bus.close();
    expect(Date.now() - stopping).toBeLessThan(1_000);
    expect(await unpublished(executionIds)).toBe(3);
  }, 30_000);

  it("publishes stored events again once NATS stores again after refusing them (no JetStream)", async () => {
    await nats.stop();
    const refusing = new OwnNats(nats.port, dir, false);
    await refusing.start();
    try {
      const bus = await newBus();
      const subject = "dray.test.refused";
      // Connected, but nothing is stored: the publish is answered false, never left waiting.
      expect(
        await bus.publish(subject, { type: "probe", at: "" }, { msgId: "refused-1", stored: true }),
      ).toBe(false);
      await refusing.stop();
      await natsUp();
      // Back to a NATS that stores: stored events are acknowledged again (the failures do not stick).
      await eventually(
        async () =>
          bus.publish(subject, { type: "probe", at: "" }, { msgId: `refused-${Date.now()}`, stored: true }),
        20_000,
      );
    } finally {
      await refusing.stop();
    }
  }, 40_000);
});
