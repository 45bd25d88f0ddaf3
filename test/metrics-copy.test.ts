/**
 * /metrics of a real control plane during a real copy between two real
 * agents, and the target agent's own metrics on its opt-in port: the record
 * counters move while the run goes and end at the copied row count, the batch
 * and API histograms have observations, no label carries the execution's id
 * or token, and both expositions pass promtool (when installed) and the strict
 * parser of control-plane/test/metrics-exposition.ts.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  type Family,
  havePromtool,
  labelValues,
  parseExposition,
  promtoolCheck,
  sampleSum as sum,
} from "../control-plane/test/metrics-exposition.js";
import { eventually } from "./support/api-client.js";
import { CRM_ENTITIES, CRM_SCHEMA, type CrmSize, crmData, crmTotal } from "./support/crm.js";
import { createTestDatabase, type TestDatabase } from "./support/databases.js";
import {
  type DrayStack,
  type StackEnvironment,
  startDrayStack,
  waitForExecution,
} from "./support/dray-stack.js";
import { createPipeline, executionOf, startRun } from "./support/executions.js";
import { type DrayProcess, freePort, METRICS_HEADERS, startAgentProcess } from "./support/processes.js";

const SIZE: CrmSize = { accounts: 6_000, contacts: 20_000, opportunities: 14_000, activities: 20_000 };
const TOTAL = crmTotal(SIZE);
const BATCH = 2_000;
const PIPELINE = "metrics-crm";

let stack: DrayStack;
let source: StackEnvironment;
let target: { id: string; db: TestDatabase; agent: DrayProcess; stateDir: string; metricsUrl: string };

/** Parses a scrape strictly, and with promtool when it is installed. */
async function scrape(url: string): Promise<{ text: string; families: Map<string, Family> }> {
  // The control plane's /metrics asks for its token; the agent's opt-in port ignores the header.
  const res = await fetch(url, { headers: METRICS_HEADERS });
  expect(res.status).toBe(200);
  const text = await res.text();
  return { text, families: parseExposition(text) };
}

/** The target: an environment whose agent serves its metrics on a port of its own. */
async function addTargetWithMetrics() {
  const db = await createTestDatabase(inject("databaseUrl"), "dray_metrics_target");
  await db.sql.unsafe(CRM_SCHEMA);
  const created = await stack.api.post("/api/v1/environments", { name: "metrics-qa", platform: "postgres" });
  if (created.status !== 201) throw new Error(`cannot create environment: ${JSON.stringify(created.body)}`);
  const stateDir = await mkdtemp(join(tmpdir(), "dray-agent-metrics-"));
  const port = await freePort();
  const agent = startAgentProcess({
    DRAY_CONTROL_PLANE_URL: stack.cp.grpcUrl,
    DRAY_AGENT_DATABASE_URL: db.url,
    DRAY_AGENT_STATE_DIR: stateDir,
    DRAY_AGENT_NAME: "agent-metrics-qa",
    DRAY_ENROLLMENT_TOKEN: created.body.enrollmentToken,
    DRAY_AGENT_METRICS_PORT: String(port),
  });
  const id: string = created.body.environment.id;
  target = { id, db, agent, stateDir, metricsUrl: `http://127.0.0.1:${port}/metrics` };
  await eventually(async () => {
    const r = await stack.api.get(`/api/v1/environments/${id}`);
    return r.body.health === "healthy" && r.body.agent.connected ? true : undefined;
  }, 20_000);
  const refreshed = await stack.api.post(`/api/v1/environments/${id}/refresh`);
  if (refreshed.status !== 200)
    throw new Error(`cannot describe the target: ${JSON.stringify(refreshed.body)}`);
}

let run: { id: string; pipelineToken: string };
const during: number[] = [];
let after: { text: string; families: Map<string, Family> };
let before: Map<string, Family>;

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"));
  [source] = await Promise.all([
    stack.addEnvironment("metrics-prod", `${CRM_SCHEMA}${crmData(SIZE)}`),
    addTargetWithMetrics(),
  ]);
  const pipelineId = await createPipeline(stack.api, {
    name: PIPELINE,
    sourceEnvironmentId: source.id,
    targetEnvironmentId: target.id,
    writeStrategy: "merge",
    entities: CRM_ENTITIES,
    batchSize: BATCH,
  });
  before = (await scrape(`${stack.cp.httpUrl}/metrics`)).families;
  run = await startRun(stack.api, pipelineId);
  // Scrape while the run goes, as Prometheus would (faster), until it has ended.
  const labels = { organisation_id: stack.organisationId, pipeline: PIPELINE };
  for (;;) {
    const { families } = await scrape(`${stack.cp.httpUrl}/metrics`);
    during.push(sum(families, "dray_records_created_total", labels));
    const view = await executionOf(stack.api, run.id);
    if (["completed", "failed", "cancelled"].includes(view.status)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const view = await waitForExecution(stack.api, run.id);
  expect(view.status).toBe("completed");
  after = await scrape(`${stack.cp.httpUrl}/metrics`);
}, 240_000);

afterAll(async () => {
  await target?.agent.stop("SIGKILL");
  await stack?.close();
  await target?.db.drop();
  if (target) await rm(target.stateDir, { recursive: true, force: true });
});

describe("/metrics during a real copy", () => {
  it("moves the record counters while the run goes, ending at the copied row count", () => {
    const labels = { organisation_id: stack.organisationId, pipeline: PIPELINE };
    console.info(
      `records created seen by ${during.length} scrapes during the run: ${[...new Set(during)].join(", ")}`,
    );
    expect(sum(before, "dray_records_created_total", labels)).toBe(0);
    for (let i = 1; i < during.length; i++) expect(during[i]!).toBeGreaterThanOrEqual(during[i - 1]!);
    expect(during.some((n) => n > 0 && n < TOTAL)).toBe(true);
    const f = after.families;
    expect(sum(f, "dray_records_read_total", labels)).toBe(TOTAL);
    expect(sum(f, "dray_records_created_total", labels)).toBe(TOTAL);
    expect(sum(f, "dray_records_written_total", labels)).toBe(TOTAL);
    expect(sum(f, "dray_records_updated_total", labels)).toBe(0);
    expect(sum(f, "dray_records_skipped_total", labels)).toBe(0);
    expect(sum(f, "dray_records_failed_total", labels)).toBe(0);
  });

  it("observes batch reads, writes and commits, and API requests by route pattern", () => {
    const f = after.families;
    const batches = Math.ceil(TOTAL / BATCH);
    expect(sum(f, "dray_batch_read_duration_seconds_count")).toBeGreaterThanOrEqual(batches);
    expect(sum(f, "dray_batch_write_duration_seconds_count", { outcome: "ok" })).toBeGreaterThanOrEqual(
      batches,
    );
    expect(sum(f, "dray_batch_write_duration_seconds_count", { outcome: "failed" })).toBe(0);
    expect(sum(f, "dray_batch_commit_duration_seconds_count")).toBeGreaterThanOrEqual(batches);
    expect(sum(f, "dray_batch_write_duration_seconds_sum")).toBeGreaterThan(0);
    const http = "dray_http_request_duration_seconds_count";
    expect(sum(f, http, { method: "POST", route: "/api/v1/pipelines/:id/executions", status: "2xx" })).toBe(
      1,
    );
    expect(sum(f, http, { method: "GET", route: "/api/v1/executions/:id", status: "2xx" })).toBeGreaterThan(
      0,
    );
    expect(sum(f, "dray_executions", { status: "completed" })).toBe(1);
    expect(sum(f, "dray_agents_connected")).toBe(2);
    expect(f.get("dray_agent_heartbeat_age_max_seconds")?.samples).toHaveLength(1);
    expect(f.has("process_cpu_user_seconds_total")).toBe(true);
    expect(f.has("nodejs_eventloop_lag_seconds")).toBe(true);
  });

  it("carries no execution id or pipeline token, in labels or anywhere", () => {
    const values = labelValues(after.families);
    expect(values).toContain(stack.organisationId);
    expect(values.some((v) => v.includes(run.id) || v.includes(run.pipelineToken))).toBe(false);
    expect(after.text).not.toContain(run.id);
    expect(after.text).not.toContain(run.pipelineToken);
    const labelNames = new Set(
      [...after.families.values()].flatMap((fam) => fam.samples.flatMap((s) => Object.keys(s.labels))),
    );
    for (const name of labelNames) expect(name).not.toMatch(/execution|token|entity|batch/);
  });

  it.skipIf(!havePromtool())("passes promtool check metrics", () => {
    const check = promtoolCheck(after.text);
    expect(check.problems).toEqual([]);
    expect([0, 3]).toContain(check.status);
  });
});

describe("the target agent's own metrics (DRAY_AGENT_METRICS_PORT)", () => {
  it("counts and times the writes it ran, with the process defaults, in a valid exposition", async () => {
    const { text, families: f } = await scrape(target.metricsUrl);
    expect(
      sum(f, "dray_agent_operations_total", { kind: "writeBatch", outcome: "ok" }),
    ).toBeGreaterThanOrEqual(Math.ceil(TOTAL / BATCH));
    expect(sum(f, "dray_agent_operations_total", { kind: "writeBatch", outcome: "error" })).toBe(0);
    expect(sum(f, "dray_agent_operation_duration_seconds_count", { kind: "writeBatch" })).toBe(
      sum(f, "dray_agent_operations_total", { kind: "writeBatch" }),
    );
    // Pass 1 created every row; the back-fill pass then updated the accounts with a parent.
    expect(sum(f, "dray_agent_rows_written_total")).toBeGreaterThanOrEqual(TOTAL);
    expect(sum(f, "dray_agent_rows_read_total")).toBe(0);
    expect(f.has("process_resident_memory_bytes")).toBe(true);
    for (const fam of f.values()) for (const s of fam.samples) expect(s.labels.service).toBe("dray-agent");
    if (havePromtool()) {
      const check = promtoolCheck(text);
      expect(check.problems).toEqual([]);
      expect([0, 3]).toContain(check.status);
    }
    expect((await fetch(target.metricsUrl.replace("/metrics", "/other"))).status).toBe(404);
  });
});

describe("deploy/grafana/dray.json", () => {
  it("queries only metrics that the control plane or an agent serves", async () => {
    const dashboard = JSON.parse(
      await readFile(join(import.meta.dirname, "../deploy/grafana/dray.json"), "utf8"),
    );
    const exprs: string[] = dashboard.panels.flatMap((p: any) => (p.targets ?? []).map((t: any) => t.expr));
    exprs.push(...dashboard.templating.list.map((v: any) => v.definition ?? "").filter(Boolean));
    const agent = (await scrape(target.metricsUrl)).families;
    const served = (name: string) =>
      [name, name.replace(/_(bucket|sum|count)$/, "")].some((n) => after.families.has(n) || agent.has(n));
    const used = new Set(exprs.flatMap((e) => e.match(/\b(dray|process|nodejs)_[a-z0-9_]+/g) ?? []));
    expect(used.size).toBeGreaterThan(15);
    expect([...used].filter((name) => !served(name))).toEqual([]);
    // Tenant filters apply to the record counters, the only series with those labels.
    for (const e of exprs.filter((x) => x.includes("$organisation"))) expect(e).toMatch(/dray_records_/);
  });
});
