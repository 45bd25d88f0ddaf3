/**
 * The process-wide metrics registry of a control-plane process: Node's and the
 * process's default metrics (prom-client's `collectDefaultMetrics`) and the
 * executor's batch metrics (executor-metrics.ts).
 *
 * It is a module singleton on purpose: these metrics describe the process, and
 * the executor's hooks (batch-read.ts, settle-batch.ts) reach it by import
 * instead of through every call. Several control planes started in one process
 * (tests) share it, so their executor counters add up; each replica's own
 * registry (metrics.ts) is merged with it when /metrics is served.
 */
import { collectDefaultMetrics, Registry } from "prom-client";

/** Registry of the metrics that belong to the process rather than to one control plane. */
export const processRegistry = new Registry();

// Names such as process_cpu_seconds_total, nodejs_eventloop_lag_seconds, nodejs_heap_size_used_bytes.
collectDefaultMetrics({ register: processRegistry });
