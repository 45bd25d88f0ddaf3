import { type Command, CommanderError } from "commander";
import pkg from "../../package.json" with { type: "json" };
import { DrayApiError, DrayConnectionError } from "../errors.js";
import type { CommandContext } from "./command-context.js";
import { EXIT, UsageError } from "./exit-codes.js";
import { createOutput, type Output } from "./output.js";
import { defineCommands, type Handler } from "./program.js";

/** The version `dray --version` prints (the SDK package's). */
export const VERSION: string = pkg.version;

/**
 * Runs the CLI with `argv` (without node and script) and returns the exit code. The command
 * line is parsed by commander; the command modules and the API client are imported only
 * when a command runs, so `--help`, `--version` and `completion` load neither.
 */
export async function runCli(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let exitCode: number = EXIT.ok;
  let url = "";
  // The deepest command reached, to point an error at its help.
  let current: Command | undefined;
  let out: Output = createOutput({ json: argv.includes("--json"), env });

  const run = async (handler: Handler, command: Command) => {
    const flags = command.optsWithGlobals() as CommandContext["flags"];
    out = createOutput({ json: Boolean(flags.json), env });
    if (handler.kind === "offline") {
      exitCode = await handler.run({ out, flags, env, program });
      return;
    }
    if (handler.kind === "login") {
      const { login } = await import("./commands/login.js");
      url = String(flags.url);
      exitCode = await login({ out, flags, env });
      return;
    }
    const [{ createDrayClient }, { loadCliConfig }] = await Promise.all([
      import("../client.js"),
      import("./cli-config.js"),
    ]);
    const config = await loadCliConfig(env);
    url = config.url;
    const ctx: CommandContext = {
      client: createDrayClient({ baseUrl: config.url, token: config.token }),
      out,
      flags,
      env,
    };
    exitCode = await handler.run(ctx, command.processedArgs as string[]);
  };

  const program = defineCommands(run, VERSION);
  const every = (command: Command): Command[] => [command, ...command.commands.flatMap(every)];
  for (const command of every(program)) {
    command.hook("preSubcommand", (_parent, sub) => {
      current = sub;
    });
    command.exitOverride();
    command.configureOutput({
      writeOut: (s) => process.stdout.write(s),
      writeErr: (s) => process.stderr.write(s),
      // Errors are written once, on one line, by `commanderExit` below.
      outputError: () => {},
    });
  }

  try {
    await program.parseAsync(argv, { from: "user" });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) return commanderExit(error, current ?? program);
    return report(out, error, url);
  }
}

/** The exit code of a commander stop (help, version, parse error), writing the error line. */
function commanderExit(error: CommanderError, command: Command): number {
  if (
    error.code === "commander.helpDisplayed" ||
    error.code === "commander.version" ||
    error.code === "commander.help"
  ) {
    return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
  }
  // "error: unknown option '--wacth'\n(Did you mean --watch?)" → one line.
  const [line = "", ...more] = error.message.replace(/^error: /, "").split("\n");
  const first = line.replace(/\.$/, "");
  const suggestion = more
    .join(" ")
    .match(/\(Did you mean (.+)\?\)/)?.[1]
    ?.trim();
  const help = `see \`${commandPath(command)} --help\``;
  process.stderr.write(`dray: ${first}${suggestion ? `; did you mean ${suggestion}?` : ""} — ${help}\n`);
  return EXIT.usage;
}

/** "dray pipeline delete" for the command `delete` under `pipeline`. */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/** Writes an error on one line (with a hint) and returns its exit code. */
function report(out: Output, error: unknown, url: string): number {
  if (error instanceof UsageError) {
    out.error(`dray: ${error.message}${error.hint ? ` — ${error.hint}` : ""}`);
    return EXIT.usage;
  }
  if (error instanceof DrayConnectionError) {
    if (out.json) out.data({ error: { code: error.code, message: error.message } });
    out.error(
      `dray: ${error.message} — check that dray-control-plane is running and that the URL is right (${url || "DRAY_URL"})`,
    );
    return EXIT.unreachable;
  }
  if (error instanceof DrayApiError) {
    if (out.json) out.data({ error: { code: error.code, message: error.message, details: error.details } });
    const hint =
      error.status === 401
        ? " — the token was refused: run `dray login` again with a valid token"
        : error.status === 403
          ? " — this token's role may not do that: use an operator or admin token"
          : "";
    out.error(`dray: ${error.message} (${error.code})${hint}`);
    return EXIT.failed;
  }
  out.error(`dray: unexpected error: ${error instanceof Error ? error.message : String(error)}`);
  return EXIT.failed;
}
