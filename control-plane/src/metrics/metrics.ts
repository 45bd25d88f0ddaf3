import { sql } from "drizzle-orm";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { AgentSessions } from "../gateway/agent-sessions.js";
import type { Db } from "../store/db.js";
import { rowsOf } from "../store/raw-sql.js";

/** What the metrics read from: the store (shared truth) and this replica's agent sessions. */
export interface MetricsSources {
  db: Db;
  sessions?: AgentSessions;
}

/**
 * Prometheus metrics of one control-plane replica, served at GET /metrics.
 * Totals across organisations only: no label carries a tenant's id or names.
 */
export function createMetrics(sources: MetricsSources) {
  const registry = new Registry();
  registry.setDefaultLabels({ service: "dray-control-plane" });

  const httpRequests = new Counter({
    name: "dray_http_requests_total",
    help: "HTTP requests answered, by method and status class",
    labelNames: ["method", "status"] as const,
    registers: [registry],
  });
  const httpDuration = new Histogram({
    name: "dray_http_request_duration_seconds",
    help: "HTTP request duration",
    labelNames: ["method"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  new Gauge({
    name: "dray_executions",
    help: "Executions in the store, by status",
    labelNames: ["status"] as const,
    registers: [registry],
    async collect() {
      const rows = rowsOf<{ status: string; n: number }>(
        await sources.db.execute(sql`select status, count(*)::int as n from executions group by status`),
      );
      this.reset();
      for (const r of rows) this.set({ status: r.status }, Number(r.n));
    },
  });
  new Gauge({
    name: "dray_environments",
    help: "Environments in the store, by health",
    labelNames: ["health"] as const,
    registers: [registry],
    async collect() {
      const rows = rowsOf<{ health: string; n: number }>(
        await sources.db.execute(sql`select health, count(*)::int as n from environments group by health`),
      );
      this.reset();
      for (const r of rows) this.set({ health: r.health }, Number(r.n));
    },
  });
  new Gauge({
    name: "dray_records_committed_month",
    help: "Records committed this UTC month, all organisations",
    registers: [registry],
    async collect() {
      const [row] = rowsOf<{ n: number }>(
        await sources.db.execute(
          sql`select coalesce(sum(records), 0)::bigint as n from usage where month = to_char(now() at time zone 'utc', 'YYYY-MM')`,
        ),
      );
      this.set(Number(row?.n ?? 0));
    },
  });
  if (sources.sessions) {
    const sessions = sources.sessions;
    new Gauge({
      name: "dray_agents_connected",
      help: "Agents with an open work stream on this replica",
      registers: [registry],
      collect() {
        this.set(sessions.connectedCount());
      },
    });
    new Gauge({
      name: "dray_agent_tasks_in_flight",
      help: "Tasks sent to agents of this replica and not yet answered",
      registers: [registry],
      collect() {
        this.set(sessions.tasksInFlight());
      },
    });
  }

  return {
    registry,
    /** Records one answered HTTP request. */
    observeRequest(method: string, status: number, seconds: number) {
      httpRequests.inc({ method, status: `${Math.floor(status / 100)}xx` });
      httpDuration.observe({ method }, seconds);
    },
    /** The text exposition format. */
    render: () => registry.metrics(),
    contentType: registry.contentType,
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
