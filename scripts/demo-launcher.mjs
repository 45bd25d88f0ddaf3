#!/usr/bin/env node
// `npm run demo` on a fresh clone: makes sure pnpm and the dependencies are
// installed (from the local store when offline), builds the compiled bundles
// when they are missing or older than their sources (`pnpm build`, a few
// seconds; the demo's agents and `dray` then start from compiled JavaScript),
// then runs scripts/demo.ts. A failed build is reported in one line and the
// demo goes on from the TypeScript sources.
//
// Signals: the demo runs in a process group of its own, so a terminal's Ctrl-C
// (SIGINT to the whole foreground group, and often passed on once more by npm)
// reaches it only through this launcher, which passes on the first signal
// exactly once and ignores the rest while the demo stops.
import { execSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
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
/**
 * Runs `pnpm build` when a bundle the demo uses is stale. It builds into a folder aside
 * and then swaps it in, so that a bin starting meanwhile finds the old or the new bundles
 * whole, or none (and then runs the sources), never a half-written one.
 */
async function buildIfStale() {
  if (process.env.DRAY_FROM_SOURCE === "1") return;
  const { resolveEntry } = await import("../common/bin/bundle-or-source.mjs");
  const stale = ["dray-control-plane", "dray-agent", "dray"].filter(
    (name) => resolveEntry(name).kind !== "bundle",
  );
  if (stale.length === 0) return;
  const dist = join(root, "dist");
  // Under node_modules (ignored by git, same file system as dist/, so the renames are atomic).
  const cache = join(root, "node_modules", ".cache");
  mkdirSync(cache, { recursive: true });
  const next = join(cache, `dray-dist-building-${process.pid}`);
  const old = join(cache, `dray-dist-old-${process.pid}`);
  const started = Date.now();
  process.stdout.write("building the compiled bundles (pnpm build) … ");
  const built = spawnSync(
    process.execPath,
    ["--import", "tsx", join(root, "scripts", "build-bundles.ts"), "--out", next],
    { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
  );
  if (built.status !== 0) {
    rmSync(next, { recursive: true, force: true });
    const reason = (built.stderr || built.stdout || "").trim().split("\n").at(-1);
    console.log(`failed (${reason}); running from the TypeScript sources`);
    return;
  }
  if (existsSync(dist)) renameSync(dist, old);
  renameSync(next, dist);
  rmSync(old, { recursive: true, force: true });
  console.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

await buildIfStale();
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
