/**
 * A run survives the death of a control-plane replica (issue 13): three
 * replicas share one store and NATS; the target's agent lists replicas 1 and
 * 3 and starts on 1, the source's lists 2 and 3 and starts on 2. Replica 1 is
 * killed with SIGKILL in the middle of a copy: the target's agent fails over
 * to replica 3, the execution's lease moves to another replica if replica 1
 * ran it, and the copy completes exactly once: with writeStrategy insert, a
 * batch written twice would show up as key conflicts (skipped rows) or extra
 * rows, and the target would differ from the source.
 */
import { afterAll, describe, expect, inject, it } from "vitest";
import { eventually } from "./support/api-client.js";
import { waitForExecution } from "./support/dray-stack.js";
import {
  type ReplicaEnvironment,
  type ReplicaSet,
  startReplicaSet,
  waitForAgentOn,
} from "./support/replicas.js";

const SCHEMA = `
create table customers (id bigint primary key, name text not null);
create table orders (id bigint primary key, customer_id bigint not null references customers(id), total numeric(10,2));
`;
const DATA = `
insert into customers select g, 'customer ' || g from generate_series(1, 1000) g;
insert into orders select g, 1 + g % 1000, (g % 997) / 7.0 from generate_series(1, 12000) g;
`;
/** Every insert statement into orders (one per batch) takes 0.25 s: the copy lasts several seconds. */
const SLOW = `
create function slow_batches() returns trigger language plpgsql as $$ begin perform pg_sleep(0.25); return null; end $$;
create trigger slow_batches after insert on orders for each statement execute function slow_batches();
`;

type Replica = ReplicaSet["replicas"][number];

/** Three replicas; the target's agent starts on replica 1 (then 3), the source's on replica 2 (then 3). */
async function replicasWithAgentsSpread() {
  const set = await startReplicaSet(inject("databaseUrl"), inject("natsUrl"), 3);
  sets.push(set);
  const [first, second, third] = set.replicas as [Replica, Replica, Replica];
  const [source, target] = await Promise.all([
    set.addEnvironment("fr-src", `${second.cp.grpcUrl}, ${third.grpcHostPort}`),
    set.addEnvironment("fr-dst", `${first.cp.grpcUrl}, ${third.grpcHostPort}`),
  ]);
  await source.db.sql.unsafe(`${SCHEMA}${DATA}`);
  await target.db.sql.unsafe(`${SCHEMA}${SLOW}`);
  for (const env of [source, target]) {
    await waitForAgentOn(first, env.id, 20_000);
    const refreshed = await first.api.post(`/api/v1/environments/${env.id}/refresh`);
    if (refreshed.status !== 200) throw new Error(`cannot describe: ${JSON.stringify(refreshed.body)}`);
  }
  return { set, first, second, third, source, target };
}

const sets: ReplicaSet[] = [];

afterAll(async () => {
  await Promise.allSettled(sets.map((s) => s.close()));
});

async function digest(env: ReplicaEnvironment, table: string) {
  const [row] = await env.db.sql.unsafe(
    `select count(*)::int as n, md5(coalesce(string_agg(t::text, '|' order by id), '')) as md5 from ${table} t`,
  );
  return row;
}

/**
 * Starts the copy through `startVia` (whose executor then runs it), kills replica 1 (which holds the
 * target's agent) mid-run, and checks that the copy completes exactly once, watched through replica 2.
 */
async function killFirstReplicaMidRun(startVia: "first" | "second") {
  const { set, first, second: watcherIfFirstDies, third, source, target } = await replicasWithAgentsSpread();
  const starter = startVia === "first" ? first : watcherIfFirstDies;
  let second = watcherIfFirstDies;
  {
    const created = await starter.api.post("/api/v1/pipelines", {
      name: "failover-run",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "insert",
      entities: ["public.customers", "public.orders"],
      batchSize: 500,
      // The slow trigger must fire (loads run with triggers off by default).
      targetTriggers: "fire",
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const run = await starter.api.post(`/api/v1/pipelines/${created.body.id}/executions`, {});
    expect(run.status, JSON.stringify(run.body)).toBe(202);
    await eventually(async () => {
      const r = await second.api.get(`/api/v1/executions/${run.body.id}`);
      if (r.body.status !== "queued" && r.body.status !== "in_progress")
        throw new Error(`the run ended before the kill: ${JSON.stringify(r.body)}`);
      return r.body.totals.processed >= 3000 ? true : undefined;
    }, 60_000);
    const before = await second.api.get(`/api/v1/executions/${run.body.id}`);
    expect(before.body.status).toBe("in_progress");
    // Any replica may claim a run; the one started through usually does. Which one runs it decides the
    // case: "first" kills the replica running the execution, "second" the one holding the target's agent.
    const [lease] = await set.store.sql<{ owner: string }[]>`
      select lease_owner as owner from executions where id = ${run.body.id}`;
    const owner = set.replicas.find((r) => lease?.owner?.endsWith(`:${r.cp.child.pid}`)) ?? first;
    const victim = startVia === "first" ? owner : first;
    second = [watcherIfFirstDies, third, first].find((r) => r !== victim)!;
    await victim.cp.stop("SIGKILL");

    const done = await waitForExecution(second.api, run.body.id, 120_000).catch(async (error) => {
      const view = await second.api.get(`/api/v1/executions/${run.body.id}`);
      const log = await second.api.get(`/api/v1/pipeline/status?pipelineToken=${view.body.pipelineToken}`);
      const errors = await second.api.get(`/api/v1/executions/${run.body.id}/errors`);
      throw new Error(
        `${error}\n${JSON.stringify(view.body)}\n${JSON.stringify(log.body).slice(-3000)}\n${JSON.stringify(errors.body).slice(-2000)}`,
      );
    });
    expect(done.status, JSON.stringify({ reason: done.reason, code: done.reasonCode })).toBe("completed");
    for (const table of ["customers", "orders"])
      expect(await digest(target, table)).toEqual(await digest(source, table));
    expect(done.totals).toMatchObject({ created: 13_000, skipped: 0, failed: 0 });
    console.log(
      `started through the ${startVia} replica, survived the kill of a replica: attempt ${done.attempts}, ${done.durationMs} ms`,
    );
    return { done, ownerKilled: victim === owner };
  }
}

describe("the kill of a replica in the middle of a run", () => {
  it("run by a replica that lives: its tasks to the dead one are given up and redone through the agent's new replica", async () => {
    const { done, ownerKilled } = await killFirstReplicaMidRun("second");
    // Run by a replica that lives: one attempt. (When replica 1 claimed it after all, it moved.)
    if (ownerKilled) expect(done.attempts).toBeGreaterThan(1);
    else expect(done.attempts).toBe(1);
  }, 240_000);

  it("run by the replica that is killed: another takes its lease over and finishes the copy", async () => {
    const { done } = await killFirstReplicaMidRun("first");
    expect(done.attempts).toBeGreaterThan(1);
  }, 240_000);
});
