// Shared by the bins (control-plane/bin/dray-control-plane.js, agent/bin/dray-agent.js,
// sdk/bin/dray.js) and by scripts/demo-launcher.mjs. Plain JavaScript, so that it runs
// before any TypeScript loader is registered.
//
// The rule: a bin runs its compiled bundle (written by `pnpm build` into the repository's
// dist/) when that bundle exists and is newer than every one of its sources — each file AND
// folder (a deleted or renamed file changes its folder's time) under the folders it is built
// from, the package manifests, the lockfile and the build script. Otherwise it registers tsx
// and runs the TypeScript source. A bundle older than any source would hide that edit, so the
// working tree always wins: tests, which start the bins, test the code in the working tree.
//
// Settings (environment):
//   DRAY_FROM_SOURCE=1   always run the TypeScript source through tsx
//   DRAY_BUNDLE_DIR=DIR  where `pnpm build` wrote the bundles (default: <repository>/dist)
import { readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/** The repository root (this file is <root>/common/bin/bundle-or-source.mjs). */
export const repositoryRoot = fileURLToPath(new URL("../..", import.meta.url));

const SHARED_SOURCES = [
  "common/src",
  "common/package.json",
  "proto/src",
  "proto/package.json",
  "pnpm-lock.yaml",
  "scripts/build-bundles.ts",
];

/**
 * What each process is built from and where its bundle lands, relative to the repository and
 * to the bundle folder. Keep in step with scripts/build-bundles.ts.
 */
export const PROCESSES = {
  "dray-control-plane": {
    bundle: "control-plane/dist/bin/dray-control-plane.mjs",
    source: "control-plane/src/main.ts",
    sources: ["control-plane/src", "control-plane/drizzle", "control-plane/package.json", ...SHARED_SOURCES],
  },
  "dray-agent": {
    bundle: "agent/dist/bin/dray-agent.mjs",
    source: "agent/src/main.ts",
    sources: ["agent/src", "agent/package.json", ...SHARED_SOURCES],
  },
  dray: {
    bundle: "sdk/dist/dray.mjs",
    source: "sdk/src/cli/main.ts",
    sources: ["sdk/src", "sdk/package.json", ...SHARED_SOURCES],
  },
};

/**
 * Newest modification time (ms) of `path` and, for a folder, of everything under it; 0 when
 * it does not exist. Folders count too: removing or renaming a file changes its folder's time.
 */
export function newestMtime(path) {
  let stats;
  try {
    stats = statSync(path);
  } catch {
    return 0;
  }
  let latest = stats.mtimeMs;
  if (stats.isDirectory()) {
    for (const entry of readdirSync(path)) latest = Math.max(latest, newestMtime(join(path, entry)));
  }
  return latest;
}

/**
 * The pure rule: "bundle" when there is a bundle (`bundleMtimeMs` > 0), running from source is
 * not forced, and no source is newer than it; else "source".
 */
export function chooseEntry({ bundleMtimeMs, sourcesMtimeMs, fromSource }) {
  if (fromSource || !(bundleMtimeMs > 0)) return "source";
  return sourcesMtimeMs <= bundleMtimeMs ? "bundle" : "source";
}

/**
 * Which file a process would run: its bundle (absolute path) when fresh, else its source.
 * `env` supplies DRAY_FROM_SOURCE and DRAY_BUNDLE_DIR.
 */
export function resolveEntry(name, env = process.env) {
  const spec = PROCESSES[name];
  if (!spec) throw new Error(`unknown Dray process ${name}`);
  const bundleDir = env.DRAY_BUNDLE_DIR ? resolve(env.DRAY_BUNDLE_DIR) : join(repositoryRoot, "dist");
  const bundle = join(bundleDir, spec.bundle);
  const source = join(repositoryRoot, spec.source);
  let bundleMtimeMs = 0;
  try {
    bundleMtimeMs = statSync(bundle).mtimeMs;
  } catch {
    // No bundle: run the source.
  }
  const fromSource = env.DRAY_FROM_SOURCE === "1";
  // The sources are walked only when there is a bundle to compare them with.
  const sourcesMtimeMs =
    fromSource || bundleMtimeMs === 0
      ? 0
      : Math.max(...spec.sources.map((s) => newestMtime(join(repositoryRoot, s))));
  const kind = chooseEntry({ bundleMtimeMs, sourcesMtimeMs, fromSource });
  return { kind, file: kind === "bundle" ? bundle : source };
}

/** Runs a process: its fresh bundle with plain Node, else its TypeScript source through tsx. */
export async function runProcess(name) {
  const entry = resolveEntry(name);
  if (entry.kind === "source") {
    const { register } = await import("tsx/esm/api");
    register();
  }
  await import(pathToFileURL(entry.file).href);
}
