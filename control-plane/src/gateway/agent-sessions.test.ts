import { silentLogger } from "@dray/common";
import { describe, expect, it } from "vitest";
import { AgentSessions } from "./agent-sessions.js";

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
  for (let i = 0; i < count; i++) {
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
