/**
 * Real schemas, part 3: tables without a primary key (a UNIQUE NOT NULL key
 * serves as the row key; a table with no usable key is refused by a merge,
 * naming it, and copied by a clean), a foreign-key cycle whose references are
 * all NOT NULL (loaded, then checked), and re-runs over deferred (nullable)
 * references that rewrite no row.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  type DrayStack,
  type StackEnvironment,
  startDrayStack,
  waitForExecution,
} from "./support/dray-stack.js";
import { countRows, createPipeline } from "./support/executions.js";
import {
  describeRun,
  planOf,
  rowsDigests,
  rowVersionsOf,
  runAndWait,
} from "./support/real-schema-helpers.js";

/** Keyed by a composite UNIQUE over NOT NULL fields, without a primary key. */
const UNIQUE_KEYED = `
  create table bin_slot (shelf text not null, slot int not null, item text, unique (shelf, slot));
`;
/** Its only unique key is over nullable fields, so no key identifies a row; rows repeat exactly. */
const KEYLESS = `
  create table visit_log (visitor text, seen_at timestamptz, note text, unique (visitor, seen_at));
`;
const KEYS_DATA = `
  insert into bin_slot select 'shelf-' || (g / 40), g % 40, case when g % 9 = 0 then null else 'item ' || g end
    from generate_series(0, 1199) g;
  insert into visit_log select case when g % 4 = 0 then null else 'visitor ' || g end,
      timestamptz '2024-06-01 09:00:00+00' + (g % 50) * interval '1 hour', 'walk-in'
    from generate_series(1, 900) g;
  insert into visit_log select null, null, 'same row' from generate_series(1, 3);
`;

/** A cycle through NOT NULL, not deferrable references: depot.manager_id → crew, crew.depot_id → depot. */
const CYCLE_TABLES = `
  create table depot (depot_id int primary key, name text not null, manager_id int not null);
  create table crew (crew_id int primary key, depot_id int not null, name text not null);
`;
const CYCLE_KEYS = `
  alter table crew add constraint crew_depot_fk foreign key (depot_id) references depot (depot_id);
  alter table depot add constraint depot_manager_fk foreign key (manager_id) references crew (crew_id);
`;
/** Inserted before the foreign keys exist; every depot's manager works at that depot. */
const CYCLE_DATA = `
  insert into crew select g, (g - 1) % 30 + 1, 'crew ' || g from generate_series(1, 600) g;
  insert into depot select d, 'depot ' || d, d + 30 * (d % 20) from generate_series(1, 30) d;
`;

/** Nullable deferred references: a self-reference, and a two-table cycle with one nullable side. */
const DEFERRED = `
  create table employee (emp_id int primary key, name text not null, manager_id int references employee (emp_id));
  create table project (project_id int primary key, title text not null, lead_task_id int);
  create table task (task_id int primary key, project_id int not null references project (project_id), title text not null);
  alter table project add constraint project_lead_task_fk foreign key (lead_task_id) references task (task_id);
`;
/** Managers and lead tasks point both to lower and to higher keys. */
const DEFERRED_DATA = `
  insert into employee select g, 'employee ' || g, null from generate_series(1, 2000) g;
  update employee set manager_id = case when emp_id % 10 = 1 then null else (emp_id * 7919) % 2000 + 1 end;
  insert into project select g, 'project ' || g, null from generate_series(1, 200) g;
  insert into task select g, (g * 13) % 200 + 1, 'task ' || g from generate_series(1, 1000) g;
  update project p set lead_task_id = (select min(t.task_id) from task t where t.project_id = p.project_id)
    where p.project_id % 5 <> 0;
  update project set lead_task_id = (select max(t.task_id) from task t where t.project_id = project.project_id)
    where project_id % 3 = 0 and project_id % 5 <> 0;
`;

let stack: DrayStack;
let source: StackEnvironment;
let target: StackEnvironment;

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"));
  [source, target] = await Promise.all([
    stack.addEnvironment(
      "rs-keys-src",
      `${UNIQUE_KEYED}${KEYLESS}${KEYS_DATA}${CYCLE_TABLES}${CYCLE_DATA}${CYCLE_KEYS}${DEFERRED}${DEFERRED_DATA}`,
    ),
    stack.addEnvironment("rs-keys-dst", `${UNIQUE_KEYED}${KEYLESS}${CYCLE_TABLES}${CYCLE_KEYS}${DEFERRED}`),
  ]);
}, 90_000);

afterAll(async () => stack?.close());

const pipeline = (name: string, writeStrategy: string, entities: string[]) => ({
  name,
  sourceEnvironmentId: source.id,
  targetEnvironmentId: target.id,
  writeStrategy,
  entities,
  batchSize: 250,
});

describe("tables without a primary key", () => {
  it("a merge including a table with no usable key is refused, naming exactly that table", async () => {
    const pipelineId = await createPipeline(
      stack.api,
      pipeline("slots-and-visits-merge", "merge", ["public.bin_slot", "public.visit_log"]),
    );
    const plan = await planOf(stack.api, pipelineId);
    expect(plan.blocking.map((b: any) => [b.code, b.entity])).toEqual([["no_row_key", "public.visit_log"]]);
    expect(plan.blocking[0].message).toContain("public.visit_log");
    expect(JSON.stringify(plan.blocking)).not.toContain("bin_slot");

    const started = await stack.api.post(`/api/v1/pipelines/${pipelineId}/executions`);
    let refusal: string;
    if (started.status === 202) {
      const view = await waitForExecution(stack.api, started.body.id, 60_000);
      expect(view.status, describeRun(view)).toBe("failed");
      expect(view.entities.every((e: any) => e.created === 0 && e.updated === 0)).toBe(true);
      refusal = view.reason;
    } else {
      expect(started.status).toBe(409);
      refusal = started.body.error.message;
    }
    expect(refusal).toContain("public.visit_log");
    expect(refusal).not.toContain("bin_slot");
    expect(await countRows(target.db.sql, "bin_slot")).toBe(0);
    expect(await countRows(target.db.sql, "visit_log")).toBe(0);
  });

  it("a table keyed by UNIQUE NOT NULL fields is merged exactly, and a re-run rewrites no row", async () => {
    const pipelineId = await createPipeline(stack.api, pipeline("slots-merge", "merge", ["public.bin_slot"]));
    const plan = await planOf(stack.api, pipelineId);
    expect(plan.blocking).toEqual([]);
    const first = await runAndWait(stack.api, pipelineId);
    expect(first.view.status, describeRun(first.view)).toBe("completed");
    const expected = await rowsDigests(source.db.sql, ["bin_slot"]);
    expect(expected.bin_slot!.rows).toBe(1200);
    expect(await rowsDigests(target.db.sql, ["bin_slot"])).toEqual(expected);

    const versions = await rowVersionsOf(target.db.sql, [["bin_slot", "shelf, slot"]]);
    const second = await runAndWait(stack.api, pipelineId);
    expect(second.view.status, describeRun(second.view)).toBe("completed");
    expect(await rowVersionsOf(target.db.sql, [["bin_slot", "shelf, slot"]])).toEqual(versions);
    expect(await rowsDigests(target.db.sql, ["bin_slot"])).toEqual(expected);
  });

  it("a table with no usable key is copied by a clean run", async () => {
    await target.db.sql`insert into visit_log values ('stale', null, 'target only')`;
    const { view } = await createAndRunClean();
    expect(view.status, describeRun(view)).toBe("completed");
    const expected = await rowsDigests(source.db.sql, ["visit_log"]);
    expect(expected.visit_log!.rows).toBe(903);
    expect(await rowsDigests(target.db.sql, ["visit_log"])).toEqual(expected);
  });

  async function createAndRunClean() {
    const pipelineId = await createPipeline(
      stack.api,
      pipeline("visits-clean", "clean", ["public.visit_log"]),
    );
    expect((await planOf(stack.api, pipelineId)).blocking).toEqual([]);
    return runAndWait(stack.api, pipelineId);
  }
});

describe("a cycle whose references are all NOT NULL", () => {
  const entities = ["public.depot", "public.crew"];
  const tables = ["depot", "crew"];

  it("is planned as checked after load, and merged exactly", async () => {
    const pipelineId = await createPipeline(stack.api, pipeline("depots-merge", "merge", entities));
    const plan = await planOf(stack.api, pipelineId);
    expect(plan.blocking).toEqual([]);
    const cycle = plan.cycles.find((c: any) => c.entities.includes("public.depot"));
    expect(cycle, JSON.stringify(plan.cycles)).toBeDefined();
    expect([...cycle.entities].sort()).toEqual(["public.crew", "public.depot"]);
    expect(cycle.handling).toBe("checked_after_load");

    const { view } = await runAndWait(stack.api, pipelineId);
    expect(view.status, describeRun(view)).toBe("completed");
    expect(view.totals).toMatchObject({ created: 630, failed: 0, skipped: 0 });
    expect(await rowsDigests(target.db.sql, tables)).toEqual(await rowsDigests(source.db.sql, tables));
  });

  it("is cleaned and loaded again exactly by a clean run", async () => {
    // A stale target depot and its manager, pointing at each other.
    await target.db.sql.begin(async (tx) => {
      await tx`set local session_replication_role = replica`;
      await tx`insert into depot values (999, 'stale depot', 999)`;
      await tx`insert into crew values (999, 999, 'stale manager')`;
    });
    const pipelineId = await createPipeline(stack.api, pipeline("depots-clean", "clean", entities));
    expect((await planOf(stack.api, pipelineId)).blocking).toEqual([]);
    const { view } = await runAndWait(stack.api, pipelineId);
    expect(view.status, describeRun(view)).toBe("completed");
    expect(await rowsDigests(target.db.sql, tables)).toEqual(await rowsDigests(source.db.sql, tables));
  });
});

describe("deferred (nullable) references on a re-run", () => {
  const relations = [
    ["employee", "emp_id"],
    ["project", "project_id"],
    ["task", "task_id"],
  ] as const;
  const tables = relations.map(([t]) => t);

  it("a second merge rewrites no row: deferred fields are never set NULL again", async () => {
    const [withManager] = await source.db.sql<{ n: number }[]>`
      select count(*)::int as n from employee where manager_id is not null`;
    expect(withManager!.n).toBe(1800);
    const pipelineId = await createPipeline(
      stack.api,
      pipeline("people-and-projects-merge", "merge", ["public.employee", "public.project", "public.task"]),
    );
    const plan = await planOf(stack.api, pipelineId);
    expect(plan.blocking).toEqual([]);

    const first = await runAndWait(stack.api, pipelineId);
    expect(first.view.status, describeRun(first.view)).toBe("completed");
    const expected = await rowsDigests(source.db.sql, tables);
    expect(await rowsDigests(target.db.sql, tables)).toEqual(expected);

    const versions = await rowVersionsOf(target.db.sql, relations);
    const second = await runAndWait(stack.api, pipelineId);
    expect(second.view.status, describeRun(second.view)).toBe("completed");
    const after = await rowVersionsOf(target.db.sql, relations);
    for (const [table] of relations) {
      const rewritten = after[table]!.filter((v, i) => v !== versions[table]![i]).length;
      expect(rewritten, `${table} rows rewritten by the second run`).toBe(0);
    }
    expect(await rowsDigests(target.db.sql, tables)).toEqual(expected);
  });
});
