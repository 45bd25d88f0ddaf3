/**
 * Data-quality rules end to end (seed 02's DataQuality stage), with a real
 * control plane and real agents: a copy pipeline with not_null, matches,
 * range, max_length and one_of rules on customers and orders copies exactly
 * the rows that pass (the same rules written in SQL say which), reports each
 * failing row once in the error log (code data_quality, its key and field,
 * never the value), counts it as skipped and logs DataQuality begin,
 * processing and end; batches whose every row fails still move the run on;
 * with a transformed key the error log holds the transformed keys and no
 * failing value leaves the source; a second merge run rewrites nothing and
 * skips as many rows; invalid rules are 400s naming `qualityRules[i]`.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type DrayStack, type StackEnvironment, startDrayStack } from "./support/dray-stack.js";
import { createPipeline } from "./support/executions.js";
import {
  byNumber,
  CUSTOMERS_FAILED_FIELD,
  CUSTOMERS_PASS,
  DQ_CANARY,
  DQ_CUSTOMERS_SCHEMA,
  DQ_DATA,
  DQ_RULES,
  DQ_SCHEMA,
  DQ_SIZE,
  EMAIL_PATTERN,
  expectedOutcome,
  FAILING_VALUES,
  idsOf,
  ORDERS_FAILED_FIELD,
  READINGS_FAILING,
} from "./support/quality-crm.js";
import {
  describeRun,
  errorLog,
  type FinishedRun,
  planOf,
  rowVersionsOf,
  runAndWait,
  stageLog,
} from "./support/real-schema-helpers.js";
import { pgDump } from "./support/transform-crm.js";

let stack: DrayStack;
let source: StackEnvironment;
let target: StackEnvironment;
/** Target of the transform pipeline with rules. */
let txTarget: StackEnvironment;
/** Target of the same transform pipeline without rules. */
let txTargetAll: StackEnvironment;
let copyPipelineId: string;
let firstCopy: { run: FinishedRun; errors: any[] } | undefined;
/** API answers of every run, for the canary check. */
const apiTexts: string[] = [];

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"));
  [source, target, txTarget, txTargetAll] = await Promise.all([
    stack.addEnvironment("dq-src", `${DQ_SCHEMA}${DQ_DATA}`),
    stack.addEnvironment("dq-dst", DQ_SCHEMA),
    stack.addEnvironment("dq-tx-dst", DQ_CUSTOMERS_SCHEMA),
    stack.addEnvironment("dq-tx-all", DQ_CUSTOMERS_SCHEMA),
  ]);
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

function pipelineBody(name: string, to: StackEnvironment, extra: object = {}) {
  return {
    name,
    sourceEnvironmentId: source.id,
    targetEnvironmentId: to.id,
    action: "copy",
    writeStrategy: "merge",
    entities: ["public.customers", "public.orders"],
    qualityRules: DQ_RULES,
    batchSize: 40,
    ...extra,
  };
}

/** Runs a pipeline and keeps the API's answers about the run for the canary check. */
async function run(pipelineId: string): Promise<{ run: FinishedRun; errors: any[]; stages: any[] }> {
  const finished = await runAndWait(stack.api, pipelineId, 60_000);
  const [errors, stages] = await Promise.all([
    errorLog(stack.api, finished.id),
    stageLog(stack.api, finished.pipelineToken),
  ]);
  apiTexts.push(JSON.stringify(finished.view), JSON.stringify(errors), JSON.stringify(stages));
  return { run: finished, errors, stages };
}

/** The counters of one entity in a view. */
function entityOf(view: any, entity: string): any {
  return (view.entities ?? []).find((e: any) => e.entity === entity);
}

/** The rows a DataQuality `processing` entry says were skipped, summed over the stage log. */
function skippedInStageLog(stages: any[]): number {
  return stages
    .filter((s) => s.processName === "DataQuality" && s.state === "processing")
    .reduce((n, s) => n + Number(/: (\d+) row\(s\) skipped/.exec(s.description)?.[1] ?? Number.NaN), 0);
}

/** `(key, field)` of the data_quality entries of `entity`, sorted by key. */
function reported(errors: any[], entity: string): { key: string; field: string }[] {
  return errors
    .filter((e) => e.entity === entity && e.code === "data_quality")
    .map((e) => {
      expect(e.recordKey, JSON.stringify(e)).toHaveLength(1);
      return { key: e.recordKey[0] as string, field: e.field as string };
    })
    .sort((a, b) => Number(a.key) - Number(b.key));
}

describe("data-quality rules on a copy pipeline", () => {
  it("saves the rules: the pipeline shows them and the plan lists them per entity", async () => {
    copyPipelineId = await createPipeline(stack.api, pipelineBody("dq-copy", target));
    const shown = await stack.api.get(`/api/v1/pipelines/${copyPipelineId}`);
    expect(shown.status).toBe(200);
    expect(shown.body.qualityRules).toEqual(DQ_RULES);
    const plan = await planOf(stack.api, copyPipelineId);
    const strip = ({ field, rule, options }: (typeof DQ_RULES)[number]) => ({ field, rule, options });
    expect(entityOf(plan, "public.customers")?.qualityRules).toEqual(
      DQ_RULES.filter((r) => r.entity === "public.customers").map(strip),
    );
    expect(entityOf(plan, "public.orders")?.qualityRules).toEqual(
      DQ_RULES.filter((r) => r.entity === "public.orders").map(strip),
    );
    // A pipeline without rules shows none.
    const bare = await createPipeline(stack.api, pipelineBody("dq-none", target, { qualityRules: [] }));
    const bareShown = await stack.api.get(`/api/v1/pipelines/${bare}`);
    expect(bareShown.body.qualityRules).toBeUndefined();
    expect(entityOf(await planOf(stack.api, bare), "public.customers")?.qualityRules ?? []).toEqual([]);
  });

  it("copies exactly the passing rows and reports each failing row once, by key and field", async () => {
    expect(copyPipelineId, "the saved pipeline").toBeDefined();
    const customers = await expectedOutcome(source.db.sql, "customers", CUSTOMERS_FAILED_FIELD);
    const orders = await expectedOutcome(source.db.sql, "orders", ORDERS_FAILED_FIELD);
    // The dataset fails every rule kind, and NULLs and values at a bound are among the passing rows.
    expect(new Set(customers.failing.map((f) => f.field))).toEqual(
      new Set(["email", "age", "city", "country"]),
    );
    expect(new Set(orders.failing.map((f) => f.field))).toEqual(new Set(["amount", "status"]));
    const [passingShapes] = await source.db.sql<
      { nullAge: number; nullCity: number; nullCountry: number; age120: number; longCity: number }[]
    >`select count(*) filter (where age is null)::int as "nullAge",
             count(*) filter (where city is null)::int as "nullCity",
             count(*) filter (where country is null)::int as "nullCountry",
             count(*) filter (where age = 120)::int as "age120",
             count(*) filter (where char_length(city) = 12 and octet_length(city) > 12)::int as "longCity"
      from customers where ${source.db.sql.unsafe(CUSTOMERS_PASS)}`;
    for (const [name, n] of Object.entries(passingShapes!))
      expect(n, `passing rows with ${name}`).toBeGreaterThan(0);

    const { run: first, errors, stages } = await run(copyPipelineId);
    expect(first.view.status, describeRun(first.view)).toBe("completed");

    // The target holds exactly the passing rows, byte for byte.
    expect(await idsOf(target.db.sql, "customers")).toEqual(customers.passing);
    expect(await idsOf(target.db.sql, "orders")).toEqual(orders.passing);
    for (const [table, pass] of [
      ["customers", CUSTOMERS_PASS],
      ["orders", `(${ORDERS_FAILED_FIELD}) is null`],
    ] as const) {
      const sourceRows = await source.db.sql.unsafe(`select * from ${table} where ${pass} order by id`);
      const targetRows = await target.db.sql.unsafe(`select * from ${table} order by id`);
      expect(targetRows, `${table} rows`).toEqual(sourceRows);
    }

    // One data_quality entry per failing row, with its key and the field of the first rule it failed.
    expect(
      errors.filter((e) => e.code !== "data_quality"),
      "other errors",
    ).toEqual([]);
    expect(reported(errors, "public.customers")).toEqual(customers.failing);
    expect(reported(errors, "public.orders")).toEqual(orders.failing);
    const city = errors.find((e) => e.field === "city");
    expect(city?.message).toBe('failed data-quality rule max_length {"length":12} on field city');
    const notNull = errors.find(
      (e) => e.recordKey[0] === customers.failing.find((f) => f.field === "email")?.key,
    );
    expect(notNull?.message).toMatch(/^failed data-quality rule (not_null|matches .*) on field email$/);
    for (const e of errors) expect(e.message, JSON.stringify(e)).toMatch(/^failed data-quality rule \w+/);
    const text = JSON.stringify(errors);
    for (const value of FAILING_VALUES) expect(text, "a failing value in the error log").not.toContain(value);

    // Counters: the failing rows are skipped, the others created.
    expect(entityOf(first.view, "public.customers")).toMatchObject({
      created: customers.passing.length,
      skipped: customers.failing.length,
      failed: 0,
    });
    expect(entityOf(first.view, "public.orders")).toMatchObject({
      created: orders.passing.length,
      skipped: orders.failing.length,
      failed: 0,
    });
    const failing = customers.failing.length + orders.failing.length;
    expect(first.view.totals).toMatchObject({ skipped: failing, failed: 0 });

    // The stage log: begin, a processing entry per batch with skipped rows, end with the count.
    const dq = stages.filter((s) => s.processName === "DataQuality");
    expect(dq.find((s) => s.state === "begin")?.description).toMatch(
      new RegExp(`^Checking ${DQ_RULES.length} data-quality rules on 2 entities`),
    );
    expect(dq.filter((s) => s.state === "processing").every((s) => s.code === "rows_skipped")).toBe(true);
    expect(skippedInStageLog(stages)).toBe(failing);
    expect(dq.filter((s) => s.state === "end").map((s) => s.description)).toEqual([
      `${failing} row(s) failed data-quality rules and were skipped (error log, code data_quality)`,
    ]);
    const stageText = JSON.stringify(stages);
    for (const value of FAILING_VALUES)
      expect(stageText, "a failing value in the stage log").not.toContain(value);
    firstCopy = { run: first, errors };
  }, 90_000);

  it("a second merge run rewrites no row and skips the same rows", async () => {
    expect(firstCopy, "the first run").toBeDefined();
    const relations = [
      ["customers", "id"],
      ["orders", "id"],
    ] as const;
    const versions = await rowVersionsOf(target.db.sql, relations);
    const { run: second, errors } = await run(copyPipelineId);
    expect(second.view.status, describeRun(second.view)).toBe("completed");
    expect(await rowVersionsOf(target.db.sql, relations)).toEqual(versions);
    for (const entity of ["public.customers", "public.orders"]) {
      const before = entityOf(firstCopy!.run.view, entity);
      expect(entityOf(second.view, entity), entity).toMatchObject({
        created: 0,
        skipped: before.skipped,
        failed: 0,
      });
      expect(reported(errors, entity)).toEqual(reported(firstCopy!.errors, entity));
    }
    expect(second.view.totals.skipped).toBe(firstCopy!.run.view.totals.skipped);
  }, 90_000);

  it("goes on past batches whose every row fails", async () => {
    const id = await createPipeline(stack.api, {
      name: "dq-readings",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      action: "copy",
      writeStrategy: "clean",
      entities: ["public.readings"],
      qualityRules: [
        { entity: "public.readings", field: "value", rule: "range", options: { min: 0, max: 100 } },
      ],
      batchSize: 5,
    });
    const { run: done, errors, stages } = await run(id);
    expect(done.view.status, describeRun(done.view)).toBe("completed");
    const failing = READINGS_FAILING.map(String);
    const all = Array.from({ length: DQ_SIZE.readings }, (_, i) => String(i + 1));
    expect(await idsOf(target.db.sql, "readings")).toEqual(all.filter((k) => !failing.includes(k)));
    expect(reported(errors, "public.readings")).toEqual(failing.map((key) => ({ key, field: "value" })));
    expect(entityOf(done.view, "public.readings")).toMatchObject({
      created: DQ_SIZE.readings - failing.length,
      skipped: failing.length,
      failed: 0,
    });
    // Ids 11–15 and 16–20 are two batches of 5 that fail whole.
    const whole = stages.filter(
      (s) =>
        s.processName === "DataQuality" &&
        / 5 row\(s\) skipped, 5 failed data-quality rule range/.test(s.description),
    );
    expect(whole, JSON.stringify(stages.filter((s) => s.processName === "DataQuality"))).toHaveLength(2);
    expect(skippedInStageLog(stages)).toBe(failing.length);
    // Reading 40 holds 100, the bound itself, and NULLs passed.
    const [kept] = await target.db.sql<{ bound: number; nulls: number }[]>`
      select count(*) filter (where value = 100)::int as bound, count(*) filter (where value is null)::int as nulls
      from readings`;
    expect(kept).toEqual({ bound: 1, nulls: 6 });
  }, 60_000);
});

describe("data-quality rules with a transformed key", () => {
  const transformations = [
    { entity: "public.customers", field: "id", transformer: "permute", options: {} },
    { entity: "public.customers", field: "email", transformer: "email", options: {} },
  ];
  const emailRules = DQ_RULES.slice(0, 2);

  it("reports the transformed keys, and no failing value leaves the source", async () => {
    const body = (name: string, to: StackEnvironment, qualityRules: object[]) => ({
      name,
      sourceEnvironmentId: source.id,
      targetEnvironmentId: to.id,
      action: "transform",
      writeStrategy: "clean",
      entities: ["public.customers"],
      transformations,
      qualityRules,
      batchSize: 40,
    });
    const [checkedId, allId] = await Promise.all([
      createPipeline(stack.api, body("dq-tx", txTarget, emailRules)),
      createPipeline(stack.api, body("dq-tx-all", txTargetAll, [])),
    ]);
    const [checked, all] = [await run(checkedId), await run(allId)];
    expect(checked.run.view.status, describeRun(checked.run.view)).toBe("completed");
    expect(all.run.view.status, describeRun(all.run.view)).toBe("completed");

    const [failing] = await source.db.sql<{ ids: string[] }[]>`
      select coalesce(array_agg(id::text order by id), '{}') as ids from customers
      where email is null or email !~ ${EMAIL_PATTERN}`;
    const rawFailing = failing!.ids;
    expect(rawFailing).toContain("1");
    const allIds = await idsOf(txTargetAll.db.sql, "customers");
    const passIds = new Set(await idsOf(txTarget.db.sql, "customers"));
    expect(allIds).toHaveLength(DQ_SIZE.customers);
    expect(passIds.size).toBe(DQ_SIZE.customers - rawFailing.length);
    // The keys the failing rows would have had in the target: what the run without rules wrote, less the passing ones.
    const transformedFailing = allIds.filter((k) => !passIds.has(k));
    const keys = reported(checked.errors, "public.customers");
    expect(keys.map((k) => k.key)).toEqual(byNumber(transformedFailing));
    expect(keys.every((k) => k.field === "email")).toBe(true);
    expect(byNumber(keys.map((k) => k.key)), "the raw keys").not.toEqual(rawFailing);
    expect(entityOf(checked.run.view, "public.customers")).toMatchObject({
      created: passIds.size,
      skipped: rawFailing.length,
    });
    // The passing rows are transformed as without rules.
    const rowsOf = async (sql: DrayStack["store"]["sql"], where: string) =>
      sql.unsafe(`select * from customers ${where} order by id`);
    expect(await rowsOf(txTarget.db.sql, "")).toEqual(
      await rowsOf(txTargetAll.db.sql, `where id in (${[...passIds].join(", ")})`),
    );
    // Both stages ran.
    const processes = new Set(checked.stages.map((s) => s.processName));
    expect(processes.has("DataQuality") && processes.has("Transformation")).toBe(true);
  }, 90_000);

  it("leaves the canary nowhere: API answers, control plane output, targets", async () => {
    expect(apiTexts.length, "runs whose answers were kept").toBeGreaterThanOrEqual(12);
    const [sourceHas] = await source.db.sql<{ n: number }[]>`
      select count(*)::int as n from customers where email = ${DQ_CANARY}`;
    expect(sourceHas!.n).toBe(1);
    const places: Record<string, string> = {
      API: apiTexts.join("\n"),
      "control plane output": stack.cp.output(),
      targets:
        (await pgDump(target.db.url)) + (await pgDump(txTarget.db.url)) + (await pgDump(txTargetAll.db.url)),
    };
    for (const [place, text] of Object.entries(places)) {
      expect(text.length, place).toBeGreaterThan(0);
      expect(text.includes(DQ_CANARY), `the canary in ${place}`).toBe(false);
    }
  }, 60_000);
});

describe("invalid data-quality rules", () => {
  const cases: { name: string; rule: object; reason: RegExp }[] = [
    {
      name: "an unknown rule",
      rule: { entity: "public.customers", field: "email", rule: "is_email", options: {} },
      reason: /rule "is_email" is not known/,
    },
    {
      name: "max_length on an integer column",
      rule: { entity: "public.customers", field: "age", rule: "max_length", options: { length: 3 } },
      reason: /max_length does not fit column type integer/,
    },
    {
      name: "a matches pattern with a backreference",
      rule: { entity: "public.customers", field: "city", rule: "matches", options: { pattern: "(a)\\1" } },
      reason: /backreference/,
    },
    {
      name: "a range without bounds",
      rule: { entity: "public.orders", field: "amount", rule: "range", options: {} },
      reason: /range needs min, max or both/,
    },
    {
      name: "a field that does not exist",
      rule: { entity: "public.customers", field: "phone", rule: "not_null", options: {} },
      reason: /field phone does not exist in public.customers/,
    },
  ];
  for (const c of cases) {
    it(`refuses ${c.name} with a 400 naming qualityRules[1] and the reason`, async () => {
      const entityField = `${(c.rule as any).entity}.${(c.rule as any).field}`;
      const r = await stack.api.post(
        "/api/v1/pipelines",
        pipelineBody(`dq-bad-${cases.indexOf(c)}`, target, { qualityRules: [DQ_RULES[0], c.rule] }),
      );
      expect(r.status, JSON.stringify(r.body)).toBe(400);
      const message: string = r.body.error.message;
      expect(message).toContain(`qualityRules[1] (${entityField})`);
      expect(message).toMatch(c.reason);
    });
  }
});
