/**
 * The agent's own Prometheus metrics, served only when DRAY_AGENT_METRICS_PORT
 * is set: Node's and the process's defaults, and the database operations the
 * agent ran, by kind and outcome, with their durations.
 *
 * Operations are measured at the connector: every task runs exactly one
 * connector operation of the same name as its kind (readBatch, writeBatch,
 * count, describeSchema, testConnection, cleanEntity, finishEntity,
 * deleteRecords); the heartbeat's database probe and schema fingerprint also
 * count as testConnection and describeSchema. Labels are bounded: the kind
 * (nine values) and the outcome (ok, cancelled, error). No entity, batch or
 * execution is ever a label.
 */
import { createServer, type Server } from "node:http";
import { isDrayError } from "@dray/common";
import { Counter, collectDefaultMetrics, Histogram, Registry } from "prom-client";
import type { Connector } from "./connector.js";

/** The connector methods that do a task's work; `close` and `platform` are left alone. */
export const MEASURED_OPERATIONS = [
  "testConnection",
  "describeSchema",
  "count",
  "readBatch",
  "writeBatch",
  "cleanEntity",
  "finishEntity",
  "deleteRecords",
  "digestKeys",
] as const;

type Operation = (typeof MEASURED_OPERATIONS)[number];

/** How an operation ended: `cancelled` for a DrayError with that code (or an abort), else `error`. */
export function outcomeOf(error: unknown): "cancelled" | "error" {
  if (isDrayError(error) && (error.code === "cancelled" || error.code === "deadline_exceeded"))
    return "cancelled";
  if (error instanceof Error && error.name === "AbortError") return "cancelled";
  return "error";
}

/** The agent's metrics registry and the wrapper that measures a connector. */
export interface AgentMetrics {
  registry: Registry;
  /** The connector with every operation counted and timed; the original is left unchanged. */
  instrument(connector: Connector): Connector;
}

/**
 * Creates the agent's registry with the process defaults and the operation metrics.
 *
 * @example
 * const metrics = createAgentMetrics();
 * const connector = metrics.instrument(createPostgresConnector(options));
 */
export function createAgentMetrics(): AgentMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service: "dray-agent" });
  collectDefaultMetrics({ register: registry });
  const operations = new Counter({
    name: "dray_agent_operations_total",
    help: "Database operations run by the agent (one per task, plus the heartbeat's probes), by kind and outcome",
    labelNames: ["kind", "outcome"] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: "dray_agent_operation_duration_seconds",
    help: "Duration of the agent's database operations, by kind and outcome",
    labelNames: ["kind", "outcome"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [registry],
  });
  const rowsRead = new Counter({
    name: "dray_agent_rows_read_total",
    help: "Rows returned by readBatch operations",
    registers: [registry],
  });
  const rowsWritten = new Counter({
    name: "dray_agent_rows_written_total",
    help: "Rows created or updated by writeBatch operations committed now (not replays of a committed batch)",
    registers: [registry],
  });

  function measured<T>(kind: Operation, run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    const done = (outcome: string) => {
      operations.inc({ kind, outcome });
      duration.observe({ kind, outcome }, (performance.now() - started) / 1000);
    };
    return run().then(
      (value) => {
        done("ok");
        if (kind === "readBatch") rowsRead.inc((value as { rows: { rowCount: number } }).rows.rowCount);
        if (kind === "writeBatch") {
          const w = value as { alreadyCommitted: boolean; created: number; updated: number };
          if (!w.alreadyCommitted) rowsWritten.inc(w.created + w.updated);
        }
        return value;
      },
      (error: unknown) => {
        done(outcomeOf(error));
        throw error;
      },
    );
  }

  return {
    registry,
    instrument(connector) {
      const measuredKinds = new Set<string | symbol>(MEASURED_OPERATIONS);
      return new Proxy(connector, {
        get(target, property) {
          const value: unknown = Reflect.get(target, property, target);
          if (typeof value !== "function") return value;
          const method = value as (...args: unknown[]) => Promise<unknown>;
          if (!measuredKinds.has(property)) return method.bind(target);
          return (...args: unknown[]) => measured(property as Operation, () => method.apply(target, args));
        },
      });
    },
  };
}

/**
 * Serves `GET /metrics` from the registry on host:port (any other path: 404),
 * and resolves once listening. Close the returned server on exit.
 *
 * @example
 * const server = await serveAgentMetrics(metrics.registry, "127.0.0.1", 9464);
 */
export function serveAgentMetrics(registry: Registry, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { "content-type": registry.contentType }).end(body),
      (error: unknown) => res.writeHead(500, { "content-type": "text/plain" }).end(`${String(error)}\n`),
    );
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}
