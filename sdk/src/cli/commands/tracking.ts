import type { Execution, ExecutionHistory } from "../../client.js";
import { FINAL_STATUSES } from "../../event-stream.js";
import type { CommandContext } from "../command-context.js";
import { confirm } from "../confirm.js";
import { EXIT, UsageError } from "../exit-codes.js";
import { count, duration, table } from "../output.js";
import { resolveExecution, resolvePipelineOf } from "../resolve.js";
import { printSummary } from "./summary.js";

/** `dray status <execution|token|pipeline>`: the stage log of one run. */
export async function statusCommand(ctx: CommandContext, [ref]: string[]): Promise<number> {
  if (!ref) throw new UsageError("missing the execution", "dray status <execution|pt-token|pipeline>");
  const execution = await resolveExecution(ctx.client, ref);
  const entries = await ctx.client.status.byToken(execution.pipelineToken).catch((error: unknown) => {
    // A run still queued has no stage entry yet.
    if ((error as { status?: number }).status === 404) return [];
    throw error;
  });
  if (ctx.out.json) {
    ctx.out.data(entries);
    return EXIT.ok;
  }
  ctx.out.line(
    table([
      ["TIME", "STAGE", "STATE", "DESCRIPTION"],
      ...entries.map((e) => [e.dateTime, e.processName, e.state, e.description]),
    ]),
  );
  return EXIT.ok;
}

/** Runs `dray history` shows unless `--limit`, `--all` or `--page` says otherwise. */
const HISTORY_DEFAULT_LIMIT = 20;

/**
 * `dray history <pipeline> [--status s] [--from d] [--to d] [--limit n | --all | --page n]`:
 * the newest `--limit` runs (default 20), every run with `--all` (following the
 * pages), or one page of 20 with `--page`.
 */
export async function historyCommand(ctx: CommandContext, [ref]: string[]): Promise<number> {
  if (!ref) throw new UsageError("missing the pipeline", "dray history <pipeline|execution|pt-token>");
  const limit = ctx.flags.limit === undefined ? HISTORY_DEFAULT_LIMIT : Number(ctx.flags.limit);
  if (!Number.isInteger(limit) || limit < 1)
    throw new UsageError("--limit must be a whole number of at least 1", "for example --limit 50, or --all");
  const pipeline = await resolvePipelineOf(ctx.client, ref);
  const filter = {
    ...(ctx.flags.status ? { status: ctx.flags.status } : {}),
    ...(ctx.flags.from ? { from: ctx.flags.from } : {}),
    ...(ctx.flags.to ? { to: ctx.flags.to } : {}),
  };
  let runs: ExecutionHistory["executions"];
  let footer: string;
  if (ctx.flags.page) {
    const history = await ctx.client.pipelines.history(pipeline.id, {
      ...filter,
      page: Number(ctx.flags.page),
    });
    runs = history.executions;
    footer = `page ${history.page}, ${history.total} runs in all`;
  } else {
    runs = [];
    const all = Boolean(ctx.flags.all);
    const pageSize = all ? 100 : Math.min(100, limit);
    let more = false;
    for await (const run of ctx.client.pipelines.historyAll(pipeline.id, { ...filter, pageSize })) {
      if (!all && runs.length >= limit) {
        more = true;
        break;
      }
      runs.push(run);
    }
    footer = more
      ? `the newest ${runs.length} runs (--limit n or --all for more)`
      : `${runs.length} run${runs.length === 1 ? "" : "s"}`;
  }
  if (ctx.out.json) {
    ctx.out.data({ executions: runs });
    return EXIT.ok;
  }
  ctx.out.line(
    table([
      ["STARTED", "STATUS", "DURATION", "RECORDS", "BY", "TOKEN"],
      ...runs.map((e) => [
        e.createdAt,
        e.status,
        duration(e.durationMs),
        count(e.recordsProcessed),
        e.triggeredBy?.tokenName ?? "—",
        e.pipelineToken,
      ]),
    ]),
  );
  ctx.out.line(ctx.out.color.grey(footer));
  return EXIT.ok;
}

/**
 * `dray cancel <execution|token|pipeline> [--reason text] [--yes]`: asks first (or needs
 * `--yes` off a terminal), then stops the run; committed batches stay in the target.
 */
export async function cancelCommand(ctx: CommandContext, [ref]: string[]): Promise<number> {
  if (!ref)
    throw new UsageError("missing the execution to cancel", "dray cancel <execution|pt-token|pipeline>");
  const found = await resolveExecution(ctx.client, ref);
  if (FINAL_STATUSES.has(found.status)) {
    ctx.out.error(
      `dray: ${found.pipelineName} (${found.pipelineToken}) already ${found.status}: nothing to cancel`,
    );
    return EXIT.failed;
  }
  const t = found.totals;
  const go = await confirm({
    yes: Boolean(ctx.flags.yes),
    what:
      `cancelling ${found.pipelineName} (${found.pipelineToken}, ${found.status}, ${count(t.processed)}/${count(t.total)} records) ` +
      "stops it at its next batch; the records already committed stay in the target and are not rolled back",
    question: "Cancel this run?",
    retry: `dray cancel ${ref} --yes`,
  });
  if (!go) {
    ctx.out.error("not cancelled");
    return EXIT.usage;
  }
  const execution = await ctx.client.executions.cancel(
    found.id,
    typeof ctx.flags.reason === "string" ? ctx.flags.reason : undefined,
  );
  if (ctx.out.json) {
    ctx.out.data(execution);
    return EXIT.ok;
  }
  if (execution.status === "cancelled") printSummary(ctx.out, execution as Execution);
  else
    ctx.out.line(
      `cancel requested for ${found.pipelineName} (${found.pipelineToken}); it stops at its next batch and keeps what was committed`,
    );
  return EXIT.ok;
}

/** `dray usage`. */
export async function usageCommand(ctx: CommandContext): Promise<number> {
  const usage = await ctx.client.usage();
  if (ctx.out.json) {
    ctx.out.data(usage);
    return EXIT.ok;
  }
  ctx.out.line(
    `${usage.month}: ${count(usage.used)} of ${count(usage.limit)} records used, ${count(usage.reserved)} reserved, ${count(usage.remaining)} left`,
  );
  return EXIT.ok;
}
