/**
 * The `dray` CLI against a real control plane and agents, run as users run it (the real bin
 * in a child process, off a terminal): `run --detach` returns at once, and its pipeline token
 * resolves in `status` and `history`; `watch` attaches to a running execution, and Ctrl-C
 * detaches with the way back; `cancel` by pipeline name refuses without `--yes` off a
 * terminal and with it cancels (the status is read back from the API), while a watcher
 * exits 3; `run` waits by default and exits with the outcome; a clean into a protected
 * environment and a pipeline delete need `--yes`.
 */
import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { eventually } from "./support/api-client.js";
import {
  type DrayStack,
  type StackEnvironment,
  startDrayStack,
  waitForExecution,
} from "./support/dray-stack.js";
import { createPipeline, executionOf, waitForProgress } from "./support/executions.js";

const BIN = new URL("../sdk/bin/dray.js", import.meta.url).pathname;

const SCHEMA = `
  create table events (id bigint primary key, kind text not null, payload text);
  create table notes (id bigint primary key, body text not null);
`;
const DATA = `
  insert into events select g, 'click', repeat(md5(g::text), 2) from generate_series(1, 30000) g;
  insert into notes select g, 'note ' || g from generate_series(1, 100) g;
  analyze;
`;
/** In the target: writing event 15000 (the third batch of 5,000) sleeps, so the run stays in progress. */
const SLOW_EVENT = `
  create function slow_event() returns trigger language plpgsql as $$
  begin
    if new.id = 15000 then perform pg_sleep(60); end if;
    return new;
  end $$;
  create trigger slow_event before insert on events for each row execute function slow_event();
  alter table events enable always trigger slow_event;
`;

let stack: DrayStack;
let source: StackEnvironment;
let target: StackEnvironment;
let cliEnv: Record<string, string>;
const children: ChildProcess[] = [];

interface Ran {
  code: number | null;
  out: string;
  err: string;
}

/** Runs `dray ...args` to its end, off a terminal. */
function dray(args: string[]): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: cliEnv, timeout: 90_000 }, (error, out, err) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, out, err });
    });
  });
}

/** Starts `dray ...args` in the background; `seen(text)` waits until its stdout shows `text`. */
function drayInBackground(args: string[]) {
  const child = spawn(process.execPath, [BIN, ...args], { env: cliEnv, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let out = "";
  let err = "";
  child.stdout.on("data", (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    err += chunk.toString();
  });
  const exited = new Promise<Ran>((resolve) => child.once("exit", (code) => resolve({ code, out, err })));
  return {
    child,
    exited,
    seen: (text: string) => eventually(async () => (out.includes(text) ? true : undefined), 60_000, 100),
  };
}

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"));
  [source, target] = await Promise.all([
    stack.addEnvironment("cli-src", `${SCHEMA}${DATA}`),
    stack.addEnvironment("cli-dst", `${SCHEMA}${SLOW_EVENT}`),
  ]);
  cliEnv = {
    PATH: process.env.PATH ?? "",
    HOME: "/nonexistent-home",
    DRAY_URL: stack.cp.httpUrl,
    DRAY_TOKEN: stack.apiToken,
    DRAY_CONFIG_DIR: "/nonexistent-dray",
    NO_COLOR: "1",
  };
  await createPipeline(stack.api, {
    name: "slow-copy",
    sourceEnvironmentId: source.id,
    targetEnvironmentId: target.id,
    writeStrategy: "insert",
    entities: ["public.events"],
    batchSize: 5000,
  });
  await createPipeline(stack.api, {
    name: "quick-copy",
    sourceEnvironmentId: source.id,
    targetEnvironmentId: target.id,
    writeStrategy: "merge",
    entities: ["public.notes"],
  });
}, 120_000);

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  await stack?.close();
});

describe("dray run --detach, then the names that users see", () => {
  let id: string;
  let token: string;

  it("queues the run and returns at once with its token", async () => {
    const ran = await dray(["run", "slow-copy", "--detach"]);
    expect(ran.err).toBe("");
    expect(ran.code).toBe(0);
    const queued = ran.out.match(
      /^queued (\S+) \((pt-[0-9a-f-]+)\); `dray watch (pt-[0-9a-f-]+)` to follow it/,
    );
    expect(queued).not.toBeNull();
    [, id, token] = queued as unknown as [string, string, string];
    expect(queued?.[3]).toBe(token);
    const view = await waitForProgress(stack.api, id, 5000);
    expect(view.status).toBe("in_progress");
  });

  it("resolves the execution by token and by pipeline name", async () => {
    for (const ref of [token, "slow-copy", id]) {
      const status = await dray(["status", ref, "--json"]);
      expect(status.code, `${ref}: ${status.err}`).toBe(0);
      const entries = JSON.parse(status.out) as { pipelineToken: string }[];
      expect(entries.length).toBeGreaterThan(0);
      expect(new Set(entries.map((e) => e.pipelineToken))).toEqual(new Set([token]));
    }
    const history = await dray(["history", token, "--json"]);
    expect(history.code).toBe(0);
    expect((JSON.parse(history.out) as { executions: { id: string }[] }).executions.map((e) => e.id)).toEqual(
      [id],
    );
    const unknown = await dray(["status", "pt-00000000-0000-4000-8000-000000000000"]);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/^dray: no execution with token pt-0+-0+-4000-8000-0+ — see `dray history/);
  });

  it("watch attaches to the running execution; Ctrl-C detaches with the way back", async () => {
    const watcher = drayInBackground(["watch", token]);
    await watcher.seen(`watching slow-copy (${token}), in_progress; Ctrl-C detaches`);
    watcher.child.kill("SIGINT");
    const ended = await watcher.exited;
    expect(ended.code).toBe(130);
    expect(ended.err).toContain(
      `detached: slow-copy (${token}) is still running; \`dray watch ${token}\` to return, \`dray cancel ${token}\` to stop`,
    );
    expect((await executionOf(stack.api, id)).status).toBe("in_progress");
  });

  it("cancel by pipeline name needs --yes off a terminal, and says what stays", async () => {
    const refused = await dray(["cancel", "slow-copy"]);
    expect(refused.code).toBe(2);
    expect(refused.err.trim().split("\n")).toHaveLength(1);
    expect(refused.err).toContain(`cancelling slow-copy (${token}, in_progress`);
    expect(refused.err).toContain("the records already committed stay in the target");
    expect(refused.err).toContain("run `dray cancel slow-copy --yes` to go ahead");
    expect((await executionOf(stack.api, id)).status).toBe("in_progress");
  });

  it("cancel --yes cancels; a watcher attached by name exits 3", async () => {
    const watcher = drayInBackground(["watch", "slow-copy"]);
    await watcher.seen("watching slow-copy");
    const cancelled = await dray(["cancel", "slow-copy", "--yes", "--reason", "from the CLI test"]);
    expect(cancelled.code, cancelled.err).toBe(0);
    const view = await waitForExecution(stack.api, id, 30_000);
    expect(view.status).toBe("cancelled");
    const ended = await watcher.exited;
    expect(ended.code).toBe(3);
    expect(ended.out).toContain(`cancelled  slow-copy (${token})`);
    // Nothing left to cancel: a clear refusal.
    const again = await dray(["cancel", token, "--yes"]);
    expect(again.code).toBe(1);
    expect(again.err).toBe(`dray: slow-copy (${token}) already cancelled: nothing to cancel\n`);
  });
});

describe("dray run waits by default", () => {
  it("follows the run with plain lines off a terminal and exits 0 when it completes", async () => {
    const ran = await dray(["run", "quick-copy"]);
    expect(ran.code, ran.err).toBe(0);
    expect(ran.out).toMatch(/^running quick-copy \(pt-[0-9a-f-]+\); Ctrl-C detaches\n/);
    expect(ran.out).toContain("public.notes: 100/100 records");
    expect(ran.out).toMatch(/completed {2}quick-copy \(pt-[0-9a-f-]+\)\n {2}100\/100 records/);
    expect(ran.out).not.toContain("\u001b[");
    expect(await target.db.sql`select count(*)::int as n from notes`).toEqual([{ n: 100 }]);
  });

  it("--json prints the final execution; with --watch it streams NDJSON events first", async () => {
    const final = await dray(["run", "quick-copy", "--json"]);
    expect(final.code).toBe(0);
    expect(JSON.parse(final.out)).toMatchObject({ pipelineName: "quick-copy", status: "completed" });

    const streamed = await dray(["run", "quick-copy", "--json", "--watch"]);
    expect(streamed.code).toBe(0);
    const lines = streamed.out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string; data: { status?: string } });
    expect(lines.length).toBeGreaterThan(2);
    expect(lines.some((l) => l.type === "execution.progress")).toBe(true);
    expect(lines.at(-1)).toMatchObject({ type: "execution", data: { status: "completed" } });
  });
});

/** Whether tmux is installed (the terminal tests need it). */
const hasTmux = spawnSync("sh", ["-c", "command -v tmux"]).status === 0;

describe.skipIf(!hasTmux)("dray run on a terminal (a tmux pane)", () => {
  const socket = `dray-cli-test-${process.pid}`;
  const tmux = (...args: string[]) => spawnSync("tmux", ["-L", socket, ...args], { encoding: "utf8" });
  afterAll(() => {
    tmux("kill-server");
  });

  for (const columns of [50, 80]) {
    it(`draws bars that fit ${columns} columns and end on the final counts`, async () => {
      const vars = Object.entries({ ...cliEnv, NO_COLOR: "" })
        .map(([k, v]) => `${k}='${v}'`)
        .join(" ");
      const session = `w${columns}`;
      const started = tmux(
        "new-session",
        "-d",
        "-s",
        session,
        "-x",
        String(columns),
        "-y",
        "24",
        `env ${vars} TERM=xterm-256color ${process.execPath} ${BIN} run quick-copy; echo EXIT=$?; sleep 600`,
      );
      expect(started.status, started.stderr).toBe(0);
      const screen = await eventually(
        async () => {
          const shown = tmux("capture-pane", "-p", "-t", session).stdout;
          return shown.includes("EXIT=") ? shown : undefined;
        },
        60_000,
        200,
      );
      const lines = screen.split("\n");
      expect(lines).toContain("EXIT=0");
      // The frame: one line per entity, then the rate; none wraps.
      const frame = lines.filter((l) => /^(done|copying|waiting) /.test(l) || l.includes("records/s"));
      expect(frame, screen).toHaveLength(2);
      for (const line of frame) expect(line.length, screen).toBeLessThan(columns);
      expect(frame[0], screen).toMatch(/^done {4}public\.notes +█+ +100\/100 100%$/);
      expect(screen).toMatch(/completed {2}quick-copy/);
      tmux("kill-session", "-t", session);
    });
  }
});

describe("confirmations off a terminal", () => {
  it("a clean into a protected environment is not started without --yes", async () => {
    expect((await stack.api.patch(`/api/v1/environments/${target.id}`, { protected: true })).status).toBe(
      200,
    );
    const pipelineId = await createPipeline(stack.api, {
      name: "clean-notes",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "clean",
      entities: ["public.notes"],
    });
    const refused = await dray(["run", "clean-notes"]);
    expect(refused.code).toBe(2);
    expect(refused.err).toContain("clean-notes cleans a protected environment");
    expect(refused.err).toContain("run `dray run clean-notes --yes` to go ahead");
    const history = await stack.api.get(`/api/v1/pipelines/${pipelineId}/executions`);
    expect(history.body.executions).toEqual([]);

    const deleting = await dray(["pipeline", "delete", "clean-notes"]);
    expect(deleting.code).toBe(2);
    expect(deleting.err).toContain("run `dray pipeline delete clean-notes --yes` to go ahead");
    expect((await stack.api.get(`/api/v1/pipelines/${pipelineId}`)).status).toBe(200);
    const deleted = await dray(["pipeline", "delete", "clean-notes", "--yes"]);
    expect(deleted.code, deleted.err).toBe(0);
    expect((await stack.api.get(`/api/v1/pipelines/${pipelineId}`)).status).toBe(404);

    const envDelete = await dray(["env", "delete", "cli-dst"]);
    expect(envDelete.code).toBe(2);
    expect(envDelete.err).toContain("run `dray env delete cli-dst --yes` to go ahead");
    expect((await stack.api.get(`/api/v1/environments/${target.id}`)).status).toBe(200);
  });
});
