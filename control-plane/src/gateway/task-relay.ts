/**
 * Tasks for an agent held by another replica travel over NATS request/reply
 * on a per-agent subject, `dray_internal.agents.<environmentId>` (outside the
 * `dray.>` event stream). The replica that holds the agent subscribes to its
 * subject; any other replica sends the task there:
 *
 * - the first message is a NATS request, so "no responders" answers at once
 *   that no replica holds the agent (`unavailable`, agent away);
 * - task and result are protobuf (`Task`, `TaskResult`) cut into chunks well
 *   under NATS's 1 MiB message limit, sent in order on one connection, and
 *   the result comes back on the sender's inbox;
 * - a cancel (the run's signal, or the deadline) is one more message that
 *   aborts the task on the holder, which tells its agent;
 * - while a task runs the holder sends a keepalive every second: five
 *   seconds of silence mean it died, and the task fails as "agent away"
 *   (retryable) instead of waiting out its deadline.
 */
import { randomUUID } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { DrayError, type Logger } from "@dray/common";
import { TaskResultSchema, TaskSchema } from "@dray/proto";
import {
  connect,
  createInbox,
  headers,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from "@nats-io/transport-node";
import {
  AGENT_AWAY,
  type DispatchOptions,
  type TaskKind,
  type TaskPayload,
  type TaskResultOf,
} from "./agent-sessions.js";

/** How often the holder of a relayed task says it is still running it. */
export const KEEPALIVE_MS = 1_000;
/** Silence after which the sender gives the task up: the holder is gone. */
export const SILENCE_LIMIT_MS = 5_000;

/** How long the holder has to acknowledge a relayed task's first message. */
const FIRST_ANSWER_MS = 10_000;

/** Bytes of task or result per NATS message. */
export const CHUNK_BYTES = 256 * 1024;

/** The subject of an environment's agent. Environment ids are UUIDs: safe subject tokens. */
export const agentSubject = (environmentId: string) => `dray_internal.agents.${environmentId}`;

/** Runs a task on an agent held here (the local `AgentSessions.dispatch`). */
export type LocalDispatch = <K extends TaskKind>(
  environmentId: string,
  kind: K,
  payload: TaskPayload<K>,
  options: DispatchOptions,
) => Promise<TaskResultOf<K>>;

/** A task being received from another replica: its chunks so far. */
interface Incoming {
  chunks: Uint8Array[];
  total: number;
  replyTo: string;
  timeoutMs: number;
  maxResultBytes: number;
  abort: AbortController;
  /** Drops the task's chunks if they never all arrive; cleared once the task ran. */
  expiry?: NodeJS.Timeout;
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

function chunksOf(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < bytes.byteLength; at += CHUNK_BYTES) out.push(bytes.subarray(at, at + CHUNK_BYTES));
  return out.length > 0 ? out : [new Uint8Array()];
}

/**
 * The "agent away" error of a relayed task. `gone`: no replica holds the agent
 * (no responders, or its holder fell silent), so the store's claim is stale.
 */
const away = (environmentId: string, message: string, gone = true) =>
  new DrayError("unavailable", message, {
    retryable: true,
    details: { environmentId, reason: AGENT_AWAY, gone },
  });

/** True for a relayed task's error saying no replica holds the agent any more (see {@link away}). */
export function isHolderGone(error: unknown): boolean {
  return error instanceof DrayError && (error.details as { gone?: boolean } | undefined)?.gone === true;
}

/** See the module comment. Create with {@link openTaskRelay}. */
export class TaskRelay {
  private readonly served = new Map<string, Subscription>();
  private readonly incoming = new Map<string, Incoming>();
  /** Tasks sent to other replicas and not answered yet. */
  private readonly outgoing = new Set<{ environmentId: string; lost: (why: string) => void }>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly dispatchLocal: LocalDispatch,
    private readonly logger: Logger,
  ) {}

  /** Starts answering tasks for the environment's agent, now held here. */
  serve(environmentId: string): void {
    if (this.served.has(environmentId)) return;
    const sub = this.nc.subscribe(agentSubject(environmentId), {
      callback: (error, msg) => {
        if (!error) this.onMessage(environmentId, msg);
      },
    });
    this.served.set(environmentId, sub);
  }

  /**
   * Stops answering for the environment (its agent left); senders then get
   * "no responders". Resolves once the server has the unsubscription.
   */
  async unserve(environmentId: string): Promise<void> {
    const sub = this.served.get(environmentId);
    this.served.delete(environmentId);
    if (!sub) return;
    sub.unsubscribe();
    await this.nc.flush().catch(() => {});
  }

  private onMessage(environmentId: string, msg: Msg): void {
    const h = msg.headers;
    const taskId = h?.get("task") ?? "";
    if (!taskId) return;
    if (h?.get("cancel")) {
      this.incoming.get(taskId)?.abort.abort();
      return;
    }
    let entry = this.incoming.get(taskId);
    if (!entry) {
      entry = {
        chunks: [],
        total: Number(h?.get("chunks") ?? "1"),
        replyTo: h?.get("reply-to") ?? "",
        timeoutMs: Number(h?.get("timeout-ms") ?? "30000"),
        maxResultBytes: Number(h?.get("max-result-bytes") ?? String(32 * 1024 * 1024)),
        abort: new AbortController(),
      };
      this.incoming.set(taskId, entry);
      // Chunks that never complete (the sender died while sending) are dropped after the task's deadline.
      const pending = entry;
      pending.expiry = setTimeout(() => {
        if (this.incoming.get(taskId) === pending && pending.chunks.length < pending.total)
          this.incoming.delete(taskId);
      }, pending.timeoutMs).unref();
      // The first message is a request: answering it tells the sender a replica holds the agent.
      if (msg.reply) msg.respond(new Uint8Array());
    }
    entry.chunks.push(msg.data);
    if (entry.chunks.length < entry.total) return;
    void this.run(environmentId, taskId, entry);
  }

  private async run(environmentId: string, taskId: string, entry: Incoming): Promise<void> {
    // A closed connection (NATS gone, or shutting down) cannot carry the answer: the sender gives the
    // task up after its silence limit, so the task here stops too.
    const reply = (data: Uint8Array, h: MsgHdrs): boolean => {
      try {
        this.nc.publish(entry.replyTo, data, { headers: h });
        return true;
      } catch (error) {
        this.logger.debug("cannot answer a relayed task", { environmentId, taskId, error: String(error) });
        entry.abort.abort();
        return false;
      }
    };
    // While the task runs, the sender hears from this replica every KEEPALIVE_MS: silence means it died.
    const keepalive = setInterval(() => {
      const h = headers();
      h.set("task", taskId);
      h.set("keepalive", "1");
      if (!reply(new Uint8Array(), h)) clearInterval(keepalive);
    }, KEEPALIVE_MS);
    try {
      const task = fromBinary(TaskSchema, concat(entry.chunks));
      const kind = task.kind.case;
      if (!kind) throw new DrayError("invalid_argument", "a relayed task has no kind");
      const value = await this.dispatchLocal(environmentId, kind, task.kind.value as never, {
        signal: entry.abort.signal,
        timeoutMs: entry.timeoutMs,
        maxResultBytes: entry.maxResultBytes,
      });
      const bytes = toBinary(
        TaskResultSchema,
        create(TaskResultSchema, { kind: { case: kind, value } as never }),
      );
      const parts = chunksOf(bytes);
      parts.forEach((part, i) => {
        const h = headers();
        h.set("task", taskId);
        h.set("seq", String(i));
        h.set("chunks", String(parts.length));
        reply(part, h);
      });
    } catch (error) {
      const e = DrayError.from(error);
      this.logger.debug("relayed task failed", { environmentId, taskId, code: e.code });
      const h = headers();
      h.set("task", taskId);
      h.set("error", "1");
      reply(
        new TextEncoder().encode(
          JSON.stringify({ code: e.code, message: e.message, retryable: e.retryable, details: e.details }),
        ),
        h,
      );
    } finally {
      clearInterval(keepalive);
      // The expiry timer would keep the task's chunks (up to a batch of rows) reachable until its deadline.
      clearTimeout(entry.expiry);
      entry.chunks.length = 0;
      this.incoming.delete(taskId);
    }
  }

  /**
   * Sends a task to the replica holding the environment's agent and waits for
   * its result. Rejects `unavailable` (agent away) at once when no replica
   * holds it, `deadline_exceeded` after the timeout, `cancelled` on the signal.
   */
  async dispatch<K extends TaskKind>(
    environmentId: string,
    kind: K,
    payload: TaskPayload<K>,
    options: DispatchOptions = {},
  ): Promise<TaskResultOf<K>> {
    if (options.signal?.aborted)
      throw new DrayError("cancelled", "the task was cancelled before it was sent");
    const taskId = randomUUID();
    const timeoutMs = options.timeoutMs ?? 30_000;
    const bytes = toBinary(
      TaskSchema,
      create(TaskSchema, { taskId, kind: { case: kind, value: payload } as never }),
    );
    const parts = chunksOf(bytes);
    const inbox = createInbox();
    const subject = agentSubject(environmentId);
    const received: Uint8Array[] = [];
    let settle: { resolve: (v: Uint8Array) => void; reject: (e: unknown) => void } | undefined;
    const result = new Promise<Uint8Array>((resolve, reject) => {
      settle = { resolve, reject };
    });
    // Settled by callbacks possibly before it is awaited (a cancel during the first request).
    result.catch(() => {});
    let heardAt = Date.now();
    const sub = this.nc.subscribe(inbox, {
      callback: (error, msg) => {
        if (error) return settle?.reject(error);
        heardAt = Date.now();
        if (msg.headers?.get("keepalive")) return;
        if (msg.headers?.get("error")) {
          const e = JSON.parse(new TextDecoder().decode(msg.data)) as {
            code: string;
            message: string;
            retryable?: boolean;
            details?: unknown;
          };
          settle?.reject(
            new DrayError(e.code as never, e.message, {
              retryable: e.retryable ?? false,
              details: e.details,
            }),
          );
          return;
        }
        received.push(msg.data);
        if (received.length >= Number(msg.headers?.get("chunks") ?? "1")) settle?.resolve(concat(received));
      },
    });
    const cancel = () => {
      const h = headers();
      h.set("task", taskId);
      h.set("cancel", "1");
      try {
        this.nc.publish(subject, new Uint8Array(), { headers: h });
      } catch {
        // NATS is gone: the holder hears nothing from us either, and gives the task up on its own.
      }
    };
    const timer = setTimeout(() => {
      cancel();
      settle?.reject(
        new DrayError("deadline_exceeded", `the agent did not answer within ${timeoutMs} ms (relayed)`, {
          retryable: true,
          details: { taskId, kind },
        }),
      );
    }, timeoutMs);
    const onAbort = () => {
      cancel();
      settle?.reject(new DrayError("cancelled", "the task was cancelled", { details: { taskId } }));
    };
    // The holder died (or lost the agent to another replica): give the task up as "agent away".
    const lost = (why: string) => settle?.reject(away(environmentId, why));
    const watchdog = setInterval(() => {
      if (Date.now() - heardAt > SILENCE_LIMIT_MS)
        lost(`the replica holding the environment's agent stopped answering for ${SILENCE_LIMIT_MS} ms`);
    }, KEEPALIVE_MS);
    const pending = { environmentId, lost };
    this.outgoing.add(pending);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const first = headers();
      first.set("task", taskId);
      first.set("chunks", String(parts.length));
      first.set("reply-to", inbox);
      first.set("timeout-ms", String(timeoutMs));
      first.set("max-result-bytes", String(options.maxResultBytes ?? 32 * 1024 * 1024));
      try {
        await this.nc.request(subject, parts[0], { timeout: FIRST_ANSWER_MS, headers: first });
      } catch (error) {
        if ((error as { isNoResponders?: () => boolean }).isNoResponders?.())
          throw away(environmentId, "no control-plane replica holds the environment's agent: it is offline");
        // A slow answer is not proof that nobody holds the agent: retried, but the claim still counts.
        throw away(
          environmentId,
          `the replica holding the environment's agent did not answer: ${String(error)}`,
          false,
        );
      }
      try {
        for (let i = 1; i < parts.length; i++) {
          const h = headers();
          h.set("task", taskId);
          this.nc.publish(subject, parts[i], { headers: h });
        }
      } catch (error) {
        throw away(
          environmentId,
          `the task could not be sent to the agent's replica: ${String(error)}`,
          false,
        );
      }
      const answer = fromBinary(TaskResultSchema, await result);
      if (answer.kind.case !== kind)
        throw new DrayError(
          "internal",
          `the agent answered a ${kind} task with ${answer.kind.case ?? "nothing"}`,
        );
      return answer.kind.value as TaskResultOf<K>;
    } finally {
      clearTimeout(timer);
      clearInterval(watchdog);
      this.outgoing.delete(pending);
      options.signal?.removeEventListener("abort", onAbort);
      sub.unsubscribe();
    }
  }

  /**
   * Gives up the tasks relayed for the environment's agent (as "agent away",
   * retryable): it has just opened a session here, so the replica they were
   * sent to no longer holds it.
   */
  abandon(environmentId: string, why: string): void {
    for (const p of [...this.outgoing]) if (p.environmentId === environmentId) p.lost(why);
  }

  /** Stops serving every agent and closes the connection. */
  async close(): Promise<void> {
    for (const id of [...this.served.keys()]) await this.unserve(id);
    for (const entry of this.incoming.values()) entry.abort.abort();
    await this.nc.close().catch(() => {});
  }
}

/** Connects a relay to NATS at `url`. */
export async function openTaskRelay(
  url: string,
  dispatchLocal: LocalDispatch,
  logger: Logger,
): Promise<TaskRelay> {
  const nc = await connect({
    servers: url,
    name: "dray-control-plane-relay",
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    timeout: 2_000,
  });
  return new TaskRelay(nc, dispatchLocal, logger);
}
