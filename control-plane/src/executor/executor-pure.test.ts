import { describe, expect, it } from "vitest";
import {
  agentReadiness,
  type EnvironmentObservation,
  retryWhileAway,
  waitUntilReady,
} from "./agent-readiness.js";
import { chainOrder } from "./batch-chain.js";
import { createThrottle, etaSeconds } from "./progress-math.js";
import { minimumRetrySpanMs, retryDecision, retryDelayMs } from "./retry-policy.js";

describe("retryDecision", () => {
  const retryable = { code: "unavailable" as const, retryable: true };
  it("retries retryable errors with growing delays until the limit", () => {
    const delays = [0, 1, 2, 3].map((a) => retryDecision(retryable, a, 4, () => 0));
    expect(delays.every((d) => d.retry)).toBe(true);
    expect(delays.map((d) => (d.retry ? d.delayMs : 0))).toEqual([2000, 4000, 8000, 16000]);
    expect(retryDecision(retryable, 4, 4)).toEqual({ retry: false });
  });
  it("spans at least 30 s over the default 4 retries, whatever the jitter", () => {
    expect(minimumRetrySpanMs(4)).toBe(30_000);
    for (const r of [0, 0.3, 0.999]) {
      const total = [0, 1, 2, 3].reduce((sum, a) => sum + retryDelayMs(a, () => r), 0);
      expect(total).toBeGreaterThanOrEqual(30_000);
      expect(total).toBeLessThanOrEqual(30_000 * 1.25);
    }
  });
  it("adds jitter on top and caps each delay at 30 s (+ jitter)", () => {
    expect(retryDelayMs(0, () => 1)).toBe(2500);
    expect(retryDelayMs(10, () => 0)).toBe(30_000);
    expect(retryDelayMs(10, () => 1)).toBe(37_500);
  });
  it("never retries data errors or cancellations", () => {
    expect(retryDecision({ code: "failed_precondition", retryable: false }, 0, 4)).toEqual({ retry: false });
    expect(retryDecision({ code: "cancelled", retryable: true }, 0, 4)).toEqual({ retry: false });
  });
});

describe("progress math", () => {
  it("computes the ETA", () => {
    expect(etaSeconds(5000, 10_000, 2500)).toBe(2);
    expect(etaSeconds(10_000, 10_000, 2500)).toBe(0);
    expect(etaSeconds(5000, 10_000, 0)).toBeNull();
  });
  it("throttles to one call per interval", () => {
    let t = 0;
    const throttle = createThrottle(250, () => t);
    expect(throttle.ready()).toBe(true);
    t = 100;
    expect(throttle.ready()).toBe(false);
    t = 260;
    expect(throttle.ready()).toBe(true);
  });
});

describe("chainOrder", () => {
  const b = (seq: number, from: string | null, to: string) => ({
    seq,
    cursorFrom: from === null ? null : [from],
    cursorTo: [to],
  });
  it("follows the cursor chain from the checkpoint, whatever the seq order", () => {
    const batches = [b(7, "30", "40"), b(5, "10", "20"), b(9, "20", "30")];
    expect(chainOrder(batches, ["10"]).map((x) => x.seq)).toEqual([5, 9, 7]);
  });
  it("starts from the beginning when there is no checkpoint", () => {
    expect(chainOrder([b(2, "5", "9"), b(1, null, "5")], null).map((x) => x.seq)).toEqual([1, 2]);
  });
  it("falls back to seq order for batches off the chain", () => {
    expect(chainOrder([b(4, "90", "99"), b(3, "50", "60")], ["10"]).map((x) => x.seq)).toEqual([3, 4]);
  });
});

describe("agentReadiness (preflight's view of an environment's agent)", () => {
  const LIMIT = 32_500;
  const seen = (o: Partial<EnvironmentObservation>): EnvironmentObservation => ({
    role: "target",
    id: "e1",
    name: "dst",
    health: "healthy",
    healthReason: null,
    databaseReachable: true,
    heartbeatAgeMs: 2_000,
    connected: true,
    connectedForMs: 60_000,
    ...o,
  });
  it("is ready when the agent is connected and its environment healthy", () => {
    expect(agentReadiness(seen({}), LIMIT, false)).toEqual({ kind: "ready" });
  });
  it("waits for an agent that left (killed or draining) until its environment would turn unhealthy", () => {
    expect(agentReadiness(seen({ connected: false, heartbeatAgeMs: 5_000 }), LIMIT, false)).toEqual({
      kind: "wait",
      forMs: 27_500,
    });
    const draining = seen({
      connected: false,
      health: "unhealthy",
      healthReason: "the agent is shutting down (draining)",
      heartbeatAgeMs: 500,
    });
    expect(agentReadiness(draining, LIMIT, false)).toEqual({ kind: "wait", forMs: 32_000 });
  });
  it("waits for the first heartbeat of an agent that just reconnected after a drain", () => {
    const back = seen({ health: "unhealthy", heartbeatAgeMs: 4_000, connectedForMs: 300 });
    expect(agentReadiness(back, LIMIT, true)).toEqual({ kind: "wait", forMs: 32_200 });
  });
  it("fails with agent_unavailable, naming the environment and agent, when the limit passes during the wait", () => {
    const gone = seen({ connected: false, heartbeatAgeMs: 33_000, agentId: "a-7" });
    const verdict = agentReadiness(gone, LIMIT, true);
    expect(verdict).toMatchObject({ kind: "fail", reasonCode: "agent_unavailable" });
    expect(verdict.kind === "fail" && verdict.message).toBe(
      'the agent of target environment "dst" (agent a-7) has been away for 33 s, which marks its environment ' +
        "unhealthy: start it again (dray-agent with the same state directory) and re-run the pipeline",
    );
  });
  it("fails at once with environment_unhealthy when the agent was already away past the limit", () => {
    const silent = seen({
      connected: false,
      health: "unhealthy",
      healthReason: "no heartbeat for 32.5 s (3 missed)",
      heartbeatAgeMs: 40_000,
    });
    expect(agentReadiness(silent, LIMIT, false)).toEqual({
      kind: "fail",
      reasonCode: "environment_unhealthy",
      message:
        'target environment "dst" is not healthy (it is unhealthy: no heartbeat for 32.5 s (3 missed)). ' +
        "Check that its agent is running, then run again.",
    });
  });
  it("fails at once when the environment never reported, or a live agent reports its database unreachable", () => {
    const never = seen({ connected: false, health: "unknown", heartbeatAgeMs: null });
    expect(agentReadiness(never, LIMIT, false)).toMatchObject({
      kind: "fail",
      reasonCode: "environment_unhealthy",
      message: expect.stringContaining("its agent has never reported"),
    });
    const database = {
      health: "unhealthy" as const,
      healthReason: "the agent cannot reach its database: connection refused",
      databaseReachable: false,
      heartbeatAgeMs: 1_000,
    };
    for (const o of [seen(database), seen({ ...database, connected: false })]) {
      expect(agentReadiness(o, LIMIT, false)).toMatchObject({
        kind: "fail",
        reasonCode: "environment_unhealthy",
        message: expect.stringContaining("cannot reach its database"),
      });
    }
  });
});

describe("waitUntilReady", () => {
  const away: EnvironmentObservation = {
    role: "source",
    id: "e1",
    name: "src",
    health: "healthy",
    healthReason: null,
    databaseReachable: true,
    heartbeatAgeMs: 1_000,
    connected: false,
  };
  it("announces the wait once and returns when the agent is back", async () => {
    const views = [away, { ...away, heartbeatAgeMs: 1_005 }, { ...away, connected: true, connectedForMs: 5 }];
    const waits: number[] = [];
    const failure = await waitUntilReady(async () => views.shift()!, 10_000, {
      signal: new AbortController().signal,
      pollMs: 1,
      onWait: (_o, forMs) => {
        waits.push(forMs);
      },
    });
    expect(failure).toBeUndefined();
    expect(waits).toEqual([9_000]);
    expect(views).toEqual([]);
  });
  it("returns agent_unavailable once the limit passes while waiting", async () => {
    let age = 9_990;
    const observe = async () => {
      age += 5;
      return { ...away, heartbeatAgeMs: age };
    };
    const failure = await waitUntilReady(observe, 10_000, {
      signal: new AbortController().signal,
      pollMs: 1,
    });
    expect(failure).toMatchObject({ kind: "fail", reasonCode: "agent_unavailable" });
  });
  it("ends with the cancel when the signal aborts during the wait", async () => {
    const controller = new AbortController();
    const waiting = waitUntilReady(async () => away, 60_000, { signal: controller.signal, pollMs: 5_000 });
    setTimeout(() => controller.abort(new Error("cancelled by the user")), 20);
    const started = Date.now();
    await expect(waiting).rejects.toMatchObject({ code: "cancelled", message: "cancelled by the user" });
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});

describe("retryWhileAway (preflight's describe and count tasks)", () => {
  const away = Object.assign(new Error("the agent disconnected"), { away: true });
  const isAway = (e: unknown) => (e as { away?: boolean }).away === true;
  it("waits for the agent and sends the task again once it is back, without giving up", async () => {
    const outcomes: (Error | string)[] = [away, away, "described"];
    let waits = 0;
    const result = await retryWhileAway(
      async () => {
        const next = outcomes.shift()!;
        if (next instanceof Error) throw next;
        return next;
      },
      { isAway, waitForAgent: async () => void waits++, signal: new AbortController().signal, maxWaits: 20 },
    );
    expect({ result, waits }).toEqual({ result: "described", waits: 2 });
  });
  it("throws the agent's own errors at once, the wait's failure, and gives up after maxWaits", async () => {
    const signal = new AbortController().signal;
    const own = new Error("permission denied");
    await expect(
      retryWhileAway(() => Promise.reject(own), {
        isAway,
        waitForAgent: async () => {},
        signal,
        maxWaits: 5,
      }),
    ).rejects.toBe(own);
    const gone = new Error("agent_unavailable");
    await expect(
      retryWhileAway(() => Promise.reject(away), {
        isAway,
        waitForAgent: () => Promise.reject(gone),
        signal,
        maxWaits: 5,
      }),
    ).rejects.toBe(gone);
    let tries = 0;
    await expect(
      retryWhileAway(
        () => {
          tries++;
          return Promise.reject(away);
        },
        { isAway, waitForAgent: async () => {}, signal, maxWaits: 3 },
      ),
    ).rejects.toBe(away);
    expect(tries).toBe(4);
  });
});
