/**
 * A control-plane stand-in for agent tests: it records heartbeats and task
 * results, and feeds the work stream with whatever `push` is given (a task,
 * a session announcement); plus the credential of an agent already enrolled.
 */
import type { CredentialStore } from "../../src/credential-store.js";
import type { GatewayConnection } from "../../src/gateway-client.js";

/** A task result the agent sent back. */
export interface CompletedTask {
  taskId: string;
  outcome: { case: string; value: { code?: number; reason?: string; message?: string; retryable?: boolean } };
}

/** A gateway whose work stream yields what {@link push} queues, recording what the agent sends. */
export function fakeGateway() {
  const heartbeats: { at: number; databaseReachable: boolean; databaseError: string }[] = [];
  const queue: unknown[] = [];
  const results: CompletedTask[] = [];
  let wake = () => {};
  const client = {
    heartbeat: async (request: { databaseReachable: boolean; databaseError: string }) => {
      heartbeats.push({ at: performance.now(), ...request });
      return { heartbeatIntervalMs: 30_000 };
    },
    async *openWorkStream(_request: unknown, options: { signal: AbortSignal }) {
      while (!options.signal.aborted) {
        const message = queue.shift();
        if (message) yield message;
        else
          await new Promise<void>((resolve) => {
            wake = resolve;
            options.signal.addEventListener("abort", () => resolve(), { once: true });
          });
      }
    },
    completeTask: async (request: CompletedTask) => {
      results.push(request);
      return { accepted: true };
    },
    drain: async () => ({}),
    enroll: async () => {
      throw new Error("not used");
    },
  };
  const gateway = { client, channel: {}, setCredential() {}, close() {} } as unknown as GatewayConnection;
  const push = (message: unknown) => {
    queue.push(message);
    wake();
  };
  return {
    gateway,
    heartbeats,
    results,
    /** Queues a work-stream message as it is (e.g. a session announcement). */
    push,
    /** Queues a task. */
    pushTask: (task: unknown) => push({ kind: { case: "task", value: task } }),
  };
}

/** The credential store of an agent already enrolled (agent "a" of environment "e"). */
export function enrolledCredentials(): CredentialStore {
  return {
    path: "(memory)",
    load: async () => ({
      agentId: "a",
      environmentId: "e",
      credential: "c",
      controlPlaneAddress: "x",
      enrolledAt: new Date().toISOString(),
    }),
    save: async () => {},
  } as unknown as CredentialStore;
}
