#!/usr/bin/env node
// The `dray` CLI. `dray --version` is answered here, without loading anything else. Otherwise
// it runs the compiled bundle (dist/sdk/dist/dray.mjs at the repository root, written by
// `pnpm build`) when that is newer than every source it is built from, else the TypeScript
// source through tsx's loader. DRAY_CLI_FROM_SOURCE=1 forces the source.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

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

// The bundle, when it is newer than every source it is built from (the rule shared with the other
// bins: common/bin/bundle-or-source.mjs); DRAY_CLI_FROM_SOURCE=1 forces the source.
const { resolveEntry } = await import("../../common/bin/bundle-or-source.mjs");
const entry = resolveEntry("dray", {
  ...process.env,
  DRAY_FROM_SOURCE: process.env.DRAY_CLI_FROM_SOURCE === "1" ? "1" : process.env.DRAY_FROM_SOURCE,
});
let runCli;
if (entry.kind === "bundle") {
  ({ runCli } = await import(pathToFileURL(entry.file).href));
} else {
  const { register } = await import("tsx/esm/api");
  register();
  ({ runCli } = await import("../src/cli/main.ts"));
}
process.exitCode = await runCli(argv);
