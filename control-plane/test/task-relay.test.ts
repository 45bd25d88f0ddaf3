/**
 * The task relay between replicas over a real NATS: a task and a result
 * larger than a NATS message travel in chunks and arrive byte for byte; an
 * agent no replica serves is "unavailable, agent away" at once; the holder's
 * errors come back with their code; a cancel reaches the holder's task.
 */
import { randomUUID } from "node:crypto";
import { DrayError, silentLogger } from "@dray/common";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { isAgentAway } from "../src/gateway/agent-sessions.js";
import {
  CHUNK_BYTES,
  isHolderGone,
  type LocalDispatch,
  openTaskRelay,
  type TaskRelay,
} from "../src/gateway/task-relay.js";

let holder: TaskRelay;
let sender: TaskRelay;
const served = randomUUID();
const seen: { kind: string; fields: string[]; signal?: AbortSignal }[] = [];
let behaviour: "echo" | "fail" | "hang" = "echo";

const local: LocalDispatch = async (_environmentId, kind, payload, options) => {
  const p = payload as { fields?: string[]; maxRows?: number };
  seen.push({ kind, fields: p.fields ?? [], ...(options.signal ? { signal: options.signal } : {}) });
  if (behaviour === "fail")
    throw new DrayError("failed_precondition", 'relation "public.missing" does not exist', {
      retryable: false,
    });
  if (behaviour === "hang")
    await new Promise((_, reject) =>
      options.signal?.addEventListener("abort", () => reject(new DrayError("cancelled", "cancelled"))),
    );
  // A page bigger than several NATS messages.
  const data = new Uint8Array(3 * 1024 * 1024 + 17);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
  return {
    rows: { fields: p.fields ?? [], rowCount: p.maxRows ?? 0, data },
    done: true,
  } as never;
};

beforeAll(async () => {
  const url = inject("natsUrl");
  holder = await openTaskRelay(url, local, silentLogger);
  sender = await openTaskRelay(url, local, silentLogger);
  holder.serve(served);
  await (holder as unknown as { nc: { flush(): Promise<void> } }).nc.flush();
});

afterAll(async () => {
  await holder?.close();
  await sender?.close();
});

describe("the task relay", () => {
  it("carries a task and a result larger than a NATS message, byte for byte", async () => {
    behaviour = "echo";
    const fields = Array.from({ length: 40_000 }, (_, i) => `field_${i}`);
    const result = await sender.dispatch(served, "readBatch", {
      entity: { schema: "public", name: "t" },
      fields,
      keyFields: ["id"],
      maxRows: 123,
    });
    expect(seen.at(-1)?.fields).toEqual(fields);
    const data = result.rows!.data;
    expect(data.length).toBe(3 * 1024 * 1024 + 17);
    expect(data.length).toBeGreaterThan(4 * CHUNK_BYTES);
    expect(data[1_000_001]).toBe((1_000_001 * 31) & 0xff);
    expect(result.rows!.rowCount).toBe(123);
  });

  it("answers at once that an agent no replica serves is away", async () => {
    const started = Date.now();
    const error = await sender
      .dispatch(randomUUID(), "count", { entity: { schema: "public", name: "t" } })
      .catch((e) => e);
    expect(isAgentAway(error)).toBe(true);
    expect(isHolderGone(error)).toBe(true);
    expect((error as DrayError).code).toBe("unavailable");
    expect((error as Error).message).toContain("no control-plane replica holds the environment's agent");
    // NATS says "no responders" straight away: nowhere near the task's 30 s timeout.
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("brings the holder's error back with its code and message", async () => {
    behaviour = "fail";
    const error = await sender
      .dispatch(served, "count", { entity: { schema: "public", name: "missing" } })
      .catch((e) => e);
    expect(error).toBeInstanceOf(DrayError);
    expect((error as DrayError).code).toBe("failed_precondition");
    expect((error as DrayError).message).toBe('relation "public.missing" does not exist');
  });

  it("passes a cancel on to the holder's task", async () => {
    behaviour = "hang";
    seen.length = 0;
    const abort = new AbortController();
    const pending = sender.dispatch(
      served,
      "count",
      { entity: { schema: "public", name: "t" } },
      { signal: abort.signal },
    );
    await expect.poll(() => seen.at(-1)?.signal !== undefined && seen.at(-1)?.kind === "count").toBe(true);
    const holderSignal = seen.at(-1)!.signal!;
    expect(holderSignal.aborted).toBe(false);
    abort.abort();
    await expect(pending).rejects.toMatchObject({ code: "cancelled" });
    await expect.poll(() => holderSignal.aborted).toBe(true);
  });

  it("gives a task up as 'agent away' once the holder stops sending keepalives (it died)", async () => {
    behaviour = "hang";
    const doomed = await openTaskRelay(inject("natsUrl"), local, silentLogger);
    const environmentId = randomUUID();
    doomed.serve(environmentId);
    // The subscription must reach the server before the task is sent, or the sender hears "no responders".
    await (doomed as unknown as { nc: { flush(): Promise<void> } }).nc.flush();
    seen.length = 0;
    const pending = sender.dispatch(
      environmentId,
      "count",
      { entity: { schema: "public", name: "t" } },
      { timeoutMs: 60_000 },
    );
    await expect.poll(() => seen.length).toBe(1);
    const diedAt = Date.now();
    // The holder's process dies: its connection goes, keepalives stop (its task is left hanging).
    await (doomed as unknown as { nc: { close(): Promise<void> } }).nc.close();
    const error = await pending.catch((e) => e);
    expect(isAgentAway(error)).toBe(true);
    expect(isHolderGone(error)).toBe(true);
    expect((error as Error).message).toContain("stopped answering");
    // After the silence limit, far from the task's 60 s deadline.
    expect(Date.now() - diedAt).toBeLessThan(30_000);
  });

  it("gives up the tasks relayed for an agent that has just moved here", async () => {
    behaviour = "hang";
    const pending = sender.dispatch(
      served,
      "count",
      { entity: { schema: "public", name: "t" } },
      { timeoutMs: 60_000 },
    );
    await expect.poll(() => seen.some((x) => x.kind === "count" && x.signal && !x.signal.aborted)).toBe(true);
    sender.abandon(served, "the environment's agent moved to this replica");
    const error = await pending.catch((e) => e);
    expect(isAgentAway(error)).toBe(true);
    expect((error as Error).message).toBe("the environment's agent moved to this replica");
  });

  it("stops answering for an agent once it is no longer served", async () => {
    behaviour = "echo";
    await holder.unserve(served);
    const error = await sender
      .dispatch(served, "count", { entity: { schema: "public", name: "t" } })
      .catch((e) => e);
    expect(isAgentAway(error)).toBe(true);
    holder.serve(served);
  });
});
