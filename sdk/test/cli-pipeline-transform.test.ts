/**
 * `dray pipeline show|export|plan` of a transform pipeline, against the control
 * plane's API app over a test database (in-process, the SDK's fetch routed to
 * it), with environments whose schema snapshots are cached: show lists the
 * transformations and the fields that follow from a transformed key, export
 * prints YAML that `dray pipeline create` takes back as is, plan prints the
 * transformed fields.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parse as parseYaml } from "yaml";
import {
  type ApiHarness,
  createEnvironmentWithSnapshot,
  createTestDatabase,
  openApiHarness,
  sampleSnapshot,
} from "../../control-plane/test/api-test-harness.js";
import { type CliRun, runCliInProcess } from "./cli-in-process.js";

const BASE = "http://dray.test";

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let h: ApiHarness;
let org: Awaited<ReturnType<ApiHarness["tenant"]>>;
let dir: string;
const env = { prod: "", qa: "" };

const appFetch: typeof fetch = async (input, init) => h.app.fetch(new Request(input, init));

/** customers.id is a referenced key (orders.customer_id): its transformer is carried over. */
const TRANSFORMATIONS = [
  { entity: "public.customers", field: "email", transformer: "email", options: { domain: "example.org" } },
  { entity: "public.customers", field: "id", transformer: "permute", options: {} },
];

/** A transform pipeline with settings other than the defaults, as the API shows it. */
let original: Record<string, any>;

beforeAll(async () => {
  database = await createTestDatabase();
  h = await openApiHarness(database.url);
  org = await h.tenant("cli-transform");
  const snapshot = sampleSnapshot("fp-cli");
  env.prod = await createEnvironmentWithSnapshot(h, org, "prod", snapshot);
  env.qa = await createEnvironmentWithSnapshot(h, org, "qa", snapshot);
  const created = await h.call("POST", "/api/v1/pipelines", {
    token: org.operator,
    json: {
      name: "crm-masked",
      sourceEnvironmentId: env.prod,
      targetEnvironmentId: env.qa,
      action: "transform",
      writeStrategy: "merge",
      entities: ["public.customers", "public.orders"],
      batchSize: 777,
      batchBytes: 1_048_576,
      maxRetriesPerBatch: 2,
      entityConcurrency: 3,
      stopOnError: false,
      loadOrder: "parallel",
      transformations: TRANSFORMATIONS,
    },
  });
  if (created.status !== 201) throw new Error(`cannot create the pipeline: ${JSON.stringify(created.body)}`);
  original = created.body;
  dir = await mkdtemp(join(tmpdir(), "dray-cli-export-"));
});
afterAll(async () => {
  vi.unstubAllGlobals();
  if (dir) await rm(dir, { recursive: true, force: true });
  await h?.close();
  await database?.drop();
});

/** Runs the CLI with the operator's token; returns its exit code, stdout and stderr. */
function cli(args: string[]): Promise<CliRun> {
  return runCliInProcess(appFetch, args, { DRAY_URL: BASE, DRAY_TOKEN: org.operator });
}

describe("dray pipeline show", () => {
  it("lists the transformations and the fields that follow from a transformed key", async () => {
    const shown = await cli(["pipeline", "show", "crm-masked"]);
    expect(shown.code, shown.err).toBe(0);
    expect(shown.out).toContain("  transformations:");
    expect(shown.out).toContain('    public.customers.email ← email {"domain":"example.org"}');
    expect(shown.out).toContain("    public.customers.id ← permute {}");
    expect(shown.out).toContain("  fields that follow from transformed keys:");
    expect(shown.out).toContain(
      "    public.orders.customer_id ← permute {} (follows from public.customers.id)",
    );
  });
});

describe("dray pipeline plan", () => {
  it("prints the transformed fields and those that follow from them", async () => {
    const planned = await cli(["pipeline", "plan", "crm-masked"]);
    expect(planned.code, planned.err).toBe(0);
    expect(planned.out).toContain("transformed while read:");
    expect(planned.out).toContain('  public.customers.email ← email {"domain":"example.org"}');
    expect(planned.out).toContain("  public.customers.id ← permute {}");
    expect(planned.out).toContain(
      "  public.orders.customer_id ← permute {} (follows from public.customers.id)",
    );
  });
});

describe("dray pipeline export", () => {
  it("prints YAML that dray pipeline create takes back as is", async () => {
    const exported = await cli(["pipeline", "export", "crm-masked"]);
    expect(exported.code, exported.err).toBe(0);
    const definition = parseYaml(exported.out) as Record<string, unknown>;
    expect(definition).toMatchObject({ name: "crm-masked", source: "prod", target: "qa" });
    for (const server of ["id", "organisationId", "createdAt", "updatedAt", "running", "lastExecution"])
      expect(definition, server).not.toHaveProperty(server);
    expect(definition).not.toHaveProperty("effectiveTransformations");

    // The name is taken until the original is gone; then the file goes back unchanged (last test).
    const file = join(dir, "crm-masked.yaml");
    await writeFile(file, exported.out);
    expect((await h.call("DELETE", `/api/v1/pipelines/${original.id}`, { token: org.admin })).status).toBe(
      204,
    );
    const created = await cli(["pipeline", "create", file, "--json"]);
    expect(created.code, created.err).toBe(0);
    const id = JSON.parse(created.out).id as string;
    expect(id).not.toBe(original.id);
    const again = await h.call("GET", `/api/v1/pipelines/${id}`, { token: org.operator });
    const strip = ({ id: _i, name: _n, createdAt: _c, updatedAt: _u, ...rest }: Record<string, any>) => rest;
    expect(strip(again.body)).toEqual(strip(original));
    expect(again.body.name).toBe(original.name);
  });
});
