/**
 * docs/examples/pipeline.yaml stays valid: the CLI's own `dray pipeline create` takes it, against
 * the control plane's API app over a test database (in-process, the SDK's fetch routed to it), with
 * `source` and `target` environments whose snapshots hold deploy/compose's demo schema; the pipeline
 * it creates has every setting, transformation and quality rule of the file, and
 * `dray pipeline export` gives the file's definition back.
 */

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parse as parseYaml } from "yaml";
import {
  type ApiHarness,
  createEnvironmentWithSnapshot,
  createTestDatabase,
  openApiHarness,
} from "../../control-plane/test/api-test-harness.js";
import { type CliRun, runCliInProcess } from "./cli-in-process.js";

const EXAMPLE = fileURLToPath(new URL("../../docs/examples/pipeline.yaml", import.meta.url));
const BASE = "http://dray.test";

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let h: ApiHarness;
let org: Awaited<ReturnType<ApiHarness["tenant"]>>;
const env = { source: "", target: "" };

/** deploy/compose/schema.sql as an agent describes it (types as Postgres's format_type prints them). */
function demoSnapshot(fingerprint: string) {
  const field = (name: string, type: string) => ({
    name,
    type,
    nullable: false,
    hasDefault: name === "created_at" || name === "placed_at",
    generated: false,
  });
  return {
    capturedAt: "2026-05-01T10:00:00.000Z",
    fingerprint,
    entities: [
      {
        entity: "public.customers",
        schema: "public",
        name: "customers",
        fields: [
          field("id", "bigint"),
          field("name", "text"),
          field("email", "text"),
          field("created_at", "timestamp with time zone"),
        ],
        primaryKey: ["id"],
        references: [],
        estimatedRows: 1000,
      },
      {
        entity: "public.orders",
        schema: "public",
        name: "orders",
        fields: [
          field("id", "bigint"),
          field("customer_id", "bigint"),
          field("total", "numeric(12,2)"),
          field("placed_at", "timestamp with time zone"),
        ],
        primaryKey: ["id"],
        references: [
          {
            name: "orders_customer_id_fkey",
            fields: ["customer_id"],
            referencedEntity: "public.customers",
            referencedFields: ["id"],
          },
        ],
        estimatedRows: 5000,
      },
    ],
  };
}

beforeAll(async () => {
  database = await createTestDatabase();
  h = await openApiHarness(database.url);
  org = await h.tenant("pipeline-example");
  env.source = await createEnvironmentWithSnapshot(h, org, "source", demoSnapshot("fp-demo"));
  env.target = await createEnvironmentWithSnapshot(h, org, "target", demoSnapshot("fp-demo"));
});
afterAll(async () => {
  vi.unstubAllGlobals();
  await h?.close();
  await database?.drop();
});

/** Runs the CLI with the operator's token; returns its exit code, stdout and stderr. */
function cli(args: string[]): Promise<CliRun> {
  return runCliInProcess(
    (async (input, init) => h.app.fetch(new Request(input, init))) as typeof fetch,
    args,
    { DRAY_URL: BASE, DRAY_TOKEN: org.operator },
  );
}

describe("docs/examples/pipeline.yaml", () => {
  const example = parseYaml(readFileSync(EXAMPLE, "utf8")) as Record<string, any>;

  it("is a transform pipeline with transformations and quality rules", () => {
    expect(example.action).toBe("transform");
    expect(example.transformations.length).toBeGreaterThan(0);
    expect(example.qualityRules.length).toBeGreaterThan(0);
  });

  it("is taken by `dray pipeline create` as it is", async () => {
    const created = await cli(["pipeline", "create", EXAMPLE]);
    expect(created.code, created.err).toBe(0);
    const listed = await h.call("GET", "/api/v1/pipelines", { token: org.operator });
    const pipeline = listed.body.pipelines.find((p: { name: string }) => p.name === example.name);
    expect(pipeline).toBeDefined();
    expect(pipeline.sourceEnvironmentId).toBe(env.source);
    expect(pipeline.targetEnvironmentId).toBe(env.target);
    for (const key of Object.keys(example).filter((k) => k !== "source" && k !== "target")) {
      expect(pipeline[key], key).toEqual(example[key]);
    }
  });

  it("comes back from `dray pipeline export` as the same definition", async () => {
    const exported = await cli(["pipeline", "export", example.name]);
    expect(exported.code, exported.err).toBe(0);
    expect(parseYaml(exported.out)).toEqual(example);
  });
});
