import type { Execution } from "../../client.js";
import type { CommandContext } from "../command-context.js";
import { EXIT, UsageError } from "../exit-codes.js";
import { resolvePipeline } from "../resolve.js";
import { exitCodeOf, printSummary } from "./summary.js";

/** `dray pipeline start <pipeline>`: queues a continuous pipeline's long-lived execution. */
export async function startCommand(ctx: CommandContext, [ref]: string[]): Promise<number> {
  if (!ref) throw new UsageError("missing the pipeline to start", "dray pipeline start <pipeline>");
  const { client, out } = ctx;
  const pipeline = await resolvePipeline(client, ref);
  const started = await client.pipelines.start(pipeline.id);
  if (out.json) {
    out.data(started);
    return EXIT.ok;
  }
  out.line(
    `started ${out.color.bold(pipeline.name)} (${started.pipelineToken}); it copies new and changed rows until stopped`,
  );
  out.line(
    `  \`dray watch ${started.pipelineToken}\` to follow it, \`dray pipeline stop ${pipeline.name}\` to stop it`,
  );
  return EXIT.ok;
}

/**
 * `dray pipeline stop <pipeline> [--wait]`: asks the continuous execution to stop at its next
 * batch boundary; with `--wait`, follows it to its end and exits with its outcome.
 */
export async function stopCommand(ctx: CommandContext, [ref]: string[]): Promise<number> {
  if (!ref) throw new UsageError("missing the pipeline to stop", "dray pipeline stop <pipeline> [--wait]");
  const { client, out } = ctx;
  const pipeline = await resolvePipeline(client, ref);
  const execution = await client.pipelines.stop(pipeline.id);
  if (!ctx.flags.wait) {
    if (out.json) out.data(execution);
    else
      out.line(
        `stopping ${out.color.bold(pipeline.name)} (${execution.pipelineToken}): the batch in flight finishes first; ` +
          `\`dray watch ${execution.pipelineToken}\` to see it end`,
      );
    return EXIT.ok;
  }
  if (!out.json)
    out.line(
      `stopping ${out.color.bold(pipeline.name)} (${execution.pipelineToken}): the batch in flight finishes first…`,
    );
  const ended = (await client.executions.wait(execution.id)) as Execution;
  if (out.json) out.data(ended);
  else printSummary(out, ended);
  return exitCodeOf(ended.status);
}

/** `dray pipeline reconcile <pipeline>`: asks the running continuous execution to remove rows deleted at the source. */
export async function reconcileCommand(ctx: CommandContext, [ref]: string[]): Promise<number> {
  if (!ref) throw new UsageError("missing the pipeline", "dray pipeline reconcile <pipeline>");
  const { client, out } = ctx;
  const pipeline = await resolvePipeline(client, ref);
  const execution = await client.pipelines.reconcile(pipeline.id);
  if (out.json) {
    out.data(execution);
    return EXIT.ok;
  }
  out.line(
    `reconcile requested for ${out.color.bold(pipeline.name)} (${execution.pipelineToken}): at its next poll it ` +
      "deletes the target rows whose key the source no longer has",
  );
  return EXIT.ok;
}
