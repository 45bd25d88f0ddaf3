import type { Execution, ExecutionHistory } from "../../client.js";
import type { CommandContext } from "../command-context.js";
import { EXIT, UsageError } from "../exit-codes.js";
import { count, duration, table } from "../output.js";
import { resolvePipeline } from "../resolve.js";
import { printSummary } from "./run.js";

/** `dray status <pipelineToken>`: the stage log of one job. */
export async function statusCommand(ctx: CommandContext, [token]: string[]): Promise<number> {
  if (!token?.startsWith("pt-"))
    throw new UsageError("usage: dray status <pipelineToken> (it starts with pt-)");
  const entries = await ctx.client.status.byToken(token);
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
  if (!ref)
    throw new UsageError(
      "usage: dray history <pipeline> [--status failed,cancelled] [--from 2026-01-01] [--to 2026-01-31] [--limit n | --all | --page n]",
    );
  const limit = ctx.flags.limit === undefined ? HISTORY_DEFAULT_LIMIT : Number(ctx.flags.limit);
  if (!Number.isInteger(limit) || limit < 1)
    throw new UsageError("--limit must be a whole number of at least 1");
  const pipeline = await resolvePipeline(ctx.client, ref);
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
        e.triggeredBy.tokenName,
        e.pipelineToken,
      ]),
    ]),
  );
  ctx.out.line(ctx.out.color.grey(footer));
  return EXIT.ok;
}

/** `dray cancel <execution>`. */
export async function cancelCommand(ctx: CommandContext, [id]: string[]): Promise<number> {
  if (!id) throw new UsageError("usage: dray cancel <execution id> [--reason text]");
  const execution = await ctx.client.executions.cancel(
    id,
    typeof ctx.flags.reason === "string" ? ctx.flags.reason : undefined,
  );
  if (ctx.out.json) {
    ctx.out.data(execution);
    return EXIT.ok;
  }
  if (execution.status === "cancelled") printSummary(ctx.out, execution as Execution);
  else ctx.out.line(`cancel requested for ${id}; it stops at once and keeps what was committed`);
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
