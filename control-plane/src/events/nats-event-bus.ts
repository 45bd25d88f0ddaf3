import type { Logger } from "@dray/common";
import { DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { connect, headers } from "@nats-io/transport-node";
import type { DrayEvent, EventBus, PublishOptions, Subscription } from "./event-bus.js";
import { EVENTS_STREAM, EVENTS_SUBJECTS } from "./subjects.js";

const SECOND_NS = 1_000_000_000;

/**
 * Connects to NATS and makes sure the JetStream stream DRAY_EVENTS exists over
 * `dray.>` (7 days, deduplication window 2 minutes). Publishes are JetStream
 * publishes (acknowledged, deduplicated by msgId); subscriptions are live core
 * subscriptions.
 */
export async function createNatsEventBus(
  url: string,
  logger: Logger,
  name = "dray-control-plane",
): Promise<EventBus> {
  const nc = await connect({
    servers: url,
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    pingInterval: 10_000,
  });
  void (async () => {
    for await (const s of nc.status()) logger.debug("nats status", { type: s.type });
  })();
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
  const js = jetstream(nc);
  return {
    async publish(subject: string, event: DrayEvent, opts?: PublishOptions) {
      const h = headers();
      h.set("content-type", "application/json");
      await js.publish(subject, JSON.stringify(event), {
        headers: h,
        ...(opts?.msgId ? { msgID: opts.msgId } : {}),
      });
    },
    subscribe(subject: string, handler: (subject: string, event: DrayEvent) => void): Subscription {
      const sub = nc.subscribe(subject, {
        callback: (err, msg) => {
          if (err) return;
          try {
            handler(msg.subject, msg.json<DrayEvent>());
          } catch (error) {
            logger.warn("event subscriber failed", { subject: msg.subject, error: String(error) });
          }
        },
      });
      return { unsubscribe: () => sub.unsubscribe() };
    },
    async close() {
      await nc.drain();
    },
  };
}
