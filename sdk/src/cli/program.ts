import { Argument, Command, Option } from "commander";
import type { CommandContext } from "./command-context.js";
import type { Output } from "./output.js";

/** What an `offline` command receives: no API client. */
export interface OfflineContext {
  out: Output;
  flags: CommandContext["flags"];
  env: NodeJS.ProcessEnv;
  /** The whole command tree (for `completion`). */
  program: Command;
}

/** How a command runs: against the API, as `login`, or without the API at all. */
export type Handler =
  | { kind: "api"; run: (ctx: CommandContext, args: string[]) => Promise<number> }
  | { kind: "login" }
  | { kind: "offline"; run: (ctx: OfflineContext) => Promise<number> };

/** Runs a handler for the command that matched (set by `runCli`). */
export type Runner = (handler: Handler, command: Command) => Promise<void>;

type ApiCommand = (ctx: CommandContext, args: string[]) => Promise<number>;

/** A handler whose module is imported only when the command runs. */
function api(load: () => Promise<ApiCommand>, sub?: string): Handler {
  return {
    kind: "api",
    run: async (ctx, args) => (await load())(ctx, sub ? [sub, ...args] : args),
  };
}

const envModule = () => import("./commands/env.js").then((m) => m.envCommand);
const pipelineModule = () => import("./commands/pipeline.js").then((m) => m.pipelineCommand);
const tracking = () => import("./commands/tracking.js");
const continuous = () => import("./commands/continuous.js");
const filesModule = () => import("./commands/files.js");

/** The "Examples:" block of a command's help. */
function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((l) => `  $ ${l}`).join("\n")}\n`;
}

const EXECUTION_REF =
  "an execution id, a pipeline token (pt-…), or a pipeline name or id (its running execution, else its latest)";

const yes = () => new Option("-y, --yes", "do it without asking (needed off a terminal)");

/**
 * The `dray` command tree. Every command has a description, `--help` and examples; `runner`
 * is called with the matched command's handler.
 */
export function defineCommands(runner: Runner, version: string): Command {
  const program = new Command("dray");
  const on = (handler: Handler) =>
    async function (this: Command) {
      await runner(handler, this);
    };

  program
    .description("the Dray command line: environments, pipelines and their runs")
    .version(version, "-v, --version", "print the version of dray")
    .helpOption("-h, --help", "show help for a command")
    .helpCommand("help [command]", "show help for a command")
    .option("--json", "machine-readable output (see `dray help run` for --json with watching)")
    .configureHelp({ showGlobalOptions: true })
    .showSuggestionAfterError(true)
    .addHelpText(
      "after",
      `${examples(
        "dray login --url http://127.0.0.1:8080 --token dray_…",
        "dray run demo-crm",
        "dray watch demo-crm",
        "dray help run",
      )}
Environment: DRAY_URL and DRAY_TOKEN (else the file written by \`dray login\`), NO_COLOR.
Exit codes: 0 completed, 1 failed, 2 bad usage, 3 cancelled, 4 cannot reach the control plane,
130 detached with Ctrl-C (the run goes on).
`,
    );

  program
    .command("login")
    .description("save where to reach the control plane (or set DRAY_URL and DRAY_TOKEN)")
    .requiredOption("--url <url>", "the control plane's HTTP address")
    .requiredOption("--token <token>", "an API token (dray_…)")
    .addHelpText("after", examples("dray login --url http://127.0.0.1:8080 --token dray_…"))
    .action(on({ kind: "login" }));

  const env = program
    .command("env")
    .description("environments: list, add, test, entities, delete")
    .addHelpText("after", examples("dray env list", "dray env add qa --protected", "dray env test qa"));
  env
    .command("list")
    .description("environments with health, agent and last heartbeat")
    .option("--search <text>", "only names containing this")
    .addHelpText("after", examples("dray env list", "dray env list --search qa --json"))
    .action(on(api(envModule, "list")));
  env
    .command("add")
    .description("create an environment; prints its agent's enrollment token")
    .argument("<name>", "its name")
    .option("--application <name>", "the application it belongs to")
    .option("--url <url>", "a link to it, shown in the UI")
    .option("--protected", "a clean into it must be confirmed")
    .addHelpText("after", examples("dray env add qa", "dray env add production --protected"))
    .action(on(api(envModule, "add")));
  env
    .command("test")
    .description("live round trip to the agent and its database")
    .argument("<environment>", "name or id")
    .addHelpText("after", examples("dray env test qa"))
    .action(on(api(envModule, "test")));
  env
    .command("entities")
    .description("tables, fields, primary keys and references")
    .argument("<environment>", "name or id")
    .option("--refresh", "ask the agent again instead of the cached snapshot")
    .addHelpText("after", examples("dray env entities qa", "dray env entities qa --refresh --json"))
    .action(on(api(envModule, "entities")));
  env
    .command("delete")
    .description("delete an environment (asks first; its database is not touched)")
    .argument("<environment>", "name or id")
    .addOption(yes())
    .addHelpText("after", examples("dray env delete qa", "dray env delete qa --yes"))
    .action(on(api(envModule, "delete")));

  const pipeline = program
    .command("pipeline")
    .description("pipelines: list, create, show, export, plan, preview, delete, start, stop, reconcile")
    .addHelpText(
      "after",
      examples("dray pipeline create pipeline.yaml", "dray pipeline plan demo-crm", "dray pipeline list"),
    );
  pipeline
    .command("list")
    .description("pipelines and their last run")
    .addHelpText("after", examples("dray pipeline list", "dray pipeline list --json"))
    .action(on(api(pipelineModule, "list")));
  pipeline
    .command("create")
    .description("create a pipeline from JSON or YAML (source/target may be environment names)")
    .argument("<file>", "a .json, .yaml or .yml file")
    .addHelpText("after", examples("dray pipeline create pipeline.yaml"))
    .action(on(api(pipelineModule, "create")));
  for (const [name, description, example] of [
    ["show", "details, with transformations and quality rules", "dray pipeline show demo-crm"],
    [
      "export",
      "the definition as YAML that `dray pipeline create` takes back as is",
      "dray pipeline export demo-crm > pipeline.yaml",
    ],
    ["plan", "load order, cycles, estimates and warnings, without running", "dray pipeline plan demo-crm"],
    [
      "preview",
      "up to 20 transformed rows per entity (transformed fields only)",
      "dray pipeline preview demo-crm",
    ],
  ] as const) {
    pipeline
      .command(name)
      .description(description)
      .argument("<pipeline>", "name or id")
      .addHelpText("after", examples(example))
      .action(on(api(pipelineModule, name)));
  }
  pipeline
    .command("delete")
    .description("delete a pipeline and its history (asks first; copied data stays)")
    .argument("<pipeline>", "name or id")
    .addOption(yes())
    .addHelpText("after", examples("dray pipeline delete demo-crm", "dray pipeline delete demo-crm --yes"))
    .action(on(api(pipelineModule, "delete")));

  pipeline
    .command("start")
    .description("start a continuous pipeline: it copies new and changed rows until stopped")
    .argument("<pipeline>", "name or id")
    .addHelpText(
      "after",
      `${examples("dray pipeline start orders-sync", "dray pipeline start orders-sync --json")}
Only for pipelines with mode: continuous (a once pipeline runs with \`dray run\`). A restart
continues from the positions the last execution reached.
`,
    )
    .action(on(api(() => continuous().then((m) => m.startCommand))));
  pipeline
    .command("stop")
    .description("stop a continuous pipeline at its next batch boundary (the batch in flight finishes first)")
    .argument("<pipeline>", "name or id")
    .option("-w, --wait", "wait until the execution has ended, and exit with its outcome")
    .addHelpText(
      "after",
      `${examples("dray pipeline stop orders-sync", "dray pipeline stop orders-sync --wait")}
Without --wait it returns once the stop is requested; with it, it exits 0 when the
execution ends completed, 1 failed, 3 cancelled.
`,
    )
    .action(on(api(() => continuous().then((m) => m.stopCommand))));
  pipeline
    .command("reconcile")
    .description("at its next poll, a running continuous pipeline deletes target rows deleted at the source")
    .argument("<pipeline>", "name or id")
    .addHelpText("after", examples("dray pipeline reconcile orders-sync"))
    .action(on(api(() => continuous().then((m) => m.reconcileCommand))));

  program
    .command("upload")
    .description("upload files to a `files` pipeline (streamed, a bar per file); each file's load is queued")
    .argument("<pipeline>", "name or id of a pipeline whose source is files")
    .argument("<file...>", "the files (CSV or NDJSON as the pipeline says, or their .gz)")
    .option(
      "--publisher-token <token>",
      "name the upload batch (default: one made up per call, shared by its files)",
    )
    .addHelpText(
      "after",
      `${examples(
        "dray upload orders-feed orders-2026-05-01.csv",
        "dray upload orders-feed day1.csv day2.csv.gz --publisher-token nightly-2026-05-01",
        "dray upload orders-feed *.ndjson --json",
      )}
Prints each file's pipeline token (pt-…) and state (Unloaded until its load ends). The same
bytes uploaded again queue nothing: the first upload's token is printed. A refused file (too
large, …) does not stop the others; the exit code is then 1.
`,
    )
    .action(on(api(() => import("./commands/upload.js").then((m) => m.uploadCommand))));

  const files = program
    .command("files")
    .description("the files uploaded to a pipeline with their load state; `files drop` forgets one")
    .argument("<pipeline>", "name or id")
    .addHelpText(
      "after",
      examples(
        "dray files orders-feed",
        "dray files orders-feed --json",
        "dray files drop orders-feed 3f2a9c1b7e04",
      ),
    )
    .action(on(api(() => filesModule().then((m) => m.filesListCommand))));
  files
    .command("drop")
    .description("DROP FILE: forget a file and its staged bytes (asks first; loaded rows stay)")
    .argument("<pipeline>", "name or id")
    .argument("<fileId>", "the file's id, or the start of it that `dray files` shows")
    .addOption(yes())
    .addHelpText(
      "after",
      `${examples("dray files drop orders-feed 3f2a9c1b7e04", "dray files drop orders-feed 3f2a9c1b7e04 --yes")}
The same bytes can then be uploaded again. A file whose load is queued or running cannot
be dropped (wait for it, or cancel its execution).
`,
    )
    .action(on(api(() => filesModule().then((m) => m.filesDropCommand))));

  program
    .command("run")
    .description("start a run and follow it to its end (exit 0 completed, 1 failed, 3 cancelled)")
    .argument("<pipeline>", "name or id")
    .option("-d, --detach", "queue the run and return at once")
    .option("-w, --watch", "with --json: stream every event as a JSON line (NDJSON)")
    .addOption(yes())
    .addOption(new Option("--confirm", "same as --yes").hideHelp())
    .addHelpText(
      "after",
      `${examples(
        "dray run demo-crm",
        "dray run demo-crm --detach",
        "dray run demo-crm --json            # waits, then prints the final execution",
        "dray run demo-crm --json --watch    # one JSON event per line, then the execution",
      )}
On a terminal the run draws a live bar per entity; off a terminal it prints plain lines.
Ctrl-C detaches (the run goes on): \`dray watch pt-…\` to return, \`dray cancel pt-…\` to stop.
A clean (delete, then load) into a protected environment asks first, or needs --yes.
With --json --watch each line is {"id","type","data"} of an event (execution.status,
execution.progress, execution.stage, execution.error, …), the last {"type":"execution","data":…}.
`,
    )
    .action(on(api(() => import("./commands/run.js").then((m) => m.runCommand))));

  program
    .command("watch")
    .description("attach to a run with live bars; Ctrl-C detaches")
    .argument("<execution>", EXECUTION_REF)
    .addHelpText(
      "after",
      `${examples("dray watch demo-crm", "dray watch pt-5f0c2b1e-8c3a-4d7e-9b1a-2f6d8e4c1a07", "dray watch demo-crm --json")}
Exits with the run's outcome: 0 completed, 1 failed, 3 cancelled (130 when detached).
With --json it streams one JSON event per line, then {"type":"execution","data":…}.
`,
    )
    .action(on(api(() => import("./commands/watch.js").then((m) => m.watchCommand))));

  program
    .command("status")
    .description("the stage log of a run")
    .argument("<execution>", EXECUTION_REF)
    .addHelpText(
      "after",
      examples("dray status demo-crm", "dray status pt-5f0c2b1e-8c3a-4d7e-9b1a-2f6d8e4c1a07"),
    )
    .action(on(api(() => tracking().then((m) => m.statusCommand))));

  program
    .command("history")
    .description("the newest runs of a pipeline (20 unless --limit), or all of them")
    .argument("<pipeline>", "a pipeline name or id, or one of its runs (execution id or pt-…)")
    .option("--status <list>", "only these statuses, e.g. failed,cancelled")
    .option("--from <date>", "runs created from this date (2026-01-01)")
    .option("--to <date>", "runs created up to this date")
    .option("--limit <n>", "the newest n runs (default 20)")
    .option("--all", "every run, page after page")
    .option("--page <n>", "one page of 20")
    .addHelpText(
      "after",
      examples("dray history demo-crm", "dray history demo-crm --status failed,cancelled --all"),
    )
    .action(on(api(() => tracking().then((m) => m.historyCommand))));

  program
    .command("cancel")
    .description("stop a run (asks first); the records already committed stay in the target")
    .argument("<execution>", EXECUTION_REF)
    .option("--reason <text>", "why, kept in the history")
    .addOption(yes())
    .addHelpText(
      "after",
      examples(
        "dray cancel demo-crm",
        "dray cancel pt-5f0c2b1e-8c3a-4d7e-9b1a-2f6d8e4c1a07 --yes --reason 'wrong target'",
      ),
    )
    .action(on(api(() => tracking().then((m) => m.cancelCommand))));

  program
    .command("usage")
    .description("records used this month against the limit")
    .addHelpText("after", examples("dray usage"))
    .action(on(api(() => tracking().then((m) => (ctx) => m.usageCommand(ctx)))));

  program
    .command("completion")
    .description("print the shell completion script")
    .addArgument(new Argument("<shell>", "the shell").choices(["bash", "zsh", "fish"]))
    .addHelpText(
      "after",
      `${examples(
        "dray completion bash > /etc/bash_completion.d/dray   # bash, for good",
        "source <(dray completion bash)                       # bash, this shell",
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a zsh expansion, shown as typed
        'dray completion zsh > "${fpath[1]}/_dray"            # zsh',
        "dray completion fish > ~/.config/fish/completions/dray.fish",
      )}`,
    )
    .action(async function (this: Command) {
      const shell = this.processedArgs[0] as "bash" | "zsh" | "fish";
      await runner(
        {
          kind: "offline",
          run: async ({ out, program }) => {
            const { completionScript } = await import("./completion.js");
            out.stdout.write(completionScript(shell, program));
            return 0;
          },
        },
        this,
      );
    });

  return program;
}
