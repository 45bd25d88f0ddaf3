/**
 * Issue 9, first hour, items 3 and 4: the demo launcher (what `npm run demo`
 * runs) in a pseudo-terminal (util-linux `script`). Ctrl-C is typed into the
 * terminal, so its line discipline sends SIGINT to the whole foreground
 * process group, exactly as a user's Ctrl-C does. Each start must stop cleanly
 * (exit code 0, "stopped." last, no agent left), also when Ctrl-C is typed
 * twice, and a second start on the same state must not copy again (the
 * monthly usage stays the same). The launcher is run directly rather than
 * through npm only because npm exits with 130 after any SIGINT it receives,
 * whatever its script's exit code.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..");
// util-linux `script` gives the demo a pseudo-terminal; it is part of every Debian install.
// Without it this suite must fail, not pass silently.
try {
  execFileSync("script", ["--version"], { stdio: "ignore" });
} catch {
  throw new Error("test/demo-ctrl-c.test.ts needs util-linux `script` (apt-get install -y util-linux)");
}

const dir = mkdtempSync(join(tmpdir(), "dray-demo-"));
/** 0.02 × 67,000 CRM rows (60 accounts at least) = 1,360: enough for four levels and several batches, fast on 2 cores. */
const SCALE = "0.02";
const READY = "Ctrl-C stops everything.";

afterAll(() => {
  for (const pid of agentPids()) process.kill(pid, "SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

/** Pids of dray-agent processes whose state lives in this test's demo directory. */
function agentPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (!cmdline.includes("dray-agent")) continue;
      if (readFileSync(`/proc/${entry}/environ`, "utf8").includes(dir)) pids.push(Number(entry));
    } catch {
      // The process ended meanwhile.
    }
  }
  return pids;
}

interface DemoRun {
  child: ChildProcess;
  output(): string;
  waitFor(text: string, timeoutMs: number): Promise<void>;
  exit: Promise<number | null>;
}

/** The demo launcher in a pseudo-terminal, with the demo's state in this test's directory. */
function startDemo(): DemoRun {
  // `script` runs its command through $SHELL; `exec` hands the terminal to the launcher, so a
  // non-interactive dash (CI's /bin/sh) does not also take the SIGINT and exit with 130.
  const child = spawn("script", ["-qfec", "exec node scripts/demo-launcher.mjs", "/dev/null"], {
    cwd: root,
    stdio: ["pipe", "pipe", "pipe"],
    env: {
      ...process.env,
      DRAY_DEMO_DIR: dir,
      DRAY_DEMO_SCALE: SCALE,
      DRAY_LOG_LEVEL: "warn",
      NO_COLOR: "1",
    },
  });
  let text = "";
  const waiters = new Set<() => void>();
  const collect = (chunk: Buffer) => {
    text += chunk.toString("utf8");
    for (const check of waiters) check();
  };
  child.stdout!.on("data", collect);
  child.stderr!.on("data", collect);
  const exit = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  return {
    child,
    output: () => text,
    exit,
    waitFor(wanted, timeoutMs) {
      return new Promise((done, fail) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          fail(new Error(`no "${wanted}" within ${timeoutMs} ms; output:\n${text.slice(-3000)}`));
        }, timeoutMs);
        const check = () => {
          if (!text.includes(wanted)) return;
          clearTimeout(timer);
          waiters.delete(check);
          done();
        };
        waiters.add(check);
        void exit.then(() => {
          if (!text.includes(wanted)) {
            clearTimeout(timer);
            fail(new Error(`exited before "${wanted}"; output:\n${text.slice(-3000)}`));
          }
        });
        check();
      });
    },
  };
}

/** Types Ctrl-C into the terminal (`times` times, 300 ms apart) and asserts a clean stop. */
async function ctrlC(run: DemoRun, times = 1): Promise<void> {
  const typed = Date.now();
  for (let i = 0; i < times; i++) {
    if (i > 0) await new Promise((done) => setTimeout(done, 300));
    run.child.stdin!.write("\x03");
  }
  const code = await Promise.race([
    run.exit,
    new Promise<"timeout">((done) => setTimeout(() => done("timeout"), 45_000)),
  ]);
  const text = run.output();
  console.info(`demo stopped ${Date.now() - typed} ms after Ctrl-C`);
  expect(code, text.slice(-3000)).toBe(0);
  // The terminal echoes each Ctrl-C as "^C".
  const lines = text
    .replaceAll("^C", "")
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "");
  expect(lines.at(-1), text.slice(-3000)).toBe("stopped.");
  expect(text).not.toContain("demo failed");
  expect(text).not.toContain("second signal");
  expect(agentPids()).toEqual([]);
}

/** The month's usage of the demo organisation, through the API the demo printed. */
async function usedRecords(run: DemoRun): Promise<number> {
  const base = /API\s+(http:\/\/127\.0\.0\.1:\d+)\/api\/v1/.exec(run.output())?.[1];
  expect(base, "the demo prints its API URL").toBeDefined();
  const state = JSON.parse(readFileSync(join(dir, "demo", "state.json"), "utf8")) as { token: string };
  const res = await fetch(`${base}/api/v1/usage`, { headers: { authorization: `Bearer ${state.token}` } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { used: number }).used;
}

describe("npm run demo in a terminal", () => {
  let firstUsage = 0;

  it("copies on the first start and stops cleanly on Ctrl-C", async () => {
    const started = Date.now();
    const run = startDemo();
    try {
      await run.waitFor(READY, 150_000);
      console.info(`first start ready after ${Date.now() - started} ms`);
      expect(run.output()).toContain("completed");
      firstUsage = await usedRecords(run);
      expect(firstUsage).toBe(1_360);
      expect(agentPids()).toHaveLength(2);
      await ctrlC(run);
    } finally {
      run.child.kill("SIGKILL");
    }
  }, 240_000);

  it("does not copy again on a second start, and stops cleanly on a double Ctrl-C", async () => {
    expect(firstUsage).toBe(1_360);
    const started = Date.now();
    const run = startDemo();
    try {
      await run.waitFor(READY, 150_000);
      console.info(`second start ready after ${Date.now() - started} ms`);
      expect(run.output()).toContain("the demo copy already ran");
      expect(run.output()).toContain("pnpm exec dray run demo-crm --watch");
      expect(run.output()).not.toContain("$ dray run demo-crm --watch");
      expect(await usedRecords(run)).toBe(firstUsage);
      await ctrlC(run, 2);
    } finally {
      run.child.kill("SIGKILL");
    }
  }, 240_000);
});
