/**
 * The control plane's /metrics in one process, over a PGlite store: the text
 * passes promtool (when installed) and the strict parser, HTTP requests are
 * labelled by route pattern and status class (never the raw path), the
 * executor's record counters and batch histograms appear with organisation and
 * pipeline only, Node's defaults are there, and two control planes in one
 * process can both serve their metrics.
 */
import { randomUUID } from "node:crypto";
import { silentLogger } from "@dray/common";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiApp } from "../src/api/index.js";
import { ensureSystemAdminToken } from "../src/auth/index.js";
import { AgentSessions } from "../src/gateway/agent-sessions.js";
import {
  countRecords,
  observeWrite,
  resetExecutorMetrics,
  startCommitTimer,
  startReadTimer,
} from "../src/metrics/executor-metrics.js";
import { createMetrics } from "../src/metrics/metrics.js";
import { openStore, type Store } from "../src/store/index.js";
import { FakeAgents, TEST_CONFIG } from "./api-test-harness.js";
import {
  havePromtool,
  labelValues,
  parseExposition,
  promtoolCheck,
  sampleSum,
} from "./metrics-exposition.js";

let store: Store;
let token: string;
let app: ReturnType<typeof createApiApp>;
let metrics: ReturnType<typeof createMetrics>;

beforeAll(async () => {
  store = await openStore({ databaseUrl: undefined, dataDir: "memory://", logger: silentLogger });
  token = (await ensureSystemAdminToken(store.db, undefined, silentLogger)).generated!;
  metrics = createMetrics({
    db: store.db,
    sessions: new AgentSessions(silentLogger),
    heartbeatIntervalMs: 1_000,
  });
  app = createApiApp({
    db: store.db,
    agents: new FakeAgents(),
    logger: silentLogger,
    config: TEST_CONFIG,
    metrics,
    metricsToken: METRICS_TOKEN,
  });
  resetExecutorMetrics();
}, 60_000);

afterAll(async () => {
  await store?.close();
});

/** DRAY_METRICS_TOKEN of the app under test. */
const METRICS_TOKEN = "metrics-token-for-this-test-0123";

async function scrape(): Promise<string> {
  const res = await app.request("/metrics", { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain; version=0.0.4");
  return res.text();
}

describe("/metrics of one control plane", () => {
  it("is closed without the metrics token: 401 with a wrong or missing one, 403 when none is configured", async () => {
    // A separate app, so these requests do not count in the one the other tests read.
    const guarded = createApiApp({
      db: store.db,
      agents: new FakeAgents(),
      logger: silentLogger,
      config: TEST_CONFIG,
      metrics: createMetrics({ db: store.db }),
      metricsToken: METRICS_TOKEN,
    });
    for (const authorization of [undefined, "Bearer not-the-token", `Basic ${METRICS_TOKEN}`]) {
      const res = await guarded.request("/metrics", authorization ? { headers: { authorization } } : {});
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(
        /Authorization: Bearer <DRAY_METRICS_TOKEN>/,
      );
    }
    const closed = createApiApp({
      db: store.db,
      agents: new FakeAgents(),
      logger: silentLogger,
      config: TEST_CONFIG,
      metrics: createMetrics({ db: store.db }),
    });
    const res = await closed.request("/metrics", { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(
      /set DRAY_METRICS_TOKEN/,
    );
  });

  it("labels API requests by route pattern and status class, never by the raw path", async () => {
    const id = randomUUID();
    const auth = { authorization: `Bearer ${token}` };
    expect((await app.request(`/api/v1/environments/${id}`)).status).toBe(401);
    expect((await app.request(`/api/v1/organisations/${id}`, { headers: auth })).status).toBe(404);
    const created = await app.request("/api/v1/organisations", {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ name: "metrics-org" }),
    });
    expect(created.status).toBe(201);
    expect((await app.request("/healthz")).status).toBe(200);
    const families = parseExposition(await scrape());
    const h = "dray_http_request_duration_seconds_count";
    expect(sampleSum(families, h, { route: "/api/v1/organisations", method: "POST", status: "2xx" })).toBe(1);
    expect(sampleSum(families, h, { route: "/api/v1/organisations/:id", status: "4xx" })).toBe(1);
    expect(sampleSum(families, h, { route: "/healthz", status: "2xx" })).toBe(1);
    // The unauthenticated request was answered by the bearer middleware: its pattern, not the path.
    expect(sampleSum(families, h, { route: "/api/v1/*", status: "4xx" })).toBe(1);
    expect(sampleSum(families, "dray_http_requests_total", { method: "GET", status: "4xx" })).toBe(2);
    expect(labelValues(families).some((v) => v.includes(id))).toBe(false);
    expect(families.get("dray_http_request_duration_seconds")?.type).toBe("histogram");
  });

  it("serves Node's and the process's default metrics and the store's gauges", async () => {
    const families = parseExposition(await scrape());
    for (const name of [
      "process_cpu_user_seconds_total",
      "process_resident_memory_bytes",
      "nodejs_eventloop_lag_seconds",
      "nodejs_heap_size_used_bytes",
    ])
      expect(families.has(name), name).toBe(true);
    expect(families.get("dray_executions")?.type).toBe("gauge");
    expect(sampleSum(families, "dray_agents_connected")).toBe(0);
    expect(sampleSum(families, "dray_agent_heartbeat_age_max_seconds")).toBe(0);
    expect(sampleSum(families, "dray_agents_heartbeat_late")).toBe(0);
    // Every series carries the service label.
    for (const f of families.values())
      for (const s of f.samples) expect(s.labels.service, s.name).toBe("dray-control-plane");
  });

  it("counts records per organisation and pipeline and times batches without tenant labels", async () => {
    const run = { organisationId: randomUUID(), settings: { name: "crm-refresh" } };
    const labels = { organisation_id: run.organisationId, pipeline: "crm-refresh" };
    startReadTimer(run)(120, true);
    startReadTimer(run)(80, false); // a back-fill read: timed, not counted
    observeWrite(true, 250);
    observeWrite(false, 1_500);
    startCommitTimer()();
    countRecords(run, { created: 100, updated: 15, skipped: 5, failed: 0 });
    const text = await scrape();
    const families = parseExposition(text);
    expect(sampleSum(families, "dray_records_read_total", labels)).toBe(120);
    expect(sampleSum(families, "dray_records_written_total", labels)).toBe(115);
    expect(sampleSum(families, "dray_records_created_total", labels)).toBe(100);
    expect(sampleSum(families, "dray_records_updated_total", labels)).toBe(15);
    expect(sampleSum(families, "dray_records_skipped_total", labels)).toBe(5);
    expect(sampleSum(families, "dray_records_failed_total", labels)).toBe(0);
    expect(sampleSum(families, "dray_batch_read_duration_seconds_count")).toBe(2);
    expect(sampleSum(families, "dray_batch_write_duration_seconds_count", { outcome: "ok" })).toBe(1);
    expect(sampleSum(families, "dray_batch_write_duration_seconds_count", { outcome: "failed" })).toBe(1);
    expect(
      sampleSum(families, "dray_batch_write_duration_seconds_bucket", { outcome: "failed", le: "1" }),
    ).toBe(0);
    expect(sampleSum(families, "dray_batch_write_duration_seconds_sum")).toBeCloseTo(1.75, 5);
    expect(sampleSum(families, "dray_batch_commit_duration_seconds_count")).toBe(1);
    for (const name of ["dray_batch_read_duration_seconds", "dray_batch_commit_duration_seconds"])
      for (const s of families.get(name)!.samples)
        expect(Object.keys(s.labels).filter((k) => k !== "le" && k !== "service")).toEqual([]);
  });

  it.skipIf(!havePromtool())("passes promtool check metrics", async () => {
    const check = promtoolCheck(await scrape());
    expect(check.problems).toEqual([]);
    // 0: clean; 3: only the lint findings on prom-client's own default names. 1 would be a parse error.
    expect([0, 3]).toContain(check.status);
  });

  it("lets two control planes of one process serve their metrics side by side", async () => {
    const other = createMetrics({ db: store.db });
    other.observeRequest("GET", "/healthz", 200, 0.01);
    const families = parseExposition(await other.render());
    expect(sampleSum(families, "dray_http_requests_total")).toBe(1);
    // The process registry (executor counters, defaults) is shared; each replica's own is not.
    expect(families.has("dray_records_read_total")).toBe(true);
    expect(families.has("dray_agents_connected")).toBe(false);
    expect(sampleSum(parseExposition(await scrape()), "dray_http_requests_total")).toBeGreaterThan(1);
  });
});

describe("the exposition checker", () => {
  it("rejects what Prometheus would not scrape", () => {
    const ok = '# HELP a_total x\n# TYPE a_total counter\na_total{x="1"} 3\n';
    expect(parseExposition(ok).get("a_total")?.samples).toEqual([
      { name: "a_total", labels: { x: "1" }, value: 3 },
    ]);
    for (const bad of [
      'a_total{x="1} 3\n',
      "# TYPE a_total counter\na_total abc\n",
      "# TYPE a_total countr\na_total 1\n",
      "# TYPE a counter\na 1\na 2\n",
      '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
      '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n',
      "undeclared 1\n",
      "# TYPE a gauge\na 1",
    ])
      expect(() => parseExposition(bad), JSON.stringify(bad)).toThrow();
  });
});
