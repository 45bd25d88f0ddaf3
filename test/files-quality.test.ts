/**
 * Data-quality rules on file pipelines end to end (control plane and agent as
 * real processes): the rules name target fields (after fieldMapping) and are
 * checked when the pipeline is saved; the control plane checks every parsed
 * row before the target agent writes it, skips the failing rows by line (error
 * log code data_quality, never a value), counts them in the file's
 * rowsRejected and reports the DataQuality stage.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { eventually } from "./support/api-client.js";
import { type DrayStack, type StackEnvironment, startDrayStack } from "./support/dray-stack.js";
import { createPipeline } from "./support/executions.js";

// `name` may be NULL in the target: only the rule keeps NULL names out.
const SETUP_SQL = ["t_dq_csv", "t_dq_ndjson", "t_dq_none", "t_dq_refused"]
  .map((t) => `create table public.${t} (id integer primary key, name text, amount numeric(10,2));`)
  .join("\n");

const RULES = (table: string) => [
  { entity: `public.${table}`, field: "name", rule: "not_null", options: {} },
  { entity: `public.${table}`, field: "amount", rule: "range", options: { min: 0, max: 100 } },
];

let stack: DrayStack;
let target: StackEnvironment;

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"));
  target = await stack.addEnvironment("files-dq-target", SETUP_SQL);
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

/** A files pipeline body into `public.<table>`. */
function pipelineBody(table: string, fileSettings: Record<string, unknown>, qualityRules: object[]) {
  return {
    name: `files-dq-${table.replaceAll("_", "-")}`,
    sourceKind: "files",
    targetEnvironmentId: target.id,
    entities: [`public.${table}`],
    writeStrategy: "insert",
    fileSettings,
    qualityRules,
  };
}

/** Uploads `text` as the form field `file` (multipart); the 202 answer's body. */
async function upload(pipeline: string, filename: string, text: string): Promise<any> {
  const form = new FormData();
  form.append("pipeline", pipeline);
  form.append("file", new Blob([text]), filename);
  const response = await fetch(`${stack.cp.httpUrl}/api/v1/pipeline/upload`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.apiToken}` },
    body: form,
  });
  const body = await response.json();
  expect(response.status, JSON.stringify(body)).toBe(202);
  return body;
}

/** Waits until the file with this token is no longer Unloaded and returns it. */
async function settledFile(pipelineId: string, pipelineToken: string): Promise<any> {
  return eventually(
    async () => {
      const r = await stack.api.get(`/api/v1/pipelines/${pipelineId}/files?limit=100`);
      expect(r.status).toBe(200);
      const file = r.body.files.find((f: any) => f.pipelineToken === pipelineToken);
      return file && file.state !== "Unloaded" ? file : undefined;
    },
    90_000,
    200,
  );
}

/** The stage entries of a job by its pipeline token. */
async function stagesOf(pipelineToken: string): Promise<any[]> {
  const r = await stack.api.get(`/api/v1/pipeline/status?pipelinetoken=${encodeURIComponent(pipelineToken)}`);
  expect(r.status).toBe(200);
  return r.body;
}

/** The error log of the job with this pipeline token. */
async function errorsOf(pipelineId: string, pipelineToken: string): Promise<any[]> {
  const runs = await stack.api.get(`/api/v1/pipelines/${pipelineId}/executions?pageSize=100`);
  expect(runs.status).toBe(200);
  const run = runs.body.executions.find((e: any) => e.pipelineToken === pipelineToken);
  expect(run).toBeDefined();
  const r = await stack.api.get(`/api/v1/executions/${run.id}/errors`);
  expect(r.status).toBe(200);
  return r.body.errors;
}

async function rowsOf(table: string): Promise<{ id: number; name: string | null; amount: string | null }[]> {
  return target.db.sql.unsafe(
    `select id, name, amount::text as amount from public.${table} order by id`,
  ) as any;
}

describe("data-quality rules on file pipelines", () => {
  it("skips the CSV rows that fail a rule by line, loads the others and reports the DataQuality stage", async () => {
    const body = pipelineBody("t_dq_csv", { format: "csv" }, RULES("t_dq_csv"));
    const id = await createPipeline(stack.api, body);
    const shown = await stack.api.get(`/api/v1/pipelines/${id}`);
    expect(shown.body.qualityRules).toEqual(RULES("t_dq_csv"));

    // Line 1 is the header; line 3 has no name (NULL), line 6 an amount above 100.
    const csv = "id,name,amount\n1,a,10\n2,,20\n3,c,0\n4,d,100.00\n5,e,100.01\n6,f,\n";
    const up = await upload(body.name, "amounts.csv", csv);
    const file = await settledFile(id, up.pipelineToken);
    expect(file).toMatchObject({ state: "Loaded", error: null, rowsLoaded: 4, rowsRejected: 2 });
    expect(await rowsOf("t_dq_csv")).toEqual([
      { id: 1, name: "a", amount: "10.00" },
      { id: 3, name: "c", amount: "0.00" },
      { id: 4, name: "d", amount: "100.00" },
      { id: 6, name: "f", amount: null },
    ]);

    const quality = (await errorsOf(id, up.pipelineToken)).filter((e) => e.code === "data_quality");
    expect(quality.map((e) => e.recordKey)).toEqual([["line 3"], ["line 6"]]);
    expect(quality[0].message).toBe("amounts.csv line 3: failed data-quality rule not_null on field name");
    // The options as the store keeps them (jsonb orders their keys).
    expect(quality[1].message).toMatch(
      /^amounts\.csv line 6: failed data-quality rule range \{.+\} on field amount$/,
    );
    expect(quality[1].message).toContain('"max":100');
    expect(quality[1].message).not.toContain("100.01");

    const stages = (await stagesOf(up.pipelineToken)).filter((s) => s.processName === "DataQuality");
    expect(stages.map((s) => s.state)).toEqual(["begin", "processing", "end"]);
    expect(stages[0].description).toContain("2 data-quality rules");
    expect(stages[1].description).toBe(
      "2 row(s) of lines 2–7 failed data-quality rules and were skipped (error log, code data_quality)",
    );
    expect(stages[2].description).toContain("2 row(s) failed data-quality rules");

    // A file whose rows all pass: begin and end only.
    const clean = await upload(body.name, "clean.csv", "id,name,amount\n10,j,5\n");
    expect(await settledFile(id, clean.pipelineToken)).toMatchObject({ rowsLoaded: 1, rowsRejected: 0 });
    const passed = (await stagesOf(clean.pipelineToken)).filter((s) => s.processName === "DataQuality");
    expect(passed.map((s) => [s.state, s.description])).toEqual([
      ["begin", expect.any(String)],
      ["end", "Every row passed the 2 data-quality rules"],
    ]);
  });

  it("checks NDJSON rows on target fields after fieldMapping, and counts unreadable rows apart", async () => {
    const rules = [
      { entity: "public.t_dq_ndjson", field: "name", rule: "max_length", options: { length: 3 } },
      { entity: "public.t_dq_ndjson", field: "name", rule: "matches", options: { pattern: "^[a-z]+$" } },
    ];
    const body = pipelineBody(
      "t_dq_ndjson",
      { format: "ndjson", fieldMapping: { Id: "id", Label: "name" } },
      rules,
    );
    const id = await createPipeline(stack.api, body);
    const lines = [
      '{"Id":1,"Label":"abc"}',
      '{"Id":2,"Label":"abcd"}',
      "not json",
      '{"Id":4,"Label":"AB"}',
      '{"Id":5}',
    ];
    const up = await upload(body.name, "labels.ndjson", `${lines.join("\n")}\n`);
    const file = await settledFile(id, up.pipelineToken);
    expect(file).toMatchObject({ state: "Loaded", rowsLoaded: 2, rowsRejected: 3 });
    expect((await rowsOf("t_dq_ndjson")).map((r) => [r.id, r.name])).toEqual([
      [1, "abc"],
      [5, null],
    ]);
    const errors = await errorsOf(id, up.pipelineToken);
    expect(errors.map((e) => [e.code, e.recordKey[0]])).toEqual([
      ["data_quality", "line 2"],
      ["bad_row", "line 3"],
      ["data_quality", "line 4"],
    ]);
    expect(errors[0].message).toContain("max_length");
    expect(errors[2].message).toContain("matches");
    const stages = (await stagesOf(up.pipelineToken)).filter((s) => s.processName === "DataQuality");
    expect(stages.map((s) => s.state)).toEqual(["begin", "processing", "processing", "end"]);
  });

  it("writes no DataQuality entries for a pipeline without rules", async () => {
    const body = pipelineBody("t_dq_none", { format: "csv" }, []);
    const id = await createPipeline(stack.api, body);
    const up = await upload(body.name, "plain.csv", "id,name,amount\n1,,500\n");
    expect(await settledFile(id, up.pipelineToken)).toMatchObject({ state: "Loaded", rowsRejected: 0 });
    expect(await rowsOf("t_dq_none")).toEqual([{ id: 1, name: null, amount: "500.00" }]);
    expect((await stagesOf(up.pipelineToken)).some((s) => s.processName === "DataQuality")).toBe(false);
  });

  it("refuses rules the target entity cannot take with a 400 naming them", async () => {
    const create = (rules: object[], fileSettings: Record<string, unknown> = { format: "csv" }) =>
      stack.api.post("/api/v1/pipelines", pipelineBody("t_dq_refused", fileSettings, rules));
    const missing = await create([
      { entity: "public.t_dq_refused", field: "colour", rule: "not_null", options: {} },
    ]);
    expect(missing.status, JSON.stringify(missing.body)).toBe(400);
    expect(missing.body.error.message).toContain("qualityRules[0] (public.t_dq_refused.colour)");
    expect(missing.body.error.message).toContain("field colour does not exist in public.t_dq_refused");

    const otherEntity = await create([
      { entity: "public.t_dq_csv", field: "name", rule: "not_null", options: {} },
    ]);
    expect(otherEntity.status).toBe(400);
    expect(otherEntity.body.error.message).toContain("qualityRules[0]");
    expect(otherEntity.body.error.message).toContain("not selected");

    const wrongType = await create([
      { entity: "public.t_dq_refused", field: "name", rule: "range", options: { min: 1 } },
    ]);
    expect(wrongType.status).toBe(400);
    expect(wrongType.body.error.message).toContain("does not fit column type text");

    // With a fieldMapping, a rule's field must be one the mapping fills (a file column name is not a field).
    const unmapped = await create(
      [{ entity: "public.t_dq_refused", field: "amount", rule: "not_null", options: {} }],
      { format: "csv", fieldMapping: { Id: "id", Label: "name" } },
    );
    expect(unmapped.status).toBe(400);
    expect(unmapped.body.error.message).toContain("qualityRules[0] (public.t_dq_refused.amount)");
    expect(unmapped.body.error.message).toContain("fieldMapping");

    // The same pipeline with rules it can take is created.
    expect(
      await createPipeline(stack.api, pipelineBody("t_dq_refused", { format: "csv" }, RULES("t_dq_refused"))),
    ).toEqual(expect.any(String));
  });
});
