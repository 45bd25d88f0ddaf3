#!/usr/bin/env node
// The `dray` CLI. `dray --version` is answered here, without loading anything else. Otherwise
// it runs the compiled bundle (dist/sdk/dist/dray.mjs at the repository root, written by
// `pnpm build`) when that is newer than every source file of the SDK, else the TypeScript
// source through tsx's loader. DRAY_CLI_FROM_SOURCE=1 forces the source.
import { readdirSync, readFileSync, statSync } from "node:fs";

// `dray … | head` closes the pipe early: that is not an error.
process.stdout.on("error", (error) => {
  if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw error;
});

const argv = process.argv.slice(2);
if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-v")) {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  process.stdout.write(`${pkg.version}\n`);
  process.exit(0);
}

/** Newest modification time (ms) of the files under `dir`. */
function newest(dir) {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = new URL(entry.name + (entry.isDirectory() ? "/" : ""), dir);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

/** The bundle when it exists and no source is newer (a stale bundle would hide an edit). */
function freshBundle() {
  if (process.env.DRAY_CLI_FROM_SOURCE === "1") return undefined;
  const bundle = new URL("../../dist/sdk/dist/dray.mjs", import.meta.url);
  let built;
  try {
    built = statSync(bundle).mtimeMs;
  } catch {
    return undefined;
  }
  const sources = [new URL("../src/", import.meta.url), new URL("../package.json", import.meta.url)];
  const changed = Math.max(
    ...sources.map((s) => (s.pathname.endsWith("/") ? newest(s) : statSync(s).mtimeMs)),
  );
  return changed <= built ? bundle : undefined;
}

const bundle = freshBundle();
let runCli;
if (bundle) {
  ({ runCli } = await import(bundle.href));
} else {
  const { register } = await import("tsx/esm/api");
  register();
  ({ runCli } = await import("../src/cli/main.ts"));
}
process.exitCode = await runCli(argv);
