import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { type DrayStack, startDrayStack, waitForExecution } from "./support/dray-stack.js";

const SCHEMA = `
  create table accounts (id bigint primary key, name text not null, parent_id bigint references accounts(id));
  create table contacts (id bigint primary key, account_id bigint not null references accounts(id), email text);
`;
let stack: DrayStack;
beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"));
}, 60_000);
afterAll(async () => stack?.close());

it("copies", async () => {
  const source = await stack.addEnvironment(
    "src",
    `${SCHEMA}
    insert into accounts select g, 'a' || g, case when g > 1 then g - 1 end from generate_series(1, 1000) g;
    insert into contacts select g, g % 1000 + 1, 'c' || g from generate_series(1, 5000) g;`,
  );
  const target = await stack.addEnvironment("dst", SCHEMA);
  const p = await stack.api.post("/api/v1/pipelines", {
    name: "p1",
    sourceEnvironmentId: source.id,
    targetEnvironmentId: target.id,
    writeStrategy: "merge",
    entities: ["public.accounts", "public.contacts"],
    batchSize: 700,
  });
  expect(p.status).toBe(201);
  const run = await stack.api.post(`/api/v1/pipelines/${p.body.id}/executions`);
  expect(run.status).toBe(202);
  const done = await waitForExecution(stack.api, run.body.id, 60_000);
  console.log(JSON.stringify(done, null, 1).slice(0, 3000));
  const errors = await stack.api.get(`/api/v1/executions/${run.body.id}/errors`);
  console.log(JSON.stringify(errors.body).slice(0, 2000));
  expect(done.status).toBe("completed");
  const [row] = await target.db.sql`select count(*)::int as n from contacts`;
  const n = row?.n;
  expect(n).toBe(5000);
}, 120_000);
