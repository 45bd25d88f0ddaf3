/**
 * Issue 15, item 1: the bins of the control plane and the agent run the compiled bundle only
 * when it is newer than every source it is built from, and the TypeScript source otherwise
 * (common/bin/bundle-or-source.mjs). The bundles here are stand-ins written into a temporary
 * DRAY_BUNDLE_DIR, so that the rule is tested without a build and the repository's dist/ is
 * left alone.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  chooseEntry,
  newestMtime,
  PROCESSES,
  repositoryRoot,
  resolveEntry,
} from "../common/bin/bundle-or-source.mjs";

const dir = mkdtempSync(join(tmpdir(), "dray-bins-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HOUR = 3_600_000;
const MARKER = "stand-in bundle ran";

/** Writes a stand-in bundle for `name` under `bundleDir`, dated `mtimeMs`. */
function standInBundle(bundleDir: string, name: keyof typeof PROCESSES, mtimeMs: number): string {
  const file = join(bundleDir, PROCESSES[name].bundle);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `process.stdout.write(${JSON.stringify(`${MARKER}: ${name}\n`)});\n`);
  utimesSync(file, mtimeMs / 1000, mtimeMs / 1000);
  return file;
}

/** Runs a bin to its end with a bare environment plus `env`; returns its exit code and output. */
function runBin(bin: string, env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [join(repositoryRoot, bin)], {
    cwd: repositoryRoot,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (c: Buffer) => (output += c.toString()));
  child.stderr.on("data", (c: Buffer) => (output += c.toString()));
  return new Promise((resolve) => child.once("exit", (code) => resolve({ code, output })));
}

describe("the freshness rule", () => {
  it("takes the bundle only when it exists, is not older than the sources and the source is not forced", () => {
    expect(chooseEntry({ bundleMtimeMs: 2000, sourcesMtimeMs: 1000, fromSource: false })).toBe("bundle");
    expect(chooseEntry({ bundleMtimeMs: 2000, sourcesMtimeMs: 2000, fromSource: false })).toBe("bundle");
    expect(chooseEntry({ bundleMtimeMs: 2000, sourcesMtimeMs: 2001, fromSource: false })).toBe("source");
    expect(chooseEntry({ bundleMtimeMs: 0, sourcesMtimeMs: 0, fromSource: false })).toBe("source");
    expect(chooseEntry({ bundleMtimeMs: 2000, sourcesMtimeMs: 1000, fromSource: true })).toBe("source");
  });

  it("dates a folder by its newest file or subfolder, and sees a deleted file through its folder", () => {
    const tree = join(dir, "tree");
    mkdirSync(join(tree, "a", "b"), { recursive: true });
    const at = (path: string, s: number) => utimesSync(path, s, s);
    writeFileSync(join(tree, "a", "b", "x.ts"), "x");
    writeFileSync(join(tree, "y.ts"), "y");
    at(join(tree, "a", "b", "x.ts"), 5000);
    at(join(tree, "y.ts"), 1000);
    for (const d of [join(tree, "a", "b"), join(tree, "a"), tree]) at(d, 100);
    expect(newestMtime(tree)).toBe(5_000_000);
    expect(newestMtime(join(tree, "y.ts"))).toBe(1_000_000);
    expect(newestMtime(join(tree, "missing"))).toBe(0);
    rmSync(join(tree, "a", "b", "x.ts"));
    // The deletion just now is newer than anything left.
    expect(newestMtime(tree)).toBeGreaterThan(Date.now() - HOUR);
  });

  it("selects a bundle newer than the working tree's sources, and never one older than them", () => {
    const bundleDir = join(dir, "resolve");
    for (const name of ["dray-control-plane", "dray-agent"] as const) {
      const source = join(repositoryRoot, PROCESSES[name].source);
      expect(resolveEntry(name, { DRAY_BUNDLE_DIR: bundleDir })).toEqual({ kind: "source", file: source });
      const bundle = standInBundle(bundleDir, name, Date.now() + HOUR);
      expect(resolveEntry(name, { DRAY_BUNDLE_DIR: bundleDir })).toEqual({ kind: "bundle", file: bundle });
      expect(resolveEntry(name, { DRAY_BUNDLE_DIR: bundleDir, DRAY_FROM_SOURCE: "1" }).kind).toBe("source");
      // Older than the newest source (each source tree has files edited after 2001).
      standInBundle(bundleDir, name, Date.UTC(2001, 0, 1));
      expect(resolveEntry(name, { DRAY_BUNDLE_DIR: bundleDir })).toEqual({ kind: "source", file: source });
    }
  });
});

describe("the bins", () => {
  for (const [name, bin] of [
    ["dray-control-plane", "control-plane/bin/dray-control-plane.js"],
    ["dray-agent", "agent/bin/dray-agent.js"],
  ] as const) {
    it(`${bin} runs a fresh bundle, and its TypeScript source when the bundle is stale`, async () => {
      const bundleDir = join(dir, `bin-${name}`);
      // An invalid setting: the real process (from source) stops at its configuration with exit 2.
      const env = { DRAY_BUNDLE_DIR: bundleDir, DRAY_DATABASE_URL: "memory://", DRAY_LOG_LEVEL: "nonsense" };

      standInBundle(bundleDir, name, Date.now() + HOUR);
      const fresh = await runBin(bin, env);
      expect(fresh.output).toBe(`${MARKER}: ${name}\n`);
      expect(fresh.code).toBe(0);

      standInBundle(bundleDir, name, Date.UTC(2001, 0, 1));
      const stale = await runBin(bin, env);
      expect(stale.output).not.toContain(MARKER);
      expect(stale.output).toContain(`${name}: `);
      expect(stale.code).toBe(2);
    }, 60_000);
  }
});
