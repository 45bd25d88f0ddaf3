/**
 * Real schemas, all at once: a merge of a whole sample database (see
 * support/real-schema-sample.ts: a NOT NULL cycle, self-references,
 * partitions with their own foreign keys, inheritance with a rule, triggers,
 * sequences and identities, a UNIQUE NOT NULL key) leaves every table equal to
 * the source's, and a second run rewrites no row.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type DrayStack, type StackEnvironment, startDrayStack } from "./support/dray-stack.js";
import { createPipeline } from "./support/executions.js";
import {
  describeRun,
  planOf,
  rowsDigests,
  rowVersionsOf,
  runAndWait,
} from "./support/real-schema-helpers.js";
import {
  SAMPLE_ENTITIES,
  SAMPLE_RELATIONS,
  SAMPLE_ROWS,
  SAMPLE_SOURCE_SQL,
  SAMPLE_TARGET_SQL,
} from "./support/real-schema-sample.js";

const FROMS = SAMPLE_RELATIONS.map(([from]) => from);

let stack: DrayStack;
let source: StackEnvironment;
let target: StackEnvironment;
let pipelineId: string;

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"));
  [source, target] = await Promise.all([
    stack.addEnvironment("rs-sample-src", SAMPLE_SOURCE_SQL),
    stack.addEnvironment("rs-sample-dst", SAMPLE_TARGET_SQL),
  ]);
}, 90_000);

afterAll(async () => stack?.close());

describe("a merge of the whole sample database", () => {
  it("copies every table exactly", async () => {
    const expected = await rowsDigests(source.db.sql, FROMS);
    for (const [from, rows] of Object.entries(SAMPLE_ROWS)) expect(expected[from]!.rows, from).toBe(rows);

    pipelineId = await createPipeline(stack.api, {
      name: "tool-library-merge",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "merge",
      entities: SAMPLE_ENTITIES,
      batchSize: 1000,
      entityConcurrency: 2,
    });
    const plan = await planOf(stack.api, pipelineId);
    expect.soft(plan.blocking).toEqual([]);
    expect.soft(plan.targetTriggers).toBe("off");

    const { view } = await runAndWait(stack.api, pipelineId, 100_000);
    expect(view.status, describeRun(view)).toBe("completed");
    expect(view.totals).toMatchObject({ failed: 0, skipped: 0 });
    const actual = await rowsDigests(target.db.sql, FROMS);
    for (const from of FROMS) expect(actual[from], from).toEqual(expected[from]);
  }, 120_000);

  it("a second run rewrites no row and leaves every table equal", async () => {
    expect(pipelineId, "the first run's pipeline").toBeDefined();
    const versions = await rowVersionsOf(target.db.sql, SAMPLE_RELATIONS);
    const { view } = await runAndWait(stack.api, pipelineId, 100_000);
    expect(view.status, describeRun(view)).toBe("completed");
    const after = await rowVersionsOf(target.db.sql, SAMPLE_RELATIONS);
    const rewritten = Object.fromEntries(
      FROMS.map((from) => [from, after[from]!.filter((v, i) => v !== versions[from]![i]).length]),
    );
    expect(rewritten).toEqual(Object.fromEntries(FROMS.map((from) => [from, 0])));
    const expected = await rowsDigests(source.db.sql, FROMS);
    const actual = await rowsDigests(target.db.sql, FROMS);
    for (const from of FROMS) expect(actual[from], from).toEqual(expected[from]);
  }, 120_000);
});
