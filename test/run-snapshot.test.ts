/**
 * One moment of the source: a fresh run reads every entity in one exported
 * snapshot of the source database (as pg_dump does), so the target holds the
 * source as of one moment even while writers change it, and the references the
 * source enforces are not checked again once what they reference was copied
 * whole (control-plane/src/executor/run-snapshot.ts). When a referenced entity
 * was not copied whole (rows rejected), its references are checked as before.
 * Real processes, real Postgres.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type DrayStack, type StackEnvironment, startDrayStack } from "./support/dray-stack.js";
import { countRows, createPipeline } from "./support/executions.js";
import { describeRun, errorLog, runAndWait, stageLog } from "./support/real-schema-helpers.js";

const SCHEMA = (shopName: string) => `
  create table region (id int primary key, name text not null);
  create table shop (id int primary key, region_id int not null references region (id), name ${shopName} not null);
  create table sale (id int primary key, shop_id int not null references shop (id), amount numeric(10,2) not null);
`;
const DATA = `
  insert into region select g, 'Region ' || g from generate_series(1, 50) g;
  insert into shop select g, 1 + g % 50, 'Shop ' || g || case when g % 400 = 0 then ' (closed)' else '' end
    from generate_series(1, 2000) g;
  insert into sale select g, 1 + g % 2000, (g % 997) * 1.5 from generate_series(1, 20000) g;
  analyze;
`;
/** Sales of the target whose shop is missing there. */
const ORPHANS =
  "select count(*)::int as n from sale s where not exists (select 1 from shop p where p.id = s.shop_id)";

let stack: DrayStack;
let source: StackEnvironment;
let target: StackEnvironment;
let narrowTarget: StackEnvironment;

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"));
  [source, target, narrowTarget] = await Promise.all([
    stack.addEnvironment("snap-src", `${SCHEMA("text")}${DATA}`),
    stack.addEnvironment("snap-dst", SCHEMA("text")),
    // The names of closed shops (five of them) do not fit: those shops are rejected.
    stack.addEnvironment("snap-narrow", SCHEMA("varchar(9)")),
  ]);
}, 90_000);

afterAll(async () => stack?.close());

/** A pipeline merging the three tables from the source into `into`. */
function mergeAll(name: string, into: StackEnvironment, settings: Record<string, unknown>): Promise<string> {
  return createPipeline(stack.api, {
    name,
    sourceEnvironmentId: source.id,
    targetEnvironmentId: into.id,
    writeStrategy: "merge",
    entities: ["public.region", "public.shop", "public.sale"],
    ...settings,
  });
}

describe("a run while writers add shops with their sales", () => {
  it("copies one moment of the source: every copied shop with all its sales, no sale without its shop", async () => {
    const pipelineId = await mergeAll("snapshot-merge", target, { batchSize: 500, entityConcurrency: 1 });
    // Each transaction adds one shop and five sales of it, from ids past the seeded ones.
    let writing = true;
    let added = 0;
    const writer = (async () => {
      for (let n = 1; writing; n++) {
        const shop = 100_000 + n;
        await source.db.sql.begin(async (tx) => {
          await tx`insert into shop values (${shop}, 1, ${`New ${n}`})`;
          await tx`insert into sale select ${shop * 10} + g, ${shop}, 1 from generate_series(1, 5) g`;
        });
        added++;
        await sleep(5);
      }
    })();
    let run: Awaited<ReturnType<typeof runAndWait>>;
    try {
      await sleep(100);
      run = await runAndWait(stack.api, pipelineId, 120_000);
    } finally {
      writing = false;
      await writer;
    }
    expect(run.view.status, describeRun(run.view)).toBe("completed");
    expect(added).toBeGreaterThan(5);
    const [orphans] = await target.db.sql.unsafe<{ n: number }[]>(ORPHANS);
    expect(orphans!.n).toBe(0);
    // One moment: the new shops copied are exactly those whose sales were copied, five each.
    const [counts] = await target.db.sql.unsafe<{ shops: number; sales: number }[]>(
      `select (select count(*)::int from shop where id > 100000) as shops,
              (select count(*)::int from sale where shop_id > 100000) as sales`,
    );
    expect(counts!.sales).toBe(counts!.shops * 5);
    for (const e of run.view.entities)
      expect(e, describeRun(run.view)).toMatchObject({ skipped: 0, failed: 0 });
    expect(await countRows(target.db.sql, "sale")).toBe(20000 + counts!.sales);

    const log = await stageLog(stack.api, run.pipelineToken);
    const descriptions = log.map((s) => String(s.description));
    expect(
      descriptions.some((d) => /reading the source as of one moment \(snapshot [0-9A-F-]+\)/.test(d)),
    ).toBe(true);
    expect(descriptions).toContain(
      "Loading public.sale; references sale_shop_id_fkey hold in the source snapshot and are not checked again",
    );
    expect(descriptions).toContain(
      "Loading public.shop; references shop_region_id_fkey hold in the source snapshot and are not checked again",
    );
    expect(descriptions).toContain("Loading public.region");
  }, 150_000);
});

describe("a run whose referenced entity is not copied whole", () => {
  it("checks that entity's references again: sales of rejected shops are rejected, not written without their shop", async () => {
    const pipelineId = await mergeAll("snapshot-narrow", narrowTarget, {
      batchSize: 5000,
      stopOnError: false,
    });
    const run = await runAndWait(stack.api, pipelineId, 120_000);
    expect(run.view.status, describeRun(run.view)).toBe("completed");
    const byName = Object.fromEntries(run.view.entities.map((e: any) => [e.entity, e]));
    const [rejected] = await source.db.sql.unsafe<{ rejectedShops: number; salesOfRejected: number }[]>(
      `select (select count(*)::int from shop where length(name) > 9) as "rejectedShops",
              (select count(*)::int from sale s join shop p on p.id = s.shop_id where length(p.name) > 9) as "salesOfRejected"`,
    );
    const { rejectedShops, salesOfRejected } = rejected!;
    expect(rejectedShops).toBe(5);
    expect(byName["public.shop"].skipped).toBe(rejectedShops);
    expect(byName["public.sale"].skipped).toBe(salesOfRejected);
    const [orphans] = await narrowTarget.db.sql.unsafe<{ n: number }[]>(ORPHANS);
    expect(orphans!.n).toBe(0);
    const errors = await errorLog(stack.api, run.id);
    expect(errors.filter((e) => e.entity === "public.sale" && e.code === "23503")).toHaveLength(
      salesOfRejected,
    );

    const descriptions = (await stageLog(stack.api, run.pipelineToken)).map((s) => String(s.description));
    // shop's reference to region is still trusted (region was copied whole); sale's to shop is not.
    expect(descriptions).toContain(
      "Loading public.shop; references shop_region_id_fkey hold in the source snapshot and are not checked again",
    );
    expect(descriptions).toContain("Loading public.sale");
  }, 150_000);
});
