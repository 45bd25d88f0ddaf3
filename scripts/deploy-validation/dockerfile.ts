/**
 * Checks of the Dockerfile and .dockerignore without a container engine: the two targets exist,
 * run as a non-root user, start the file the bundle build actually produces, and the build
 * context keeps every file the build stage needs (and leaves out installed or built output).
 */
import { existsSync, readFileSync } from "node:fs";
import { join, posix } from "node:path";
import { type CheckResult, fromProblems } from "./check-result.js";

/** One stage of a Dockerfile: its name and its instructions (continuation lines joined). */
export interface DockerStage {
  name: string;
  from: string;
  instructions: { keyword: string; args: string }[];
}

/** The stages of a Dockerfile. */
export function parseDockerfile(text: string): DockerStage[] {
  const lines = text
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  const stages: DockerStage[] = [];
  for (const line of lines) {
    const [keyword = "", ...rest] = line.split(/\s+/);
    const args = rest.join(" ");
    if (keyword.toUpperCase() === "FROM") {
      const m = args.match(/^(\S+)(?:\s+AS\s+(\S+))?$/i);
      stages.push({ name: m?.[2] ?? String(stages.length), from: m?.[1] ?? args, instructions: [] });
    } else {
      stages.at(-1)?.instructions.push({ keyword: keyword.toUpperCase(), args });
    }
  }
  return stages;
}

/** A .dockerignore pattern as a regular expression over slash-separated relative paths. */
function patternToRegExp(pattern: string): RegExp {
  let source = "";
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i] as string;
    if (pattern.startsWith("**/", i)) {
      source += "(?:.*/)?";
      i += 2;
    } else if (pattern.startsWith("**", i)) {
      source += ".*";
      i += 1;
    } else if (ch === "*") source += "[^/]*";
    else if (ch === "?") source += "[^/]";
    else source += ch.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${source}$`);
}

/**
 * Whether `.dockerignore` keeps `path` out of the build context: the last matching pattern wins
 * (a `!` pattern brings the path back), and a path is out when it or a folder above it is out.
 */
export function isIgnored(dockerignore: string, path: string): boolean {
  const rules = dockerignore
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => {
      const negated = l.startsWith("!");
      const pattern = posix.normalize(negated ? l.slice(1) : l).replace(/^\/+|\/+$/g, "");
      return { negated, re: patternToRegExp(pattern) };
    });
  const parts = path.split("/");
  let ignored = false;
  for (let depth = 1; depth <= parts.length; depth++) {
    const prefix = parts.slice(0, depth).join("/");
    let verdict: boolean | undefined;
    for (const rule of rules) if (rule.re.test(prefix)) verdict = !rule.negated;
    if (verdict !== undefined) ignored = verdict;
    // A folder left out stays out unless a later pattern names something inside it.
    if (ignored && depth < parts.length && !rules.some((r) => r.negated)) return true;
  }
  return ignored;
}

/** Files the build stage needs from the context. */
export const REQUIRED_CONTEXT = [
  "package.json",
  "pnpm-lock.yaml",
  "pnpm-workspace.yaml",
  ".npmrc",
  "tsconfig.json",
  "proto/package.json",
  "common/package.json",
  "agent/package.json",
  "control-plane/package.json",
  "sdk/package.json",
  "test/package.json",
  "bench/package.json",
  "scripts/build-bundles.ts",
  "proto/src/index.ts",
  "common/src/index.ts",
  "agent/src/main.ts",
  "control-plane/src/main.ts",
  "control-plane/src/web/assets/app.js",
  "control-plane/drizzle/meta/_journal.json",
];

/** Paths that must stay out of the context (installed or built output, history). */
export const EXCLUDED_CONTEXT = [
  "node_modules/esbuild/package.json",
  "control-plane/node_modules/hono/package.json",
  "dist/control-plane/dist/bin/dray-control-plane.mjs",
  ".git/HEAD",
  "test/deploy-bundles.test.ts",
];

/** Problems of the Dockerfile and .dockerignore; `builtOut` is a build-bundles output to check CMDs against. */
export function dockerProblems(root: string, builtOut?: string): string[] {
  const problems: string[] = [];
  const stages = parseDockerfile(readFileSync(join(root, "Dockerfile"), "utf8"));
  const dockerignore = readFileSync(join(root, ".dockerignore"), "utf8");
  for (const path of REQUIRED_CONTEXT) {
    if (!existsSync(join(root, path))) problems.push(`${path}: needed by the build but missing`);
    else if (isIgnored(dockerignore, path))
      problems.push(`.dockerignore leaves out ${path}, which the build needs`);
  }
  for (const path of EXCLUDED_CONTEXT) {
    if (!isIgnored(dockerignore, path)) problems.push(`.dockerignore lets ${path} into the build context`);
  }
  const build = stages.find((s) => s.name === "build");
  for (const copy of build?.instructions.filter((i) => i.keyword === "COPY") ?? []) {
    const sources = copy.args.split(/\s+/).slice(0, -1);
    for (const source of sources) {
      if (source !== "." && !existsSync(join(root, source))) problems.push(`COPY ${source}: no such file`);
    }
  }
  for (const target of ["control-plane", "agent"]) {
    const stage = stages.find((s) => s.name === target);
    if (!stage) {
      problems.push(`no target ${target}`);
      continue;
    }
    const user = stage.instructions.filter((i) => i.keyword === "USER").at(-1)?.args;
    if (!user || /^(0|root)(:|$)/.test(user)) problems.push(`${target}: does not switch to a non-root USER`);
    const copy = stage.instructions.find((i) => i.keyword === "COPY" && i.args.startsWith("--from=build"));
    const copied = copy?.args.match(/--from=build\s+(\S+)\s+\/app$/)?.[1];
    if (copied !== `/out/${target}`) problems.push(`${target}: does not copy /out/${target} to /app`);
    const cmd = stage.instructions.find((i) => i.keyword === "CMD")?.args;
    let argv: string[] = [];
    try {
      argv = JSON.parse(cmd ?? "");
    } catch {
      problems.push(`${target}: CMD is not in exec (JSON) form, so node would not get the signals`);
    }
    const entry = argv.find((a) => a.startsWith("/app/"));
    if (argv[0] !== "node" || !entry) problems.push(`${target}: CMD does not run node on a file under /app`);
    else if (builtOut && !existsSync(join(builtOut, target, entry.slice("/app/".length)))) {
      problems.push(`${target}: CMD runs ${entry}, which the bundle build does not produce`);
    }
  }
  return problems;
}

/** The Dockerfile check. */
export function checkDockerfile(root: string, builtOut?: string): CheckResult {
  return fromProblems(
    "docker: Dockerfile targets and build context",
    dockerProblems(root, builtOut),
    builtOut ? "CMD paths checked against a fresh bundle build" : "CMD paths not checked (no build given)",
  );
}
