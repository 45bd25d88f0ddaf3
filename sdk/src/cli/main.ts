import { parseArgs } from "node:util";
import { createDrayClient } from "../client.js";
import { DrayApiError, DrayConnectionError } from "../errors.js";
import { loadCliConfig, saveCliConfig } from "./cli-config.js";
import type { CommandContext } from "./command-context.js";
import { envCommand } from "./commands/env.js";
import { pipelineCommand } from "./commands/pipeline.js";
import { runCommand } from "./commands/run.js";
import { cancelCommand, historyCommand, statusCommand, usageCommand } from "./commands/tracking.js";
import { EXIT, UsageError } from "./exit-codes.js";
import { createOutput } from "./output.js";

export const HELP = `dray — the Dray command line

usage: dray <command> [arguments] [--json]

  login --url URL --token TOKEN        save where to reach the control plane (or set DRAY_URL, DRAY_TOKEN)
  env list [--search s]                environments with health, agent and last heartbeat
  env add <name> [--protected]         create an environment; prints its agent's enrollment token
  env test <env>                       live round trip to the agent and its database
  env entities <env> [--refresh]       tables, fields, primary keys and references
  pipeline list                        pipelines and their last run
  pipeline create <file.json|yaml>     create a pipeline (source/target may be environment names)
  pipeline show|plan|delete <pipeline> details (with transformations and quality rules), the plan, or delete
  pipeline export <pipeline>           the definition as YAML that \`pipeline create\` takes back as is
  pipeline preview <pipeline>          up to 20 transformed rows per entity (transformed fields only)
  run <pipeline> [--watch] [--confirm] start an execution; --watch shows live progress per entity
  status <pipelineToken>               the stage log of one run
  history <pipeline> [--status s] [--from d] [--to d] [--limit n | --all | --page n]
                                       the newest runs (20 unless --limit), or all of them
  cancel <execution> [--reason text]   stop a run; committed batches stay
  usage                                records used this month against the limit

exit codes: 0 completed, 1 failed, 2 bad usage, 3 cancelled, 4 cannot reach the control plane`;

const OPTIONS = {
  json: { type: "boolean" },
  watch: { type: "boolean" },
  confirm: { type: "boolean" },
  refresh: { type: "boolean" },
  protected: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  url: { type: "string" },
  token: { type: "string" },
  search: { type: "string" },
  application: { type: "string" },
  status: { type: "string" },
  from: { type: "string" },
  to: { type: "string" },
  page: { type: "string" },
  limit: { type: "string" },
  all: { type: "boolean" },
  reason: { type: "string" },
} as const;

/** Runs the CLI with `argv` (without node and script) and returns the exit code. */
export async function runCli(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let parsed: ReturnType<
    typeof parseArgs<{ args: string[]; options: typeof OPTIONS; allowPositionals: true }>
  >;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
  } catch (error) {
    process.stderr.write(`dray: ${(error as Error).message}\n\n${HELP}\n`);
    return EXIT.usage;
  }
  const { values: flags, positionals } = parsed;
  const out = createOutput({ json: Boolean(flags.json) });
  const [command, ...rest] = positionals;
  if (!command || flags.help || command === "help") {
    out.line(HELP);
    return command || flags.help ? EXIT.ok : EXIT.usage;
  }
  let url = "";
  try {
    if (command === "login") {
      if (!flags.url || !flags.token)
        throw new UsageError("usage: dray login --url http://127.0.0.1:8080 --token <token>");
      const client = createDrayClient({ baseUrl: flags.url, token: flags.token });
      url = flags.url;
      await client.environments.list().catch((error: unknown) => {
        // A system-admin token cannot list environments but is still a valid login.
        if (!(error instanceof DrayApiError && error.status === 403)) throw error;
      });
      const path = await saveCliConfig(env, { url: flags.url, token: flags.token });
      if (out.json) out.data({ url: flags.url, config: path });
      else out.line(`logged in to ${flags.url} (saved in ${path})`);
      return EXIT.ok;
    }
    const config = await loadCliConfig(env);
    url = config.url;
    const ctx: CommandContext = {
      client: createDrayClient({ baseUrl: config.url, token: config.token }),
      out,
      flags,
      env,
    };
    switch (command) {
      case "env":
        return await envCommand(ctx, rest);
      case "pipeline":
        return await pipelineCommand(ctx, rest);
      case "run":
        return await runCommand(ctx, rest);
      case "status":
        return await statusCommand(ctx, rest);
      case "history":
        return await historyCommand(ctx, rest);
      case "cancel":
        return await cancelCommand(ctx, rest);
      case "usage":
        return await usageCommand(ctx);
      default:
        throw new UsageError(`unknown command "${command}": see \`dray --help\``);
    }
  } catch (error) {
    return report(out, error, url);
  }
}

function report(out: ReturnType<typeof createOutput>, error: unknown, url: string): number {
  if (error instanceof UsageError) {
    out.error(`dray: ${error.message}`);
    return EXIT.usage;
  }
  if (error instanceof DrayConnectionError) {
    if (out.json) out.data({ error: { code: error.code, message: error.message } });
    out.error(
      `dray: ${error.message}\n  check that dray-control-plane is running and that the URL is right (${url || "DRAY_URL"})`,
    );
    return EXIT.unreachable;
  }
  if (error instanceof DrayApiError) {
    if (out.json) out.data({ error: { code: error.code, message: error.message, details: error.details } });
    const hint =
      error.status === 401
        ? "\n  the token was refused: run `dray login` again with a valid token"
        : error.status === 403
          ? "\n  this token's role may not do that: use an operator or admin token"
          : "";
    out.error(`dray: ${error.message} (${error.code})${hint}`);
    return EXIT.failed;
  }
  out.error(`dray: unexpected error: ${error instanceof Error ? error.message : String(error)}`);
  return EXIT.failed;
}
