import { and, inArray, isNotNull, sql } from "drizzle-orm";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { AgentSessions } from "../gateway/agent-sessions.js";
import type { Db } from "../store/db.js";
import { rowsOf } from "../store/raw-sql.js";
import { environments } from "../store/schema.js";
import { processRegistry } from "./process-metrics.js";

/** What the metrics read from: the store (shared truth) and this replica's agent sessions. */
export interface MetricsSources {
  db: Db;
  sessions?: AgentSessions;
  /** The heartbeat interval agents are told to use; an agent is late past twice it. @default 10_000 */
  heartbeatIntervalMs?: number;
}

/** API request durations: most answer in milliseconds, a plan or a schema capture in seconds. */
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** `2xx`, `4xx`, …: the status class, so a label has at most five values. */
export function statusClass(status: number): string {
  return `${Math.floor(status / 100)}xx`;
}

/**
 * Prometheus metrics of one control-plane replica, served at GET /metrics:
 * this replica's own metrics (HTTP, agents connected here) and the store's
 * totals (executions by status, environments by health), merged with the
 * process registry (process-metrics.ts: Node defaults and the executor's
 * record counters and batch histograms). Only the record counters carry a
 * tenant label (organisation id and pipeline name); nothing carries an
 * execution id. See control-plane/README.md "Metrics".
 */
export function createMetrics(sources: MetricsSources) {
  const registry = new Registry();
  const heartbeatIntervalMs = sources.heartbeatIntervalMs ?? 10_000;

  const httpRequests = new Counter({
    name: "dray_http_requests_total",
    help: "HTTP requests answered, by method and status class",
    labelNames: ["method", "status"] as const,
    registers: [registry],
  });
  const httpDuration = new Histogram({
    name: "dray_http_request_duration_seconds",
    help: "HTTP request duration, by method, route pattern (e.g. /api/v1/executions/:id) and status class",
    labelNames: ["method", "route", "status"] as const,
    buckets: HTTP_BUCKETS,
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
    // Heartbeat ages of the agents connected here, from the store (a heartbeat may reach another
    // replica), as two series whatever the number of environments: the oldest, and how many are late.
    const ages = async (): Promise<number[]> => {
      const local = sessions.localEnvironments();
      if (local.length === 0) return [];
      const rows = await sources.db
        .select({
          age: sql<number>`extract(epoch from (now() - ${environments.lastHeartbeatAt}))::float8`,
        })
        .from(environments)
        .where(and(inArray(environments.id, local), isNotNull(environments.lastHeartbeatAt)));
      return rows.map((r) => Math.max(0, Number(r.age)));
    };
    let scrape: Promise<number[]> | undefined;
    // Both gauges are collected in one scrape: one query serves them.
    const agesOnce = () => {
      scrape ??= ages().finally(() => {
        setImmediate(() => {
          scrape = undefined;
        });
      });
      return scrape;
    };
    new Gauge({
      name: "dray_agent_heartbeat_age_max_seconds",
      help: "Age of the oldest last heartbeat among the agents connected to this replica (0 when none)",
      registers: [registry],
      async collect() {
        const a = await agesOnce();
        this.set(a.length > 0 ? Math.max(...a) : 0);
      },
    });
    new Gauge({
      name: "dray_agents_heartbeat_late",
      help: "Agents connected to this replica whose last heartbeat is older than twice the heartbeat interval",
      registers: [registry],
      async collect() {
        const a = await agesOnce();
        this.set(a.filter((s) => s * 1000 > 2 * heartbeatIntervalMs).length);
      },
    });
  }

  const served = Registry.merge([registry, processRegistry]);
  served.setDefaultLabels({ service: "dray-control-plane" });

  return {
    registry: served,
    /** Records one answered HTTP request; `route` is the matched route pattern, never the raw path. */
    observeRequest(method: string, route: string, status: number, seconds: number) {
      httpRequests.inc({ method, status: statusClass(status) });
      httpDuration.observe({ method, route, status: statusClass(status) }, seconds);
    },
    /** The text exposition format. */
    render: () => served.metrics(),
    contentType: served.contentType,
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
