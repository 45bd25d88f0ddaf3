import { silentLogger } from "@dray/common";
import { describe, expect, it } from "vitest";
import { AgentSessions, isAgentAway } from "./agent-sessions.js";

function openSession(sessions: AgentSessions, maxConcurrentTasks: number) {
  return sessions.open({
    agentId: "a1",
    environmentId: "e1",
    organisationId: "o1",
    environmentName: "qa",
    maxConcurrentTasks,
  });
}

async function sentTasks(session: ReturnType<typeof openSession>, count: number) {
  const ids: string[] = [];
  const iterator = session.stream[Symbol.asyncIterator]();
  // The stream's first message is the session's epoch (SessionStart), not a task.
  while (ids.length < count) {
    const next = await iterator.next();
    const message = next.value as { kind: { case: string; value: { taskId: string } } };
    if (message.kind.case === "task") ids.push(message.kind.value.taskId);
  }
  return ids;
}

describe("AgentSessions.dispatch", () => {
  it("never has more tasks in flight than the agent runs at once", async () => {
    const sessions = new AgentSessions(silentLogger);
    const session = openSession(sessions, 2);
    const results = [1, 2, 3, 4].map(() =>
      sessions.dispatch("e1", "testConnection", {}, { timeoutMs: 5_000 }),
    );
    const first = await sentTasks(session, 2);
    await new Promise((r) => setTimeout(r, 20));
    expect(session.pending.size).toBe(2);
    expect(session.stream.isClosed).toBe(false);
    for (const id of first) {
      sessions.complete("a1", id, {
        result: {
          kind: {
            case: "testConnection",
            value: { databaseLatencyMs: 1, serverVersion: "15", databaseName: "db" },
          },
        } as never,
      });
    }
    const second = await sentTasks(session, 2);
    expect(session.pending.size).toBe(2);
    for (const id of second) {
      sessions.complete("a1", id, {
        result: {
          kind: {
            case: "testConnection",
            value: { databaseLatencyMs: 1, serverVersion: "15", databaseName: "db" },
          },
        } as never,
      });
    }
    await expect(Promise.all(results)).resolves.toHaveLength(4);
    expect(session.slotsInUse).toBe(0);
  });

  it("fails waiting dispatches when the agent disconnects, and cancelled waits free nothing twice", async () => {
    const sessions = new AgentSessions(silentLogger);
    const session = openSession(sessions, 1);
    const inFlight = sessions.dispatch("e1", "testConnection", {}, { timeoutMs: 5_000 });
    const controller = new AbortController();
    const waiting = sessions.dispatch(
      "e1",
      "testConnection",
      {},
      { timeoutMs: 5_000, signal: controller.signal },
    );
    const queued = sessions.dispatch("e1", "testConnection", {}, { timeoutMs: 5_000 });
    await new Promise((r) => setTimeout(r, 10));
    controller.abort();
    await expect(waiting).rejects.toMatchObject({ code: "cancelled" });
    sessions.close(session, "test");
    await expect(inFlight).rejects.toMatchObject({ code: "unavailable" });
    await expect(queued).rejects.toMatchObject({ code: "unavailable" });
  });
});

describe("AgentSessions.waitForAgent", () => {
  it("marks the errors of an away agent, and waits for the agent to come back", async () => {
    const sessions = new AgentSessions(silentLogger);
    const session = openSession(sessions, 1);
    const inFlight = sessions.dispatch("e1", "testConnection", {}, { timeoutMs: 5_000 });
    sessions.close(session, "killed");
    const lost = await inFlight.catch((e) => e);
    expect(isAgentAway(lost)).toBe(true);
    expect(lost.details).toMatchObject({ environmentId: "e1" });
    const none = await sessions.dispatch("e1", "testConnection", {}).catch((e) => e);
    expect(isAgentAway(none)).toBe(true);

    const started = Date.now();
    const back = sessions.waitForAgent("e1", 5_000);
    setTimeout(() => openSession(sessions, 1), 100);
    await expect(back).resolves.toMatchObject({ agentId: "a1", environmentName: "qa" });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(sessions.absence("e1")).toBeUndefined();
  });

  it("gives up once the agent has been away for the limit, counted from when it left", async () => {
    const sessions = new AgentSessions(silentLogger);
    sessions.close(openSession(sessions, 1), "killed");
    await new Promise((r) => setTimeout(r, 150));
    const started = Date.now();
    const error = await sessions.waitForAgent("e1", 300).catch((e) => e);
    expect(Date.now() - started).toBeLessThan(290);
    expect(error).toMatchObject({ code: "unavailable", retryable: false });
    expect(error.details).toMatchObject({ reason: "agent_unavailable", environmentId: "e1", agentId: "a1" });
    expect(error.message).toMatch(/environment "qa" has been away for/);
  });

  it("treats a draining agent as away, and stops waiting on cancel", async () => {
    const sessions = new AgentSessions(silentLogger);
    openSession(sessions, 1);
    sessions.markDraining("a1");
    expect(isAgentAway(await sessions.dispatch("e1", "testConnection", {}).catch((e) => e))).toBe(true);
    const controller = new AbortController();
    const waiting = sessions.waitForAgent("e1", 60_000, controller.signal);
    setTimeout(() => controller.abort(), 50);
    await expect(waiting).rejects.toMatchObject({ code: "cancelled" });
  });

  it("records when each work stream opened, so preflight can tell a fresh connection from an old one", async () => {
    const sessions = new AgentSessions(silentLogger);
    const first = openSession(sessions, 1);
    await new Promise((r) => setTimeout(r, 30));
    const second = openSession(sessions, 1);
    expect(second.openedAt - first.openedAt).toBeGreaterThanOrEqual(25);
    expect(sessions.get("e1")).toBe(second);
    expect(Math.abs(Date.now() - second.openedAt)).toBeLessThan(1_000);
  });
});

describe("AgentSessions session epochs", () => {
  /** The next `count` messages of the session's stream. */
  async function nextMessages(session: ReturnType<typeof openSession>, count: number) {
    const iterator = session.stream[Symbol.asyncIterator]();
    const out: { kind: { case: string; value: { taskId?: string; sessionEpoch: bigint } } }[] = [];
    for (let i = 0; i < count; i++) out.push((await iterator.next()).value as (typeof out)[number]);
    return out;
  }

  it("opens each stream with its epoch, which grows, and stamps it on every task and cancel", async () => {
    const sessions = new AgentSessions(silentLogger);
    const first = openSession(sessions, 2);
    const [start] = await nextMessages(first, 1);
    expect(start!.kind.case).toBe("session");
    expect(start!.kind.value.sessionEpoch).toBe(BigInt(first.epoch));
    expect(first.epoch).toBeGreaterThan(0);

    const second = openSession(sessions, 2);
    const controller = new AbortController();
    const task = sessions.dispatch(
      "e1",
      "testConnection",
      {},
      { timeoutMs: 5_000, signal: controller.signal },
    );
    const [opened, sent] = await nextMessages(second, 2);
    expect(second.epoch).toBeGreaterThan(first.epoch);
    expect(opened!.kind).toMatchObject({ case: "session", value: { sessionEpoch: BigInt(second.epoch) } });
    expect(sent!.kind).toMatchObject({ case: "task", value: { sessionEpoch: BigInt(second.epoch) } });
    controller.abort();
    await expect(task).rejects.toMatchObject({ code: "cancelled" });
    const [cancel] = await nextMessages(second, 1);
    expect(cancel!.kind).toMatchObject({
      case: "cancel",
      value: { taskId: sent!.kind.value.taskId, sessionEpoch: BigInt(second.epoch) },
    });
  });

  it("closes a session whose agent answers that a newer session exists", async () => {
    const sessions = new AgentSessions(silentLogger);
    const session = openSession(sessions, 2);
    const task = sessions.dispatch("e1", "testConnection", {}, { timeoutMs: 5_000 });
    const [, sent] = await nextMessages(session, 2);
    sessions.complete("a1", sent!.kind.value.taskId!, {
      error: {
        code: 9,
        message: "task sent under session epoch 1, older than this agent's session epoch 2",
        retryable: true,
        sqlState: "",
        reason: "stale_session_epoch",
      } as never,
    });
    await expect(task).rejects.toMatchObject({
      code: "failed_precondition",
      retryable: true,
      details: { reason: "stale_session_epoch" },
    });
    expect(session.stream.isClosed).toBe(true);
    expect(sessions.get("e1")).toBeUndefined();
  });
});
