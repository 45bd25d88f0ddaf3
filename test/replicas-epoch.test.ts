/**
 * Two replicas that both believe they hold one agent (issue 13): only the
 * newer session's commands run.
 *
 * Real processes: two control-plane replicas over one store and NATS, and one
 * dray-agent. With a single work stream an agent never hears a replica it has
 * left, so the split is made by a faulty "load balancer" in this process
 * (agent/test/support/gateway-mux.ts): the agent's work stream goes to replica
 * A, then the mux opens it on replica B as well while A's stays open. Each
 * replica holds a session of the agent and dispatches to it locally; B's is
 * newer (the store's next epoch). A Test Connection through A reaches the
 * agent stamped with A's epoch and is refused (`stale_session_epoch`), never
 * run; through B it runs. A then drops its stale session, so its next command
 * is relayed to B over NATS and runs.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type GatewayMux, startGatewayMux } from "../agent/test/support/gateway-mux.js";
import { eventually } from "./support/api-client.js";
import {
  type Replica,
  type ReplicaEnvironment,
  type ReplicaSet,
  startReplicaSet,
  waitForAgentOn,
} from "./support/replicas.js";

let set: ReplicaSet;
let mux: GatewayMux;
let a: Replica;
let b: Replica;
let env: ReplicaEnvironment;

beforeAll(async () => {
  set = await startReplicaSet(inject("databaseUrl"), inject("natsUrl"), 2);
  [a, b] = set.replicas as [Replica, Replica];
  mux = await startGatewayMux([a.grpcHostPort, b.grpcHostPort]);
  env = await set.addEnvironment("epoch-split", mux.address);
}, 90_000);

afterAll(async () => {
  await set?.close();
  await mux?.close();
});

/** The session epochs announced to the agent through the mux, by upstream. */
const announced = (upstream: number) =>
  mux.messages.filter((m) => m.kind === "session" && m.upstream === upstream).map((m) => m.sessionEpoch);

const lastTestAt = async () =>
  (
    await set.store.sql<{ at: Date | null }[]>`
      select last_test_at as at from environments where id = ${env.id}`
  )[0]?.at ?? null;

describe("two replicas holding sessions of one agent", () => {
  it("runs only the newer session's commands", async () => {
    await waitForAgentOn(a, env.id, 20_000);
    const [epochA] = await eventually(async () => (announced(0).length ? announced(0) : undefined), 10_000);

    // Replica B opens a second session of the same agent; A keeps its own.
    mux.addUpstream(1);
    const [epochB] = await eventually(async () => (announced(1).length ? announced(1) : undefined), 10_000);
    expect(epochB).toBe(epochA! + 1n);
    const [claim] = await set.store.sql<{ replica: string; epoch: string }[]>`
      select replica_id as replica, epoch::text from agent_sessions where environment_id = ${env.id}`;
    expect(BigInt(claim!.epoch)).toBe(epochB);
    expect(mux.ended.size).toBe(0);

    // Through A: A dispatches on its own (older) session; the agent refuses it without running it.
    const viaA = await a.api.post(`/api/v1/environments/${env.id}/test`, {});
    expect(viaA.status, JSON.stringify(viaA.body)).not.toBe(200);
    expect(viaA.body.error.code).toBe("failed_precondition");
    expect(viaA.body.error.message).toContain(
      `session epoch ${epochA}, older than this agent's session epoch ${epochB}`,
    );
    const sentByA = mux.messages.filter((m) => m.kind === "task" && m.upstream === 0);
    expect(sentByA.map((m) => m.sessionEpoch)).toEqual([epochA]);
    expect(await lastTestAt()).toBeNull();
    await env.agent.waitFor(/"msg":"command from an older session refused"/, 5_000);

    // Through B: the newer session's command runs.
    const viaB = await b.api.post(`/api/v1/environments/${env.id}/test`, {});
    expect(viaB.status, JSON.stringify(viaB.body)).toBe(200);
    expect(viaB.body.ok).toBe(true);
    expect(
      mux.messages.filter((m) => m.kind === "task" && m.upstream === 1).map((m) => m.sessionEpoch),
    ).toEqual([epochB]);
    const testedAt = await lastTestAt();
    expect(testedAt).not.toBeNull();

    // A dropped its stale session on the refusal: its next command goes to B (NATS) and runs there.
    await eventually(async () => (mux.ended.has(0) ? true : undefined), 5_000);
    const again = await eventually(async () => {
      const r = await a.api.post(`/api/v1/environments/${env.id}/test`, {});
      return r.status === 200 ? r : undefined;
    }, 10_000);
    expect(again.body.ok).toBe(true);
    expect(mux.messages.filter((m) => m.kind === "task" && m.upstream === 0)).toHaveLength(1);
    // One warning for A's epoch, however many of its commands came.
    expect(env.agent.output().match(/command from an older session refused/g)).toHaveLength(1);
  });
});
