/**
 * A draining agent exits as soon as its work is settled (issue 9, reliability 2):
 * SIGTERM of an idle agent exits at once, and SIGTERM while a write is in flight
 * lets that write commit and report its result, then exits right away — the
 * drain timeout (30 s here) is only an upper bound, never a wait.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { eventually } from "./support/api-client.js";
import {
  type DrayStack,
  type StackEnvironment,
  startDrayStack,
  waitForExecution,
} from "./support/dray-stack.js";
import { allPages, countRows, createPipeline, startRun, waitForAgentSleep } from "./support/executions.js";
import type { DrayProcess } from "./support/processes.js";

const ROWS = 2_000;
/** How long the target's trigger sleeps inside the one write batch. */
const SLEEP_S = 3;
/** The agents' drain timeout (the default): far above what a settled drain may take. */
const DRAIN_TIMEOUT_MS = 30_000;

const SCHEMA = "create table items (id bigint primary key, label text not null);";
const DATA = `insert into items select g, 'item-' || g from generate_series(1, ${ROWS}) g; analyze;`;
const SLOW_WRITE = `
  create function slow_item() returns trigger language plpgsql as $$
  begin
    if new.id = ${ROWS / 2} then perform pg_sleep(${SLEEP_S}); end if;
    return new;
  end $$;
  create trigger slow_item before insert on items for each row execute function slow_item();
  -- Loads run with triggers off (session_replication_role = replica); this test trigger fires anyway.
  alter table items enable always trigger slow_item;
`;

let stack: DrayStack;
let source: StackEnvironment;
let target: StackEnvironment;

/** Sends `signal` and resolves with the exit code and the milliseconds it took to exit. */
async function timedStop(agent: DrayProcess, signal: NodeJS.Signals = "SIGTERM") {
  const started = performance.now();
  const code = await agent.stop(signal);
  return { code, ms: performance.now() - started };
}

async function connected(environmentId: string) {
  await eventually(async () => {
    const r = await stack.api.get(`/api/v1/environments/${environmentId}`);
    return r.body.health === "healthy" && r.body.agent?.connected ? true : undefined;
  }, 20_000);
}

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"));
  [source, target] = await Promise.all([
    stack.addEnvironment("drain-src", `${SCHEMA}${DATA}`),
    stack.addEnvironment("drain-dst", `${SCHEMA}${SLOW_WRITE}`),
  ]);
}, 90_000);

afterAll(async () => stack?.close());

describe("SIGTERM drains and exits as soon as the work is settled", () => {
  it("an idle agent exits 0 within 5 s although its drain timeout is 30 s", async () => {
    const { code, ms } = await timedStop(source.agent);
    expect(code).toBe(0);
    expect(ms).toBeLessThan(5_000);
    expect(source.agent.output()).toMatch(/"to":"draining"/);
    expect(source.agent.output()).toMatch(/"msg":"stopped"/);
    await source.restartAgent();
    await connected(source.id);
  });

  it("a write in flight commits and reports its result, then the agent exits at once", async () => {
    const pipelineId = await createPipeline(stack.api, {
      name: "drain-in-flight",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "insert",
      entities: ["public.items"],
      batchSize: ROWS,
    });
    const run = await startRun(stack.api, pipelineId);
    await waitForAgentSleep(target.db.sql);
    const sleptAt = performance.now();
    const { code, ms } = await timedStop(target.agent);
    expect(code).toBe(0);
    // It waited for the write (the trigger sleeps SLEEP_S) and no longer than needed.
    expect(performance.now() - sleptAt).toBeGreaterThanOrEqual(SLEEP_S * 1000 - 500);
    expect(ms).toBeLessThan(SLEEP_S * 1000 + 5_000);
    expect(ms).toBeLessThan(DRAIN_TIMEOUT_MS / 2);
    expect(target.agent.output()).toMatch(/waiting for tasks in flight/);
    // The batch committed before the exit, and the control plane got its result.
    expect(await countRows(target.db.sql, "items")).toBe(ROWS);
    const batches = await eventually(async () => {
      const b = await allPages(stack.api, `/api/v1/executions/${run.id}/batches`, "batches");
      return b.some((x) => x.state === "Succeeded") ? b : undefined;
    }, 10_000);
    expect(batches.filter((b) => b.state === "Succeeded").map((b) => b.rows)).toEqual([ROWS]);
    // With the agent back, the run ends completed with every row exactly once.
    await target.restartAgent();
    const view = await waitForExecution(stack.api, run.id, 60_000);
    expect(view.status).toBe("completed");
    expect(await countRows(target.db.sql, "items")).toBe(ROWS);
  });
});
