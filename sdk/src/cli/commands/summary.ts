import type { Execution } from "../../client.js";
import { EXIT } from "../exit-codes.js";
import { count, duration, type Output } from "../output.js";

const STATUS_COLOUR = {
  queued: "grey",
  in_progress: "blue",
  completed: "green",
  failed: "red",
  cancelled: "yellow",
} as const;

/** Exit code of a finished execution: 0 completed, 3 cancelled, 1 otherwise. */
export function exitCodeOf(status: string): number {
  return status === "completed" ? EXIT.ok : status === "cancelled" ? EXIT.cancelled : EXIT.failed;
}

/** Prints the end of a run: status, counts, duration, rate and the error tail. */
export function printSummary(out: Output, execution: Execution) {
  const colour = STATUS_COLOUR[execution.status];
  out.line(`${out.color[colour](execution.status)}  ${execution.pipelineName} (${execution.pipelineToken})`);
  const t = execution.totals;
  out.line(
    `  ${count(t.processed)}/${count(t.total)} records: ${count(t.created)} created, ${count(t.updated)} updated, ` +
      `${count(t.skipped)} skipped, ${count(t.failed)} failed in ${duration(execution.durationMs)} (${count(Math.round(execution.throughput))}/s)`,
  );
  if (t.skipped > 0)
    out.line(
      `  skipped: records the target rejected one by one, listed by key in GET /api/v1/executions/${execution.id}/errors`,
    );
  if (t.failed > 0) out.line("  failed: records of batches given up after their retries (not written)");
  if (execution.reason) out.line(`  reason: ${execution.reason}`);
}
