/**
 * The zero-service demo: the control plane on PGlite with the in-process bus,
 * two demo environments whose databases are embedded too (PGlite served over
 * the Postgres protocol, or databases on DRAY_DEMO_DATABASE_URL's server), two
 * real dray-agent processes, a seeded CRM dataset, and a pipeline run through
 * the `dray` CLI with live progress. State lives in ./.dray (or
 * DRAY_DEMO_DIR); a second start reuses it and neither seeds nor copies again.
 *
 * Signals: every child gets exactly one signal, from this process. The agents
 * run in process groups of their own, so a terminal's Ctrl-C (SIGINT to the
 * foreground group) reaches them only as the one SIGTERM sent here; repeated
 * signals while stopping are ignored. "stopped." is printed last.
 *
 * Logs: the control plane's and the agents' log lines (JSON, DRAY_LOG_LEVEL, default info) go
 * to <state>/demo/dray.log, never to the screen; the demo prints where.
 *
 * Settings for tests: DRAY_DEMO_DIR (state directory), DRAY_DEMO_SCALE (seed
 * size, 1 = 67,000 rows).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, openSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { createPinoLogger } from "@dray/common";
import { loadConfig, startControlPlane } from "@dray/control-plane";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

const root = resolve(import.meta.dirname, "..");
const dataDir = process.env.DRAY_DEMO_DIR ? resolve(process.env.DRAY_DEMO_DIR) : join(root, ".dray");
/** The demo organisation's monthly record limit: generous, so that restarts and reruns never run out. */
const DEMO_MONTHLY_RECORD_LIMIT = 100_000_000;
const demoDir = join(dataDir, "demo");
const stateFile = join(demoDir, "state.json");
/** Where the control plane and the agents log (JSON lines), instead of the demo's screen. */
const logFile = join(demoDir, "dray.log");
/** Log level of the control plane and the agents in {@link logFile}. */
const logLevel = process.env.DRAY_LOG_LEVEL ?? "info";

interface DemoState {
  adminToken: string;
  organisationId?: string;
  token?: string;
  environments: Partial<Record<"source" | "target", { id: string; enrollmentToken?: string }>>;
  pipelineId?: string;
  /** Set once the first start's copy completed: later starts do not copy again. */
  copiedAt?: string;
}

async function freePort(preferred: number): Promise<number> {
  for (const port of [preferred, 0]) {
    const found = await new Promise<number | undefined>((done) => {
      const s = createServer();
      s.once("error", () => done(undefined));
      s.listen(port, "127.0.0.1", () => {
        const a = s.address();
        s.close(() => done(typeof a === "object" && a ? a.port : undefined));
      });
    });
    if (found) return found;
  }
  throw new Error("no free port");
}

async function api(base: string, token: string, method: string, path: string, body?: unknown) {
  const r = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const json = (await r.json().catch(() => ({}))) as any;
  if (!r.ok) throw new Error(`${method} ${path} → ${r.status}: ${json?.error?.message ?? "error"}`);
  return json;
}

/** The CRM schema of both demo environments. */
const SCHEMA = `
  create table if not exists accounts (id bigint primary key, name text not null, industry text,
    parent_id bigint references accounts(id), created_at timestamptz not null default now());
  create table if not exists contacts (id bigint primary key, account_id bigint not null references accounts(id),
    email text not null, first_name text, last_name text, is_active boolean not null default true);
  create table if not exists opportunities (id bigint primary key, account_id bigint not null references accounts(id),
    contact_id bigint references contacts(id), amount numeric(12,2) not null, stage text not null);
  create table if not exists activities (id bigint primary key, opportunity_id bigint not null references opportunities(id),
    kind text not null, note text, happened_at timestamptz not null);
`;

/** Rows per table of the CRM seed at a scale (1 = 67,000 rows in all). */
function seedCounts(scale: number) {
  const n = (rows: number, least: number) => Math.max(least, Math.round(rows * scale));
  const accounts = n(2000, 60);
  const contacts = n(20000, 10);
  const opportunities = n(15000, 10);
  const activities = n(30000, 10);
  return {
    accounts,
    contacts,
    opportunities,
    activities,
    total: accounts + contacts + opportunities + activities,
  };
}

/** CRM rows with references, seeded once into the source (DRAY_DEMO_SCALE scales it, for tests). */
function seedSql(c: ReturnType<typeof seedCounts>): string {
  return `
  insert into accounts select g, 'Account ' || g, (array['retail','energy','health','software'])[g % 4 + 1],
    case when g > 50 then g % 50 + 1 end, timestamptz '2026-01-01' + g * interval '1 minute'
    from generate_series(1, ${c.accounts}) g;
  insert into contacts select g, g % ${c.accounts} + 1, 'person' || g || '@example.com', 'First' || g, 'Last' || g, g % 7 <> 0
    from generate_series(1, ${c.contacts}) g;
  insert into opportunities select g, g % ${c.accounts} + 1, case when g % 5 = 0 then null else g % ${c.contacts} + 1 end,
    (g % 1000) * 12.5, (array['lead','qualified','won','lost'])[g % 4 + 1] from generate_series(1, ${c.opportunities}) g;
  insert into activities select g, g % ${c.opportunities} + 1, (array['call','email','meeting'])[g % 3 + 1],
    case when g % 3 = 0 then null else 'note ' || g end, timestamptz '2026-02-01' + g * interval '1 second'
    from generate_series(1, ${c.activities}) g;
`;
}

const scale = Number(process.env.DRAY_DEMO_SCALE ?? "1");
const counts = seedCounts(Number.isFinite(scale) && scale > 0 ? scale : 1);
const SEED = seedSql(counts);

interface DemoDatabase {
  url: string;
  close(): Promise<void>;
}

/** A demo environment's database: PGlite served over the Postgres protocol, or DRAY_DEMO_DATABASE_URL. */
async function demoDatabase(name: string, preferredPort: number, seed: boolean): Promise<DemoDatabase> {
  const external = process.env.DRAY_DEMO_DATABASE_URL;
  if (external) {
    // One server, two databases: <name> is created next to the given one.
    const { default: postgres } = await import("postgres");
    const admin = postgres(external, { max: 1, onnotice: () => {} });
    const dbName = `dray_demo_${name}`;
    const [exists] = await admin`select 1 from pg_database where datname = ${dbName}`;
    if (!exists) await admin.unsafe(`create database ${dbName}`);
    await admin.end();
    const url = new URL(external);
    url.pathname = `/${dbName}`;
    const sql = postgres(url.toString(), { max: 1, onnotice: () => {} });
    await sql.unsafe(SCHEMA);
    const [row] = await sql`select count(*)::int as n from accounts`;
    if (seed && row?.n === 0) await sql.unsafe(SEED);
    await sql.end();
    return { url: url.toString(), close: async () => {} };
  }
  const pglite = new PGlite(join(demoDir, `${name}-db`));
  await pglite.exec(SCHEMA);
  const seeded = await pglite.query<{ n: number }>("select count(*)::int as n from accounts");
  if (seed && seeded.rows[0]?.n === 0) {
    console.log(`seeding the ${name} database (${counts.total.toLocaleString("en")} CRM rows) …`);
    await pglite.exec(SEED);
  }
  const port = await freePort(preferredPort);
  const server = new PGLiteSocketServer({ db: pglite, port, host: "127.0.0.1", maxConnections: 4 });
  await server.start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async close() {
      await server.stop();
      await pglite.close();
    },
  };
}

function startAgent(
  logFd: number,
  name: string,
  controlPlane: string,
  databaseUrl: string,
  enrollmentToken?: string,
): ChildProcess {
  const external = Boolean(process.env.DRAY_DEMO_DATABASE_URL);
  return spawn(process.execPath, [join(root, "agent", "bin", "dray-agent.js")], {
    cwd: root,
    // A process group of its own: a terminal's Ctrl-C does not reach it, only our one SIGTERM does.
    detached: true,
    // Its log lines (and any early error) go to the log file, not the demo's screen.
    stdio: ["ignore", logFd, logFd],
    env: {
      ...process.env,
      DRAY_CONTROL_PLANE_URL: controlPlane,
      DRAY_AGENT_DATABASE_URL: databaseUrl,
      DRAY_AGENT_STATE_DIR: join(demoDir, `agent-${name}`),
      DRAY_AGENT_NAME: `demo-${name}`,
      // PGlite serves one session: the agent keeps to one connection and two tasks at a time.
      DRAY_AGENT_DB_POOL_SIZE: external ? "4" : "1",
      DRAY_AGENT_MAX_TASKS: "2",
      // PGlite's socket server takes no COPY FROM STDIN: load batches with bound arrays.
      DRAY_AGENT_BULK_LOAD: external ? "copy" : "insert",
      // Holding a run's snapshot takes a session of its own, which PGlite cannot give.
      DRAY_AGENT_RUN_SNAPSHOTS: external ? "on" : "off",
      DRAY_LOG_LEVEL: logLevel,
      ...(enrollmentToken ? { DRAY_ENROLLMENT_TOKEN: enrollmentToken } : {}),
    },
  });
}

/** The first stop request (SIGINT, SIGTERM or SIGHUP); later ones are ignored. */
function stopRequests() {
  let requested: NodeJS.Signals | undefined;
  let notify: (signal: NodeJS.Signals) => void = () => {};
  const promise = new Promise<NodeJS.Signals>((done) => {
    notify = done;
  });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      if (requested) return;
      requested = signal;
      notify(signal);
    });
  }
  return {
    promise,
    get requested() {
      return requested;
    },
  };
}

/** Waits for a child's exit (at once when it already exited). */
function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((done) => child.once("exit", () => done()));
}

async function main() {
  const stop = stopRequests();
  const cleanups: (() => Promise<void>)[] = [];
  const shutdown = async () => {
    console.log("\nstopping …");
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((error: unknown) =>
        console.error(`while stopping: ${error instanceof Error ? error.message : String(error)}`),
      );
    }
    console.log("stopped.");
  };

  await mkdir(demoDir, { recursive: true });
  const state: DemoState = existsSync(stateFile)
    ? JSON.parse(await readFile(stateFile, "utf8"))
    : { adminToken: `dray_admin_${randomBytes(24).toString("base64url")}`, environments: {} };
  const save = () => writeFile(stateFile, JSON.stringify(state, null, 2), { mode: 0o600 });
  await save();
  console.log(`logs of the control plane and the agents: ${logFile}`);
  const logFd = openSync(logFile, "a");

  // 1. The two environments' databases.
  const databases = {
    source: await demoDatabase("source", 54329, true),
    target: await demoDatabase("target", 54330, false),
  };
  cleanups.push(async () => {
    await databases.source.close();
    await databases.target.close();
  });
  if (stop.requested) return shutdown();

  // 2. The control plane, embedded: PGlite store and in-process bus.
  const logger = createPinoLogger({ name: "dray-control-plane", level: logLevel, destination: logFile });
  const config = loadConfig(
    {
      DRAY_DATA_DIR: dataDir,
      DRAY_ADMIN_TOKEN: state.adminToken,
      DRAY_HTTP_PORT: String(await freePort(8080)),
      DRAY_GRPC_PORT: String(await freePort(7070)),
      DRAY_HEARTBEAT_INTERVAL_MS: "2000",
    },
    { replicaId: "demo" },
  );
  const cp = await startControlPlane(config, logger);
  cleanups.push(() => cp.stop());
  const base = `http://127.0.0.1:${cp.httpPort}`;
  const gateway = `http://127.0.0.1:${cp.grpcPort}`;
  if (stop.requested) return shutdown();

  // 3. Organisation (with a generous limit), token and environments, once.
  if (!state.organisationId) {
    const org = await api(base, state.adminToken, "POST", "/api/v1/organisations", {
      name: "Demo",
      monthlyRecordLimit: DEMO_MONTHLY_RECORD_LIMIT,
    });
    const token = await api(base, state.adminToken, "POST", "/api/v1/tokens", {
      name: "demo",
      role: "admin",
      organisationId: org.id,
    });
    state.organisationId = org.id;
    state.token = token.token;
    await save();
  } else {
    // Demo state from an older version may have the default limit: raise it.
    const org = await api(base, state.adminToken, "GET", `/api/v1/organisations/${state.organisationId}`);
    if (org.monthlyRecordLimit < DEMO_MONTHLY_RECORD_LIMIT) {
      await api(base, state.adminToken, "PATCH", `/api/v1/organisations/${state.organisationId}`, {
        monthlyRecordLimit: DEMO_MONTHLY_RECORD_LIMIT,
      });
    }
  }
  const token = state.token!;
  for (const name of ["source", "target"] as const) {
    if (state.environments[name]) continue;
    const env = await api(base, token, "POST", "/api/v1/environments", {
      name: `demo-${name}`,
      platform: "postgres",
      application: "crm",
    });
    state.environments[name] = { id: env.environment.id, enrollmentToken: env.enrollmentToken };
    await save();
  }

  // 4. Two real agent processes, one next to each database; each gets one SIGTERM at the stop.
  const agents = (["source", "target"] as const).map((name) =>
    startAgent(logFd, name, gateway, databases[name].url, state.environments[name]?.enrollmentToken),
  );
  const stopAgents = async () => {
    for (const agent of agents)
      if (agent.exitCode === null && agent.signalCode === null) agent.kill("SIGTERM");
    await Promise.all(agents.map(exited));
  };
  cleanups.push(stopAgents);
  // Should this process end without its shutdown (an error), the agents must not outlive it.
  process.once("exit", () => {
    for (const agent of agents)
      if (agent.exitCode === null && agent.signalCode === null) agent.kill("SIGTERM");
  });
  for (const name of ["source", "target"] as const) {
    const id = state.environments[name]!.id;
    const started = Date.now();
    for (;;) {
      if (stop.requested) return shutdown();
      const env = await api(base, token, "GET", `/api/v1/environments/${id}`);
      if (env.health === "healthy" && env.agent.connected) break;
      if (Date.now() - started > 60_000)
        throw new Error(
          `environment demo-${name} did not turn healthy: ${env.healthReason} (see ${logFile})`,
        );
      await new Promise((r) => setTimeout(r, 250));
    }
    await api(base, token, "POST", `/api/v1/environments/${id}/refresh`);
    delete state.environments[name]!.enrollmentToken;
  }
  await save();
  if (stop.requested) return shutdown();

  // 5. A pipeline over the CRM entities, once, and its first run through the CLI with progress bars.
  if (!state.pipelineId) {
    const pipeline = await api(base, token, "POST", "/api/v1/pipelines", {
      name: "demo-crm",
      sourceEnvironmentId: state.environments.source!.id,
      targetEnvironmentId: state.environments.target!.id,
      writeStrategy: "merge",
      entities: ["public.accounts", "public.contacts", "public.opportunities", "public.activities"],
      batchSize: 2000,
    });
    state.pipelineId = pipeline.id;
    await save();
  }
  const cliEnv = { ...process.env, DRAY_URL: base, DRAY_TOKEN: token };
  let cliExit: number | null = 0;
  // A first copy interrupted by a stop resumes by itself: it is followed, not started again.
  const pipeline = await api(base, token, "GET", `/api/v1/pipelines/${state.pipelineId}`);
  const last = pipeline.lastExecution as { status: string; pipelineToken: string; createdAt: string } | null;
  if (!state.copiedAt && last?.status === "completed") {
    state.copiedAt = last.createdAt;
    await save();
  }
  if (!state.copiedAt && pipeline.running) {
    console.log(
      `\nthe first demo copy, interrupted by the last stop, resumes by itself (${last?.pipelineToken}).` +
        `\nFollow it with: pnpm exec dray status ${last?.pipelineToken}   (see below for DRAY_URL and DRAY_TOKEN)`,
    );
  } else if (!state.copiedAt) {
    console.log("\n$ dray run demo-crm --watch\n");
    const cli = spawn(process.execPath, [join(root, "sdk", "bin", "dray.js"), "run", "demo-crm", "--watch"], {
      cwd: root,
      // Its own process group too: the stop reaches it once, from here (it then stops watching).
      detached: true,
      stdio: "inherit",
      env: cliEnv,
    });
    void stop.promise.then(() => {
      if (cli.exitCode === null && cli.signalCode === null) cli.kill("SIGINT");
    });
    cliExit = await new Promise<number | null>((r) => cli.once("exit", r));
    if (cliExit === 0 && !stop.requested) {
      state.copiedAt = new Date().toISOString();
      await save();
    }
  } else {
    console.log(
      `\nreusing ${dataDir}: the demo copy already ran on ${state.copiedAt}, so it is not run again.` +
        "\nRun it again yourself with: pnpm exec dray run demo-crm --watch (see below for DRAY_URL and DRAY_TOKEN)",
    );
  }
  if (stop.requested) return shutdown();

  const line = "─".repeat(76);
  console.log(
    `\n${line}\n Dray demo is running${cliExit === 0 ? "" : ` (the run exited with code ${cliExit})`}\n${line}`,
  );
  const link = await api(base, token, "POST", "/api/v1/sign-in-links");
  console.log(
    ` web UI         ${base}${link.path}   (one-time sign-in link; later: ${base}/sign-in with the token)`,
  );
  console.log(` API            ${base}/api/v1   (OpenAPI: ${base}/api/v1/openapi.json)`);
  console.log(` agent gateway  ${gateway}`);
  console.log(` token          ${token}`);
  console.log(" next, in another terminal:");
  console.log(`   export DRAY_URL=${base} DRAY_TOKEN=${token}`);
  console.log("   pnpm exec dray env list");
  console.log("   pnpm exec dray pipeline plan demo-crm");
  console.log("   pnpm exec dray run demo-crm --watch      # again: every row is an update now");
  console.log("   pnpm exec dray history demo-crm");
  console.log(
    ` record limit   ${DEMO_MONTHLY_RECORD_LIMIT.toLocaleString("en")} records a month. Only the system admin can change it:`,
  );
  console.log(
    `   curl -X PATCH ${base}/api/v1/organisations/${state.organisationId} -H 'content-type: application/json' \\`,
  );
  console.log(
    `     -H "authorization: Bearer $(node -p 'require(${JSON.stringify(stateFile)}).adminToken')" \\`,
  );
  console.log(`     -d '{"monthlyRecordLimit": 200000000}'`);
  console.log(` logs           ${logFile}`);
  console.log(` state          ${dataDir} (delete it to start over)`);
  console.log(`${line}\n Ctrl-C stops everything.\n`);

  await stop.promise;
  await shutdown();
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
