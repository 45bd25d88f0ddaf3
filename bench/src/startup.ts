/**
 * Start-up times of the Dray processes, compiled (the `pnpm build` bundles, built here into a
 * temporary folder and selected with DRAY_BUNDLE_DIR) and from source (tsx, DRAY_FROM_SOURCE=1):
 *
 * - `dray --version` and `dray --help`;
 * - a control plane from spawn to its "dray-control-plane ready" line and to /readyz 200, on
 *   Postgres (a migrated store: a restart) and on embedded PGlite in memory (memory://);
 * - an agent from spawn to its environment's health "healthy" through the API (control plane
 *   on Postgres, heartbeat every 10 s, the default).
 *
 * Prints a Markdown table; it records nothing by itself. Needs BENCH_DATABASE_URL (default
 * postgres://postgres@127.0.0.1:5432/postgres), on which it creates and drops
 * dray_bench_startup_* databases.
 *
 * @example
 * pnpm exec tsx bench/src/startup.ts --repeat 3
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { resolveEntry } from "../../common/bin/bundle-or-source.mjs";
import { buildBundles } from "../../scripts/build-bundles.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const serverUrl = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const ADMIN = "dray_admin_bench_startup_0123456789abcdef";
const repeat = Number(process.argv[process.argv.indexOf("--repeat") + 1]) || 3;

type Mode = "compiled" | "tsx";

function modeEnv(mode: Mode, bundleDir: string): Record<string, string> {
  return mode === "compiled"
    ? { DRAY_BUNDLE_DIR: bundleDir, DRAY_CLI_FROM_SOURCE: "0" }
    : { DRAY_FROM_SOURCE: "1", DRAY_CLI_FROM_SOURCE: "1" };
}

async function freePort(): Promise<number> {
  const s = createServer().listen(0, "127.0.0.1");
  await new Promise((r) => s.once("listening", r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

function dbUrl(name: string): string {
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

function spawnBin(bin: string, args: string[], env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, [join(root, bin), ...args], {
    cwd: root,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

async function timeCli(args: string[], env: Record<string, string>): Promise<number> {
  const t = performance.now();
  const child = spawnBin("sdk/bin/dray.js", args, env);
  child.stdout!.resume();
  child.stderr!.resume();
  await new Promise((r) => child.once("exit", r));
  return performance.now() - t;
}

async function poll(check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  await new Promise((r) => child.once("exit", r));
}

/** Spawn → "ready" line and → /readyz 200, in ms; the process is left running. */
async function startControlPlane(env: Record<string, string>) {
  const http = await freePort();
  const grpc = await freePort();
  const t = performance.now();
  const child = spawnBin("control-plane/bin/dray-control-plane.js", [], {
    DRAY_HTTP_PORT: String(http),
    DRAY_GRPC_PORT: String(grpc),
    DRAY_ADMIN_TOKEN: ADMIN,
    DRAY_LOG_LEVEL: "warn",
    ...env,
  });
  let text = "";
  let readyLine = 0;
  child.stdout!.on("data", (c: Buffer) => {
    text += c.toString();
    if (!readyLine && text.includes("dray-control-plane ready")) readyLine = performance.now() - t;
  });
  child.stderr!.on("data", (c: Buffer) => (text += c.toString()));
  const base = `http://127.0.0.1:${http}`;
  await poll(async () => {
    if (child.exitCode !== null) throw new Error(`control plane exited:\n${text}`);
    return (await fetch(`${base}/readyz`)).status === 200;
  }).catch((e) => {
    throw new Error(`${(e as Error).message}\n${text}`);
  });
  const readyz = performance.now() - t;
  await poll(async () => readyLine > 0);
  return { child, base, grpc: `http://127.0.0.1:${grpc}`, readyLine, readyz };
}

async function api<T>(base: string, token: string, method: string, path: string, body?: unknown): Promise<T> {
  const r = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  if (!r.ok) throw new Error(`${method} ${path} → ${r.status}: ${await r.text()}`);
  return (await r.json()) as T;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function fmt(xs: number[]): string {
  return `${Math.round(median(xs))} (${xs.map((x) => Math.round(x)).join(", ")})`;
}

async function main() {
  const bundleDir = await mkdtemp(join(tmpdir(), "dray-bench-startup-"));
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  const databases: string[] = [];
  const rows: string[] = [];
  try {
    const b = performance.now();
    await buildBundles({ outDir: bundleDir });
    rows.push(`| \`pnpm build\` (all three bundles) | ${Math.round(performance.now() - b)} | |`);
    for (const name of ["dray-control-plane", "dray-agent"]) {
      const entry = resolveEntry(name, { DRAY_BUNDLE_DIR: bundleDir });
      if (entry.kind !== "bundle")
        throw new Error(`${name}: the fresh bundle is not selected (${entry.file})`);
    }
    const store = `dray_bench_startup_${process.pid}`;
    const agentDb = `dray_bench_startup_${process.pid}_agent`;
    for (const name of [store, agentDb]) {
      await admin.unsafe(`create database "${name}"`);
      databases.push(name);
    }
    // A first start migrates the store; the measured starts are restarts.
    const first = await startControlPlane({
      DRAY_DATABASE_URL: dbUrl(store),
      ...modeEnv("compiled", bundleDir),
    });
    rows.push(
      `| control plane, Postgres, first start (migrations) | ${Math.round(first.readyz)} | compiled |`,
    );
    await stop(first.child);

    const results: Record<string, Record<Mode, number[]>> = {};
    const add = (what: string, mode: Mode, ms: number) => {
      results[what] ??= { compiled: [], tsx: [] };
      results[what][mode].push(ms);
    };
    for (let i = 0; i < repeat; i++) {
      for (const mode of ["compiled", "tsx"] as const) {
        const env = modeEnv(mode, bundleDir);
        add("`dray --version`", mode, await timeCli(["--version"], env));
        add("`dray --help`", mode, await timeCli(["--help"], env));
        for (const [label, storeEnv] of [
          ["Postgres (migrated)", { DRAY_DATABASE_URL: dbUrl(store) }],
          ["PGlite memory://", { DRAY_DATA_DIR: "memory://" }],
        ] as const) {
          const cp = await startControlPlane({ ...storeEnv, ...env });
          add(`control plane, ${label}: spawn → "ready" line`, mode, cp.readyLine);
          add(`control plane, ${label}: spawn → /readyz 200`, mode, cp.readyz);
          if (label.startsWith("Postgres")) {
            const org = await api<{ id: string }>(cp.base, ADMIN, "POST", "/api/v1/organisations", {
              name: `bench-${mode}-${i}`,
            });
            const token = await api<{ token: string }>(cp.base, ADMIN, "POST", "/api/v1/tokens", {
              name: "bench",
              role: "admin",
              organisationId: org.id,
            });
            const created = await api<{ environment: { id: string }; enrollmentToken: string }>(
              cp.base,
              token.token,
              "POST",
              "/api/v1/environments",
              {
                name: `bench-${mode}-${i}`,
                platform: "postgres",
                application: "bench",
              },
            );
            const stateDir = await mkdtemp(join(tmpdir(), "dray-bench-agent-"));
            const t = performance.now();
            const agent = spawnBin("agent/bin/dray-agent.js", [], {
              DRAY_CONTROL_PLANE_URL: cp.grpc,
              DRAY_AGENT_DATABASE_URL: dbUrl(agentDb),
              DRAY_AGENT_STATE_DIR: stateDir,
              DRAY_AGENT_NAME: `bench-${mode}-${i}`,
              DRAY_ENROLLMENT_TOKEN: created.enrollmentToken,
              DRAY_LOG_LEVEL: "warn",
              ...env,
            });
            let out = "";
            agent.stderr!.on("data", (c: Buffer) => (out += c.toString()));
            agent.stdout!.resume();
            await poll(async () => {
              const e = await api<{ health: string }>(
                cp.base,
                token.token,
                "GET",
                `/api/v1/environments/${created.environment.id}`,
              );
              return e.health === "healthy";
            }).catch((e) => {
              throw new Error(`${(e as Error).message}\n${out}`);
            });
            add("agent: spawn → environment healthy (heartbeat 10 s)", mode, performance.now() - t);
            await stop(agent);
            await rm(stateDir, { recursive: true, force: true });
          }
          await stop(cp.child);
        }
      }
    }
    for (const [what, r] of Object.entries(results)) {
      rows.push(`| ${what} | ${fmt(r.compiled)} | ${fmt(r.tsx)} |`);
    }
    process.stdout.write(
      `| what | compiled: median ms (each run) | tsx: median ms (each run) |\n| --- | --- | --- |\n${rows.join("\n")}\n`,
    );
  } finally {
    for (const name of databases) await admin.unsafe(`drop database if exists "${name}" with (force)`);
    await admin.end();
    await rm(bundleDir, { recursive: true, force: true });
  }
}

await main();
