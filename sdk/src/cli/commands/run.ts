import type { Execution } from "../../client.js";
import type { ExecutionEvent } from "../../event-stream.js";
import type { CommandContext } from "../command-context.js";
import { EXIT, UsageError } from "../exit-codes.js";
import { count, duration, type Output } from "../output.js";
import { type EntityProgress, progressLines } from "../progress-view.js";
import { resolvePipeline } from "../resolve.js";

const STATUS_COLOUR = {
  queued: "grey",
  in_progress: "blue",
  completed: "green",
  failed: "red",
  cancelled: "yellow",
} as const;

/** Exit code of a finished execution. */
export function exitCodeOf(status: string): number {
  return status === "completed" ? EXIT.ok : status === "cancelled" ? EXIT.cancelled : EXIT.failed;
}

/** Redraws the per-entity bars in place on a terminal; prints plain lines otherwise. */
function createLiveView(out: Output) {
  let drawn = 0;
  const errors: string[] = [];
  return {
    event(event: ExecutionEvent) {
      const d = event.data;
      if (event.type === "execution.error")
        errors.push(
          `${d.entity ?? ""} ${d.recordKey ? `[${(d.recordKey as string[]).join(",")}] ` : ""}${d.message}`,
        );
      if (!out.tty) {
        if (event.type === "execution.stage") out.line(`${d.processName} ${d.state}: ${d.description}`);
        if (event.type === "execution.error") out.line(`error: ${errors.at(-1)}`);
        return;
      }
      if (event.type !== "execution.progress" || !Array.isArray(d.entities)) return;
      const lines = progressLines(d.entities as EntityProgress[], {
        rate: Number(d.throughput ?? 0),
        eta: (d.etaSeconds as number | null) ?? null,
      });
      const tail = errors.slice(-3).map((e) => out.color.red(`  ${e}`));
      const frame = [...lines, ...tail];
      if (drawn) out.stdout.write(`\u001b[${drawn}A`);
      for (const line of frame) out.stdout.write(`\u001b[2K${line}\n`);
      drawn = frame.length;
    },
  };
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

/** `dray run <pipeline> [--watch] [--confirm]`. */
export async function runCommand(ctx: CommandContext, [ref]: string[]): Promise<number> {
  if (!ref) throw new UsageError("usage: dray run <pipeline> [--watch] [--confirm] [--json]");
  const { client, out } = ctx;
  const pipeline = await resolvePipeline(client, ref);
  const started = await client.pipelines.run(pipeline.id, { confirm: Boolean(ctx.flags.confirm) });
  const watch = Boolean(ctx.flags.watch) || out.json;
  if (!watch) {
    out.line(
      `queued ${started.id} (${started.pipelineToken}); follow it with \`dray run ${pipeline.name} --watch\` next time, or \`dray status ${started.pipelineToken}\``,
    );
    return EXIT.ok;
  }
  if (!out.json)
    out.line(`running ${out.color.bold(pipeline.name)}: execution ${started.id} (${started.pipelineToken})`);
  const view = createLiveView(out);
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once("SIGINT", onSigint);
  try {
    const execution = await client.executions.wait(started.id, {
      signal: controller.signal,
      ...(out.json ? {} : { onEvent: (e: ExecutionEvent) => view.event(e) }),
    });
    if (out.json) out.data(execution);
    else printSummary(out, execution as Execution);
    if (execution.status === "failed" && !out.json) out.error(`execution failed: ${execution.reason}`);
    return controller.signal.aborted ? EXIT.ok : exitCodeOf(execution.status);
  } finally {
    process.off("SIGINT", onSigint);
  }
}
