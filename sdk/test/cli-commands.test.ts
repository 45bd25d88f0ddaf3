/**
 * The `dray` command line itself, run as users run it (the real bin in a child process):
 * `--version`, one-line errors with a "did you mean" and exit code 2, help with examples on
 * every command, completion scripts that the shells accept and that complete, a refusal
 * without login, and the compiled bundle behaving as the source does.
 */
import { execFile, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { buildCliBundle } from "../../scripts/build-bundles.js";
import { runCli } from "../src/cli/main.js";
import { defineCommands } from "../src/cli/program.js";

const BIN = new URL("../bin/dray.js", import.meta.url).pathname;
const PKG = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8")) as {
  version: string;
};

interface Ran {
  code: number | null;
  out: string;
  err: string;
}

/** Runs `node <script> ...args` off a terminal, with no saved login. */
function run(args: string[], script = BIN, extraEnv: Record<string, string> = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [script, ...args],
      {
        env: {
          PATH: process.env.PATH,
          HOME: tmpdir(),
          DRAY_CONFIG_DIR: "/nonexistent-dray",
          NO_COLOR: "1",
          ...extraEnv,
        },
        timeout: 60_000,
      },
      (error, out, err) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, out, err });
      },
    );
  });
}

/** Whether `shell` is installed. */
const has = (shell: string) => spawnSync("sh", ["-c", `command -v ${shell}`]).status === 0;

describe("dray --version", () => {
  it("prints the SDK package's version and exits 0", async () => {
    const ran = await run(["--version"]);
    expect(ran).toEqual({ code: 0, out: `${PKG.version}\n`, err: "" });
    // Through the command parser too (with another flag the fast path is skipped).
    const parsed = await run(["--json", "-v"]);
    expect(parsed.code).toBe(0);
    expect(parsed.out).toBe(`${PKG.version}\n`);
  });
});

describe("mistakes", () => {
  it("a mistyped command gets one line with a suggestion and exit code 2", async () => {
    const ran = await run(["rn", "demo"]);
    expect(ran.code).toBe(2);
    expect(ran.out).toBe("");
    expect(ran.err).toBe("dray: unknown command 'rn'; did you mean run? — see `dray --help`\n");
  });

  it("a mistyped flag or subcommand names the command whose help to read", async () => {
    const flag = await run(["run", "demo", "--wacth"]);
    expect(flag.code).toBe(2);
    expect(flag.err).toBe("dray: unknown option '--wacth'; did you mean --watch? — see `dray run --help`\n");
    const sub = await run(["pipeline", "delte", "demo"]);
    expect(sub.code).toBe(2);
    expect(sub.err).toBe(
      "dray: unknown command 'delte'; did you mean delete? — see `dray pipeline --help`\n",
    );
  });

  it("a missing argument is one line, not the whole usage", async () => {
    const ran = await run(["cancel"]);
    expect(ran.code).toBe(2);
    expect(ran.err.trim().split("\n")).toEqual([
      "dray: missing required argument 'execution' — see `dray cancel --help`",
    ]);
    expect(ran.err).not.toContain("Usage:");
  });

  it("a command that needs the API says how to log in", async () => {
    const ran = await run(["usage"]);
    expect(ran.code).toBe(2);
    expect(ran.err).toMatch(
      /^dray: not logged in: run `dray login --url .+`, or set DRAY_URL and DRAY_TOKEN\n$/,
    );
  });
});

describe("help", () => {
  it("`dray help <command>` and `--help` print the command's usage and examples", async () => {
    const viaHelp = await run(["help", "cancel"]);
    expect(viaHelp.code).toBe(0);
    expect(viaHelp.out).toContain("Usage: dray cancel [options] <execution>");
    expect(viaHelp.out).toContain("committed stay in the target");
    expect(viaHelp.out).toContain("$ dray cancel demo-crm");
    const viaFlag = await run(["cancel", "--help"]);
    expect(viaFlag).toEqual(viaHelp);
  });

  it("every command has a description and examples", async () => {
    const program = defineCommands(async () => {}, PKG.version);
    const every = (c: typeof program, path: string[]): string[][] =>
      c.commands.flatMap((s) => [[...path, s.name()], ...every(s, [...path, s.name()])]);
    const paths = every(program, []);
    expect(paths.length).toBeGreaterThan(20);
    let out = "";
    const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      out += String(chunk);
      return true;
    });
    try {
      for (const path of paths) {
        out = "";
        expect(await runCli([...path, "--help"], { NO_COLOR: "1" }), path.join(" ")).toBe(0);
        expect(out, path.join(" ")).toContain(`Usage: dray ${path.join(" ")}`);
        expect(out, path.join(" ")).toContain("Examples:\n  $ dray ");
      }
    } finally {
      spy.mockRestore();
    }
  });
});

describe("dray completion", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "dray-completion-"));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it("bash: a valid script that completes commands, subcommands and flags", async () => {
    const ran = await run(["completion", "bash"]);
    expect(ran.code).toBe(0);
    const file = join(dir, "dray.bash");
    await writeFile(file, ran.out);
    expect(spawnSync("bash", ["-n", file]).status).toBe(0);
    const complete = (...words: string[]) =>
      spawnSync(
        "bash",
        [
          "-c",
          `source ${file}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _dray; echo "\${COMPREPLY[*]}"`,
        ],
        { encoding: "utf8" },
      ).stdout.trim();
    expect(complete("dray", "ca")).toBe("cancel");
    expect(complete("dray", "pipeline", "de")).toBe("delete");
    expect(complete("dray", "run", "demo", "--de")).toBe("--detach");
    expect(complete("dray", "completion", "")).toContain("fish");
  });

  it.skipIf(!has("zsh"))("zsh: a script zsh parses", async () => {
    const ran = await run(["completion", "zsh"]);
    expect(ran.code).toBe(0);
    expect(ran.out.startsWith("#compdef dray\n")).toBe(true);
    const file = join(dir, "_dray");
    await writeFile(file, ran.out);
    expect(spawnSync("zsh", ["-n", file]).status).toBe(0);
  });

  it.skipIf(!has("fish"))("fish: a script fish parses", async () => {
    const ran = await run(["completion", "fish"]);
    expect(ran.code).toBe(0);
    const file = join(dir, "dray.fish");
    await writeFile(file, ran.out);
    expect(spawnSync("fish", ["--no-execute", file]).status).toBe(0);
    const complete = (line: string) =>
      spawnSync("fish", ["-c", `source ${file}; complete -C '${line}'`], { encoding: "utf8" }).stdout;
    expect(complete("dray pipeline de")).toMatch(/^delete\t/);
    expect(complete("dray cancel x --")).toContain("--yes\t");
  });

  it("an unknown shell is a usage error", async () => {
    const ran = await run(["completion", "ksh"]);
    expect(ran.code).toBe(2);
    expect(ran.err).toContain("Allowed choices are bash, zsh, fish");
  });
});

describe("the compiled bundle", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "dray-cli-bundle-"));
    await buildCliBundle(dir, false);
  }, 120_000);
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it("answers as the source does", async () => {
    const script = join(dir, "run.mjs");
    await writeFile(
      script,
      `const { runCli } = await import(${JSON.stringify(join(dir, "sdk/dist/dray.mjs"))});\nprocess.exitCode = await runCli(process.argv.slice(2));\n`,
    );
    expect(await run(["--json", "--version"], script)).toEqual({ code: 0, out: `${PKG.version}\n`, err: "" });
    expect(await run(["rn"], script)).toEqual(await run(["rn"]));
    const completion = await run(["completion", "bash"], script);
    expect(completion.out).toBe((await run(["completion", "bash"])).out);
  });
});
