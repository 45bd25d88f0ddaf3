/**
 * Shared set-up of the execution API tests: the harness's database with an
 * app that has an in-memory event bus and records `onExecutionQueued`, rows
 * inserted directly (no executor runs in these tests) and an SSE reader.
 */
import { createApiApp } from "../src/api/index.js";
import type { EventBus } from "../src/events/event-bus.js";
import { createMemoryEventBus } from "../src/events/memory-event-bus.js";
import { type Db, environments, executions, newId, pipelines } from "../src/store/index.js";
import {
  type ApiAnswer,
  type ApiHarness,
  type CallOptions,
  createTestDatabase,
  openApiHarness,
  TEST_CONFIG,
} from "./api-test-harness.js";

/** The harness plus an app wired to a memory bus. */
export interface ExecutionsHarness {
  h: ApiHarness;
  db: Db;
  bus: EventBus;
  /** Live subscriptions on `bus` (to check streams let go of theirs). */
  subscriptions(): number;
  /** Ids passed to `onExecutionQueued`. */
  queued: string[];
  app: ReturnType<typeof createApiApp>;
  call(method: string, path: string, options?: CallOptions): Promise<ApiAnswer>;
  close(): Promise<void>;
}

/** A fresh database, the harness on it and the bus-wired app. */
export async function openExecutionsHarness(): Promise<ExecutionsHarness> {
  const database = await createTestDatabase();
  const h = await openApiHarness(database.url);
  const memory = createMemoryEventBus();
  let active = 0;
  const bus: EventBus = {
    publish: (subject, event, options) => memory.publish(subject, event, options),
    subscribe(subject, handler) {
      const sub = memory.subscribe(subject, handler);
      active++;
      let open = true;
      return {
        unsubscribe() {
          if (open) active--;
          open = false;
          sub.unsubscribe();
        },
      };
    },
    close: () => memory.close(),
  };
  const queued: string[] = [];
  const app = createApiApp({
    db: h.store.db,
    agents: h.agents,
    logger: h.logger,
    config: TEST_CONFIG,
    bus,
    onExecutionQueued: (id) => queued.push(id),
    now: () => (h.clock.now ? new Date(h.clock.now) : new Date()),
  });
  const call = async (method: string, path: string, o: CallOptions = {}): Promise<ApiAnswer> => {
    const headers: Record<string, string> = { ...o.headers };
    if (o.token !== undefined) headers.authorization = `Bearer ${o.token}`;
    let body: string | undefined;
    if (o.json !== undefined || o.raw !== undefined) {
      body = o.raw ?? JSON.stringify(o.json);
      headers["content-type"] ??= "application/json";
    }
    const res = await app.request(path, { method, headers, ...(body === undefined ? {} : { body }) });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
  };
  return {
    h,
    db: h.store.db,
    bus,
    subscriptions: () => active,
    queued,
    app,
    call,
    async close() {
      await bus.close();
      await h.close();
      await database.drop();
    },
  };
}

/** Inserts a source and a target environment and a pipeline over them. */
export async function insertPipeline(db: Db, organisationId: string, name: string) {
  const [source, target] = [newId(), newId()];
  await db.insert(environments).values([
    { id: source, organisationId, name: `${name}-src`, platform: "postgres" },
    { id: target, organisationId, name: `${name}-dst`, platform: "postgres" },
  ]);
  const [row] = await db
    .insert(pipelines)
    .values({
      id: newId(),
      organisationId,
      name,
      sourceEnvironmentId: source,
      targetEnvironmentId: target,
      action: "copy",
      writeStrategy: "merge",
      entities: ["public.customers", "public.orders"],
      batchSize: 1000,
      batchBytes: 4_000_000,
      maxRetriesPerBatch: 4,
      stopOnError: true,
      entityConcurrency: 2,
    })
    .returning();
  return row!;
}

/** The triggeredBy of rows inserted by tests. */
export const TEST_ACTOR = {
  tokenId: "00000000-0000-4000-8000-000000000000",
  tokenName: "seed",
  role: "operator",
};

/** Inserts an execution row directly (as the executor would leave it). */
export async function insertExecution(
  db: Db,
  pipeline: { id: string; organisationId: string },
  fields: Partial<typeof executions.$inferInsert> = {},
) {
  const [row] = await db
    .insert(executions)
    .values({
      id: newId(),
      organisationId: pipeline.organisationId,
      pipelineId: pipeline.id,
      pipelineToken: `pt-${newId()}`,
      status: "completed",
      triggeredBy: TEST_ACTOR,
      snapshot: {},
      ...fields,
    })
    .returning();
  return row!;
}

/** One server-sent event. */
export interface SseMessage {
  id?: string;
  event?: string;
  data: string;
}

/**
 * Reads SSE messages from a response until the stream ends, `count` messages
 * arrived (then cancels the stream) or `timeoutMs` passed.
 */
export async function readSse(
  res: Response,
  options: { count?: number; timeoutMs?: number; onMessage?: (m: SseMessage) => void } = {},
): Promise<{ messages: SseMessage[]; comments: string[]; ended: boolean }> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const messages: SseMessage[] = [];
  const comments: string[] = [];
  let buffer = "";
  let ended = false;
  let timedOut = false;
  const timeout = setTimeout(() => {
    timedOut = true;
    void reader.cancel();
  }, options.timeoutMs ?? 5_000);
  try {
    while (options.count === undefined || messages.length < options.count) {
      const { done, value } = await reader.read();
      if (done) {
        ended = !timedOut;
        break;
      }
      buffer += decoder.decode(value, { stream: true });
      let cut = buffer.indexOf("\n\n");
      while (cut >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        cut = buffer.indexOf("\n\n");
        const message: SseMessage = { data: "" };
        const data: string[] = [];
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) comments.push(line.slice(1).trim());
          else if (line.startsWith("data: ")) data.push(line.slice(6));
          else if (line.startsWith("id: ")) message.id = line.slice(4);
          else if (line.startsWith("event: ")) message.event = line.slice(7);
        }
        if (data.length === 0) continue;
        message.data = data.join("\n");
        messages.push(message);
        options.onMessage?.(message);
      }
    }
  } finally {
    clearTimeout(timeout);
    if (!ended && !timedOut) await reader.cancel().catch(() => {});
  }
  return { messages, comments, ended };
}
