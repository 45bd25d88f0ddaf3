import { DrayApiError } from "../../errors.js";
import type { CommandContext } from "../command-context.js";
import { confirm } from "../confirm.js";
import { EXIT, UsageError } from "../exit-codes.js";
import { resolvePipeline } from "../resolve.js";
import { attach } from "./watch.js";

export { exitCodeOf, printSummary } from "./summary.js";

/** Whether the pipeline's target environment is protected (unknown, when the token may not read it, counts as no). */
async function targetIsProtected(ctx: CommandContext, environmentId: string): Promise<boolean> {
  try {
    return (await ctx.client.environments.get(environmentId)).protected;
  } catch (error) {
    if (error instanceof DrayApiError && (error.status === 403 || error.status === 404)) return false;
    throw error;
  }
}

/**
 * `dray run <pipeline> [--detach] [--watch] [--yes]`: queues an execution and, unless
 * `--detach`, follows it to its end and exits with its outcome. A clean (delete, then load)
 * of a protected environment asks first.
 */
export async function runCommand(ctx: CommandContext, [ref]: string[]): Promise<number> {
  if (!ref) throw new UsageError("missing the pipeline to run", "dray run <pipeline> [--detach]");
  const { client, out } = ctx;
  const pipeline = await resolvePipeline(client, ref);
  let confirmed = Boolean(ctx.flags.confirm);
  if (pipeline.writeStrategy === "clean" && (await targetIsProtected(ctx, pipeline.targetEnvironmentId))) {
    confirmed = await confirm({
      yes: Boolean(ctx.flags.yes) || confirmed,
      what: `${pipeline.name} cleans a protected environment: it deletes the target rows of its ${pipeline.entities.length} entities, then loads them again`,
      question: "Delete and reload them?",
      retry: `dray run ${pipeline.name} --yes`,
    });
    if (!confirmed) {
      out.error("not run");
      return EXIT.usage;
    }
  }
  const started = await client.pipelines.run(pipeline.id, { confirm: confirmed });
  if (ctx.flags.detach) {
    if (out.json) out.data(started);
    else
      out.line(
        `queued ${started.id} (${started.pipelineToken}); \`dray watch ${started.pipelineToken}\` to follow it, \`dray cancel ${started.pipelineToken}\` to stop it`,
      );
    return EXIT.ok;
  }
  const announce = out.json
    ? undefined
    : `running ${out.color.bold(pipeline.name)} (${started.pipelineToken}); Ctrl-C detaches`;
  return attach(ctx, { ...started, pipelineName: pipeline.name }, Boolean(ctx.flags.watch), announce);
}
