/**
 * The executor's metrics: records by outcome per organisation and pipeline,
 * and the durations of batch reads, writes and commits.
 *
 * Cardinality: the record counters carry `organisation_id` and `pipeline` (the
 * pipeline's name, unique within its organisation), so their series grow with
 * the pipelines that have run since the process started, never with
 * executions, batches or entities. The histograms carry no tenant label at all
 * (only the write's outcome): their series are fixed. No label is ever an
 * execution id, a pipeline token or a record value.
 *
 * The executor calls these from batch-read.ts and settle-batch.ts; they live
 * in the process registry (process-metrics.ts).
 */
import { Counter, Histogram } from "prom-client";
import { processRegistry } from "./process-metrics.js";

/** What a metric needs to know of a run: its organisation and pipeline, nothing of the execution. */
export interface RunLabelsSource {
  organisationId: string;
  settings: { name: string };
}

const RECORD_LABELS = ["organisation_id", "pipeline"] as const;

/** Batch I/O durations: a page read or a batch written takes milliseconds to minutes. */
const BATCH_IO_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
/** Store commits of a settled batch: one transaction, usually a few milliseconds. */
const COMMIT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

function recordCounter(name: string, help: string) {
  return new Counter({ name, help, labelNames: RECORD_LABELS, registers: [processRegistry] });
}

const recordsRead = recordCounter(
  "dray_records_read_total",
  "Records read from source environments in the first pass (rows returned plus rows a data-quality rule left out)",
);
const recordsWritten = recordCounter(
  "dray_records_written_total",
  "Records committed to target environments (created plus updated)",
);
const recordsCreated = recordCounter("dray_records_created_total", "Records created in target environments");
const recordsUpdated = recordCounter("dray_records_updated_total", "Records updated in target environments");
const recordsSkipped = recordCounter(
  "dray_records_skipped_total",
  "Records skipped: rejected by the target or left out by a data-quality rule",
);
const recordsFailed = recordCounter(
  "dray_records_failed_total",
  "Records of batches that failed for good and were skipped (stopOnError off)",
);

const readDuration = new Histogram({
  name: "dray_batch_read_duration_seconds",
  help: "Time to read one page from the source agent, retries included",
  buckets: BATCH_IO_BUCKETS,
  registers: [processRegistry],
});
const writeDuration = new Histogram({
  name: "dray_batch_write_duration_seconds",
  help: "Time to write one batch through the target agent (one target transaction, retries included), by outcome",
  labelNames: ["outcome"] as const,
  buckets: BATCH_IO_BUCKETS,
  registers: [processRegistry],
});
const commitDuration = new Histogram({
  name: "dray_batch_commit_duration_seconds",
  help: "Time to commit a written batch's settlement to the store (state, counters, checkpoint, usage)",
  buckets: COMMIT_BUCKETS,
  registers: [processRegistry],
});

function labelsOf(run: RunLabelsSource) {
  return { organisation_id: run.organisationId, pipeline: run.settings.name };
}

/**
 * Starts timing a page read; call the result with the page once read.
 *
 * @example
 * const done = startReadTimer(ctx);
 * const page = await read();
 * done(page.rows.rowCount + page.qualityRejected.length, pass === 1);
 */
export function startReadTimer(run: RunLabelsSource): (records: number, counted: boolean) => void {
  const stop = readDuration.startTimer();
  return (records, counted) => {
    stop();
    if (counted && records > 0) recordsRead.inc(labelsOf(run), records);
  };
}

/** Records how long a batch write took (milliseconds, as the write outcome measures it). */
export function observeWrite(ok: boolean, durationMs: number): void {
  writeDuration.observe({ outcome: ok ? "ok" : "failed" }, durationMs / 1000);
}

/** Starts timing a batch's commit to the store; call the result once committed. */
export function startCommitTimer(): () => void {
  const stop = commitDuration.startTimer();
  return () => {
    stop();
  };
}

/** Adds a settled batch's counter changes (the same ones the run's live counters get). */
export function countRecords(
  run: RunLabelsSource,
  d: { created: number; updated: number; skipped: number; failed: number },
): void {
  const labels = labelsOf(run);
  if (d.created > 0) recordsCreated.inc(labels, d.created);
  if (d.updated > 0) recordsUpdated.inc(labels, d.updated);
  if (d.created + d.updated > 0) recordsWritten.inc(labels, d.created + d.updated);
  if (d.skipped > 0) recordsSkipped.inc(labels, d.skipped);
  if (d.failed > 0) recordsFailed.inc(labels, d.failed);
}

/** Zeroes every executor metric (tests that assert absolute values in one process). */
export function resetExecutorMetrics(): void {
  for (const m of [
    recordsRead,
    recordsWritten,
    recordsCreated,
    recordsUpdated,
    recordsSkipped,
    recordsFailed,
    readDuration,
    writeDuration,
    commitDuration,
  ])
    m.reset();
}
