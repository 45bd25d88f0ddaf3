#!/usr/bin/env node
// `npm run demo` on a fresh clone: makes sure pnpm and the dependencies are
// installed (from the local store when offline), then runs scripts/demo.ts.
//
// Signals: the demo runs in a process group of its own, so a terminal's Ctrl-C
// (SIGINT to the whole foreground group, and often passed on once more by npm)
// reaches it only through this launcher, which passes on the first signal
// exactly once and ignores the rest while the demo stops.
import { execSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const run = (command) => execSync(command, { cwd: root, stdio: "inherit" });

function hasPnpm() {
  try {
    return (
      execSync("pnpm --version", { stdio: ["ignore", "pipe", "ignore"] })
        .toString()
        .trim() === "10.34.8"
    );
  } catch {
    return false;
  }
}

if (!hasPnpm()) {
  console.log("installing pnpm 10.34.8 …");
  run("npm i -g pnpm@10.34.8");
}
if (!existsSync(join(root, "node_modules", ".modules.yaml"))) {
  console.log("installing dependencies …");
  run("pnpm install --frozen-lockfile --prefer-offline");
}
const child = spawn(
  process.execPath,
  ["--import", "tsx", join(root, "scripts", "demo.ts"), ...process.argv.slice(2)],
  { cwd: root, stdio: "inherit", detached: true },
);
let forwarded = false;
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => {
    if (forwarded || child.exitCode !== null) return;
    forwarded = true;
    child.kill(signal);
  });
}
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
