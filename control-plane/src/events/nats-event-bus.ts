import type { Logger } from "@dray/common";
import {
  DiscardPolicy,
  type JetStreamClient,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import {
  connect,
  headers,
  type NatsConnection,
  type Subscription as NatsSubscription,
} from "@nats-io/transport-node";
import type { DrayEvent, EventBus, PublishOptions, Subscription } from "./event-bus.js";
import { type OutboxItem, PublishOutbox } from "./publish-outbox.js";
import { EVENTS_STREAM, EVENTS_SUBJECTS } from "./subjects.js";

const SECOND_NS = 1_000_000_000;
/** Publishes of one event tried while connected before it is dropped (about a minute and a half with the backoff). */
const MAX_TRIES_OF_ONE_EVENT = 20;

/** Options of {@link createNatsEventBus}. */
export interface NatsEventBusOptions {
  /** Connection name shown by the NATS server. @default "dray-control-plane" */
  name?: string;
  /** How long the start waits for a first connection before going on without one. @default 1000 */
  firstConnectWaitMs?: number;
  /** Events kept while NATS is unreachable; the oldest are dropped past it. @default 10000 */
  maxQueued?: number;
  /** Deadline of one JetStream publish (its acknowledgement). @default 5000 */
  publishTimeoutMs?: number;
  /** How long `close()` tries to publish what is still queued, when connected. @default 2000 */
  closeFlushMs?: number;
}

/** Makes sure the JetStream stream DRAY_EVENTS exists over `dray.>`. */
async function ensureStream(nc: NatsConnection): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const config = {
    name: EVENTS_STREAM,
    subjects: [EVENTS_SUBJECTS],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    max_age: 7 * 24 * 3600 * SECOND_NS,
    duplicate_window: 120 * SECOND_NS,
  };
  try {
    await jsm.streams.info(EVENTS_STREAM);
  } catch {
    try {
      await jsm.streams.add(config);
    } catch (error) {
      // Another replica may have created it in between.
      await jsm.streams.info(EVENTS_STREAM).catch(() => {
        throw error;
      });
    }
  }
}

/** A sleep that `wake()` ends early; its timer never keeps the process alive. */
function wakeableSleep() {
  let wake: (() => void) | undefined;
  return {
    sleep(ms: number): Promise<void> {
      return new Promise((resolve) => {
        const timer = setTimeout(done, ms);
        timer.unref();
        function done() {
          clearTimeout(timer);
          wake = undefined;
          resolve();
        }
        wake = done;
      });
    },
    wake() {
      wake?.();
    },
  };
}

/**
 * The NATS JetStream bus. It never blocks the control plane on NATS:
 *
 * - the start waits at most `firstConnectWaitMs` for a connection, then goes on
 *   and keeps connecting in the background (the stream DRAY_EVENTS over
 *   `dray.>`, 7 days, deduplication window 2 minutes, is made sure of on
 *   connecting);
 * - `publish` puts the event in an in-memory outbox that one pump publishes in
 *   order (acknowledged, deduplicated by msgId, so a re-sent event is stored
 *   once); it resolves `true` once the event is stored, or `false` at once
 *   while NATS is unreachable, and never rejects. Queued events (health
 *   events) are published when NATS returns. Events published with
 *   `stored: true` (execution events) are never queued while NATS is away:
 *   the store is their outbox and the republisher sends them
 *   (event-republisher.ts);
 * - `close` gives queued events a short chance, then closes the connection
 *   without waiting for an unreachable server.
 *
 * Subscriptions are live core subscriptions, (re)made whenever connected.
 */
export async function createNatsEventBus(
  url: string,
  logger: Logger,
  options: NatsEventBusOptions = {},
): Promise<EventBus> {
  const publishTimeoutMs = options.publishTimeoutMs ?? 5_000;
  const outbox = new PublishOutbox(options.maxQueued ?? 10_000, (dropped) =>
    logger.warn("nats unreachable: dropped the oldest queued events", { dropped }),
  );
  let nc: NatsConnection | undefined;
  let js: JetStreamClient | undefined;
  let connected = false;
  let streamReady = false;
  let closed = false;
  let outageLogged = false;
  const subscriptions = new Set<{
    subject: string;
    handler: (subject: string, event: DrayEvent) => void;
    sub?: NatsSubscription;
  }>();
  const connectedListeners = new Set<() => void>();
  const pumpSleep = wakeableSleep();
  const connectSleep = wakeableSleep();
  let firstConnection: () => void = () => {};
  const firstConnected = new Promise<void>((resolve) => {
    firstConnection = resolve;
  });

  function attach(entry: {
    subject: string;
    handler: (subject: string, event: DrayEvent) => void;
    sub?: NatsSubscription;
  }) {
    if (!nc || entry.sub) return;
    entry.sub = nc.subscribe(entry.subject, {
      callback: (err, msg) => {
        if (err) return;
        try {
          entry.handler(msg.subject, msg.json<DrayEvent>());
        } catch (error) {
          logger.warn("event subscriber failed", { subject: msg.subject, error: String(error) });
        }
      },
    });
  }

  function setConnected(up: boolean) {
    connected = up;
    if (up) {
      if (outageLogged)
        logger.info("nats reachable again: publishing queued events", { queued: outbox.size });
      outageLogged = false;
      pumpSleep.wake();
      for (const listener of connectedListeners) {
        try {
          listener();
        } catch (error) {
          logger.warn("nats connected listener failed", { error: String(error) });
        }
      }
    } else {
      // Nobody waits for NATS while it is away: the events stay queued.
      outbox.releaseWaiters();
      if (!outageLogged && !closed) logger.warn("nats unreachable: queueing events until it returns");
      outageLogged = true;
    }
  }

  async function watch(conn: NatsConnection) {
    for await (const s of conn.status()) {
      logger.debug("nats status", { type: s.type });
      if (s.type === "disconnect") setConnected(false);
      else if (s.type === "reconnect") setConnected(true);
    }
  }

  async function connectLoop() {
    for (let attempt = 0; !closed; attempt++) {
      try {
        const conn = await connect({
          servers: url,
          name: options.name ?? "dray-control-plane",
          maxReconnectAttempts: -1,
          reconnectTimeWait: 500,
          pingInterval: 10_000,
          timeout: 2_000,
        });
        if (closed) {
          await conn.close().catch(() => {});
          return;
        }
        nc = conn;
        js = jetstream(conn, { timeout: publishTimeoutMs });
        void watch(conn).catch(() => {});
        for (const entry of subscriptions) attach(entry);
        setConnected(true);
        firstConnection();
        return;
      } catch (error) {
        if (attempt === 0) setConnected(false);
        logger.debug("nats connect failed", { error: String(error) });
        await connectSleep.sleep(Math.min(5_000, 500 * 2 ** Math.min(attempt, 4)));
      }
    }
  }

  async function publishOne(item: OutboxItem): Promise<void> {
    if (!streamReady) {
      await ensureStream(nc!);
      streamReady = true;
    }
    const h = headers();
    h.set("content-type", "application/json");
    await js!.publish(item.subject, item.payload, {
      headers: h,
      timeout: publishTimeoutMs,
      ...(item.msgId ? { msgID: item.msgId } : {}),
    });
  }

  /** Consecutive failed publishes; while any, nobody waits for an acknowledgement. */
  let failures = 0;

  async function pump() {
    while (!closed || (connected && outbox.size > 0)) {
      const item = outbox.peek();
      if (!item || !connected || !js) {
        if (closed) return;
        await pumpSleep.sleep(1_000);
        continue;
      }
      try {
        await publishOne(item);
        outbox.settle(item, true);
        failures = 0;
      } catch (error) {
        failures++;
        streamReady = false;
        // A stored event is republished from the store: it never holds the queue.
        if (item.stored) outbox.settle(item, false);
        // NATS answers but does not store (no JetStream, a timeout): publishers stop waiting for it.
        outbox.releaseWaiters();
        if (failures === 1) logger.warn("could not publish an event; will retry", { error: String(error) });
        if (failures >= MAX_TRIES_OF_ONE_EVENT) {
          // One event NATS keeps refusing (e.g. over its size limit) must not hold back the others.
          logger.warn("dropped an event NATS kept refusing", { subject: item.subject, error: String(error) });
          outbox.settle(item, false);
          failures = 0;
          continue;
        }
        if (closed) return;
        await pumpSleep.sleep(Math.min(5_000, 250 * 2 ** Math.min(failures, 5)));
      }
    }
  }

  void connectLoop();
  const pumping = pump().catch((error) => logger.error("event pump stopped", { error: String(error) }));
  const wait = options.firstConnectWaitMs ?? 1_000;
  let waitTimer: NodeJS.Timeout | undefined;
  await Promise.race([
    firstConnected,
    new Promise<void>((resolve) => {
      waitTimer = setTimeout(resolve, wait);
    }),
  ]);
  clearTimeout(waitTimer);
  if (!nc)
    logger.warn("nats unreachable at start: starting without it; events are queued until it is up", { url });

  return {
    publish(subject: string, event: DrayEvent, opts?: PublishOptions): Promise<boolean> {
      if (closed) return Promise.resolve(false);
      // A stored event is not kept in memory while NATS is away: the store republishes it.
      if (opts?.stored && !connected) return Promise.resolve(false);
      // After a failed publish nobody waits; the pump still tries (a success ends the failures),
      // and a stored event it drops on failure is republished from the store.
      const live = connected && failures === 0;
      const done = outbox.push({
        subject,
        payload: JSON.stringify(event),
        msgId: opts?.msgId,
        ...(opts?.stored ? { stored: true } : {}),
      });
      pumpSleep.wake();
      return live ? done : Promise.resolve(false);
    },
    onConnected(listener: () => void): () => void {
      connectedListeners.add(listener);
      return () => connectedListeners.delete(listener);
    },
    subscribe(subject: string, handler: (subject: string, event: DrayEvent) => void): Subscription {
      const entry: {
        subject: string;
        handler: (subject: string, event: DrayEvent) => void;
        sub?: NatsSubscription;
      } = { subject, handler };
      subscriptions.add(entry);
      attach(entry);
      return {
        unsubscribe: () => {
          subscriptions.delete(entry);
          entry.sub?.unsubscribe();
        },
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      connectSleep.wake();
      pumpSleep.wake();
      const flushMs = options.closeFlushMs ?? 2_000;
      let flushTimer: NodeJS.Timeout | undefined;
      await Promise.race([pumping, new Promise((r) => (flushTimer = setTimeout(r, flushMs)))]);
      clearTimeout(flushTimer);
      if (outbox.size > 0)
        logger.warn("nats: events still queued at shutdown were not published", { queued: outbox.size });
      outbox.releaseWaiters();
      const conn = nc;
      if (!conn || conn.isClosed()) return;
      if (connected) {
        let drainTimer: NodeJS.Timeout | undefined;
        await Promise.race([
          conn.drain().catch(() => {}),
          new Promise((r) => (drainTimer = setTimeout(r, 1_000))),
        ]);
        clearTimeout(drainTimer);
      }
      if (!conn.isClosed()) await conn.close().catch(() => {});
    },
  };
}
