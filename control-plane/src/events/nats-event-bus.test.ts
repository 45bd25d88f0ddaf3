import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "@dray/common";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OwnNats } from "../../../test/support/own-nats.js";
import { freePort } from "../../../test/support/processes.js";
import type { DrayEvent, EventBus } from "./event-bus.js";
import { createNatsEventBus } from "./nats-event-bus.js";
import { PublishOutbox } from "./publish-outbox.js";
import { EVENTS_STREAM } from "./subjects.js";

const event = (n: number): DrayEvent => ({ type: "test.event", at: new Date().toISOString(), n });

async function storedCount(url: string, subject: string): Promise<number> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(EVENTS_STREAM, { subjects_filter: subject });
    return info.state.subjects?.[subject] ?? 0;
  } catch {
    return 0;
  } finally {
    await nc.close();
  }
}

async function eventually<T>(fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 100));
  }
}

let dir: string;
let nats: OwnNats;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "dray-bus-nats-"));
  nats = new OwnNats(await freePort(), dir);
});

afterAll(async () => {
  await nats.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("the NATS event bus while NATS is down", () => {
  let bus: EventBus | undefined;

  it("starts without NATS, queues events without blocking, and publishes them once NATS is up", async () => {
    const started = Date.now();
    bus = await createNatsEventBus(nats.url, silentLogger, { firstConnectWaitMs: 500 });
    expect(Date.now() - started).toBeLessThan(2_000);
    const received: DrayEvent[] = [];
    bus.subscribe("dray.test.>", (_subject, e) => received.push(e));

    const publishing = Date.now();
    for (let n = 1; n <= 5; n++) await bus.publish("dray.test.queued", event(n), { msgId: `queued-${n}` });
    expect(Date.now() - publishing).toBeLessThan(200);

    await nats.start();
    expect(
      await eventually(
        async () => ((await storedCount(nats.url, "dray.test.queued")) === 5 ? true : undefined),
        15_000,
      ),
    ).toBe(true);
    // The subscription made before the first connection is live now.
    await eventually(async () => {
      await bus!.publish("dray.test.live", event(6), { msgId: "live-6" });
      return received.some((e) => e.n === 6) ? true : undefined;
    }, 10_000);
  }, 40_000);

  it("keeps events published during an outage and sends them once when NATS returns", async () => {
    await nats.stop();
    const publishing = Date.now();
    for (let n = 1; n <= 3; n++) await bus!.publish("dray.test.outage", event(n), { msgId: `outage-${n}` });
    expect(Date.now() - publishing).toBeLessThan(500);
    await nats.start();
    await eventually(
      async () => ((await storedCount(nats.url, "dray.test.outage")) >= 3 ? true : undefined),
      20_000,
    );
    await new Promise((r) => setTimeout(r, 500));
    expect(await storedCount(nats.url, "dray.test.outage")).toBe(3);
  }, 40_000);

  it("never queues a stored event while NATS is down: it answers false at once", async () => {
    await nats.stop();
    await eventually(
      async () =>
        (await bus!.publish("dray.test.stored", event(0), { msgId: "stored-probe", stored: true }))
          ? undefined
          : true,
      10_000,
    );
    const publishing = Date.now();
    for (let n = 1; n <= 3; n++)
      expect(await bus!.publish("dray.test.stored", event(n), { msgId: `stored-${n}`, stored: true })).toBe(
        false,
      );
    expect(Date.now() - publishing).toBeLessThan(200);
    await nats.start();
    // Once connected again, a stored event is acknowledged (true); the ones refused earlier never arrive.
    await eventually(
      async () =>
        (await bus!.publish("dray.test.stored", event(4), { msgId: "stored-4", stored: true }))
          ? true
          : undefined,
      20_000,
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(await storedCount(nats.url, "dray.test.stored")).toBe(1);
  }, 40_000);

  it("closes promptly while NATS is down", async () => {
    await nats.stop();
    await bus!.publish("dray.test.closing", event(1));
    const closing = Date.now();
    await bus!.close();
    expect(Date.now() - closing).toBeLessThan(3_000);
  }, 20_000);
});

describe("PublishOutbox", () => {
  it("keeps order, drops the oldest past its bound, and never leaves a waiter hanging", async () => {
    const drops: number[] = [];
    const outbox = new PublishOutbox(2, (n) => drops.push(n));
    const item = (s: string) => ({ subject: s, payload: "{}", msgId: s });
    const a = outbox.push(item("a"));
    const b = outbox.push(item("b"));
    outbox.push(item("c"));
    expect(await a).toBe(false); // dropped: resolved, not published
    expect(drops).toEqual([1]);
    expect(outbox.peek()?.subject).toBe("b");
    outbox.settle(outbox.peek()!);
    expect(await b).toBe(true);
    expect(outbox.peek()?.subject).toBe("c");
    const d = outbox.push(item("d"));
    outbox.releaseWaiters();
    expect(await d).toBe(false);
    expect(outbox.size).toBe(2);
  });

  it("lets stored events leave the queue when waiters are released", async () => {
    const outbox = new PublishOutbox(10);
    const plain = outbox.push({ subject: "plain", payload: "{}", msgId: "p" });
    const stored = outbox.push({ subject: "stored", payload: "{}", msgId: "s", stored: true });
    outbox.releaseWaiters();
    expect([await plain, await stored]).toEqual([false, false]);
    expect(outbox.size).toBe(1);
    expect(outbox.peek()?.subject).toBe("plain");
  });
});
