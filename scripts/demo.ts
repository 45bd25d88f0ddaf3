/**
 * The zero-service demo: the control plane on PGlite with the in-process bus,
 * two demo environments whose databases are embedded too (PGlite served over
 * the Postgres protocol, or databases on DRAY_DEMO_DATABASE_URL's server), two
 * real dray-agent processes, a seeded CRM dataset, and a pipeline run through
 * the `dray` CLI with live progress. State lives in ./.dray; a second start
 * reuses it and does not seed twice.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { createPinoLogger } from "@dray/common";
import { loadConfig, startControlPlane } from "@dray/control-plane";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

const root = resolve(import.meta.dirname, "..");
const dataDir = join(root, ".dray");
const demoDir = join(dataDir, "demo");
const stateFile = join(demoDir, "state.json");

interface DemoState {
  adminToken: string;
  organisationId?: string;
  token?: string;
  environments: Partial<Record<"source" | "target", { id: string; enrollmentToken?: string }>>;
  pipelineId?: string;
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

/** Tens of thousands of CRM rows with references, seeded once into the source. */
const SEED = `
  insert into accounts select g, 'Account ' || g, (array['retail','energy','health','software'])[g % 4 + 1],
    case when g > 50 then g % 50 + 1 end, timestamptz '2026-01-01' + g * interval '1 minute'
    from generate_series(1, 2000) g;
  insert into contacts select g, g % 2000 + 1, 'person' || g || '@example.com', 'First' || g, 'Last' || g, g % 7 <> 0
    from generate_series(1, 20000) g;
  insert into opportunities select g, g % 2000 + 1, case when g % 5 = 0 then null else g % 20000 + 1 end,
    (g % 1000) * 12.5, (array['lead','qualified','won','lost'])[g % 4 + 1] from generate_series(1, 15000) g;
  insert into activities select g, g % 15000 + 1, (array['call','email','meeting'])[g % 3 + 1],
    case when g % 3 = 0 then null else 'note ' || g end, timestamptz '2026-02-01' + g * interval '1 second'
    from generate_series(1, 30000) g;
`;

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
    console.log(`seeding the ${name} database (67,000 CRM rows) …`);
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
  name: string,
  controlPlane: string,
  databaseUrl: string,
  enrollmentToken?: string,
): ChildProcess {
  const external = Boolean(process.env.DRAY_DEMO_DATABASE_URL);
  return spawn(process.execPath, [join(root, "agent", "bin", "dray-agent.js")], {
    cwd: root,
    stdio: ["ignore", "ignore", "inherit"],
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
      DRAY_LOG_LEVEL: process.env.DRAY_LOG_LEVEL ?? "warn",
      ...(enrollmentToken ? { DRAY_ENROLLMENT_TOKEN: enrollmentToken } : {}),
    },
  });
}

async function main() {
  await mkdir(demoDir, { recursive: true });
  const state: DemoState = existsSync(stateFile)
    ? JSON.parse(await readFile(stateFile, "utf8"))
    : { adminToken: `dray_admin_${randomBytes(24).toString("base64url")}`, environments: {} };
  const save = () => writeFile(stateFile, JSON.stringify(state, null, 2), { mode: 0o600 });
  await save();

  // 1. The two environments' databases.
  const databases = {
    source: await demoDatabase("source", 54329, true),
    target: await demoDatabase("target", 54330, false),
  };

  // 2. The control plane, embedded: PGlite store and in-process bus.
  const logger = createPinoLogger({
    name: "dray-control-plane",
    level: process.env.DRAY_LOG_LEVEL ?? "warn",
  });
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
  const base = `http://127.0.0.1:${cp.httpPort}`;
  const gateway = `http://127.0.0.1:${cp.grpcPort}`;

  // 3. Organisation, token and environments, once.
  if (!state.organisationId) {
    const org = await api(base, state.adminToken, "POST", "/api/v1/organisations", { name: "Demo" });
    const token = await api(base, state.adminToken, "POST", "/api/v1/tokens", {
      name: "demo",
      role: "admin",
      organisationId: org.id,
    });
    state.organisationId = org.id;
    state.token = token.token;
    await save();
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

  // 4. Two real agent processes, one next to each database.
  const agents = (["source", "target"] as const).map((name) =>
    startAgent(name, gateway, databases[name].url, state.environments[name]?.enrollmentToken),
  );
  for (const name of ["source", "target"] as const) {
    const id = state.environments[name]!.id;
    const started = Date.now();
    for (;;) {
      const env = await api(base, token, "GET", `/api/v1/environments/${id}`);
      if (env.health === "healthy" && env.agent.connected) break;
      if (Date.now() - started > 60_000)
        throw new Error(`environment demo-${name} did not turn healthy: ${env.healthReason}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    await api(base, token, "POST", `/api/v1/environments/${id}/refresh`);
    delete state.environments[name]!.enrollmentToken;
  }
  await save();

  // 5. A pipeline over the CRM entities, once, then a run through the CLI with its progress bars.
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
  console.log("\n$ dray run demo-crm --watch\n");
  const cli = spawn(process.execPath, [join(root, "sdk", "bin", "dray.js"), "run", "demo-crm", "--watch"], {
    cwd: root,
    stdio: "inherit",
    env: cliEnv,
  });
  const cliExit = await new Promise<number | null>((r) => cli.once("exit", r));

  const line = "─".repeat(76);
  console.log(
    `\n${line}\n Dray demo is running${cliExit === 0 ? "" : ` (the run exited with code ${cliExit})`}\n${line}`,
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
  console.log(` state          ${dataDir} (delete it to start over)`);
  console.log(`${line}\n Ctrl-C stops everything.\n`);

  await new Promise<void>((done) => {
    process.once("SIGINT", () => done());
    process.once("SIGTERM", () => done());
  });
  console.log("\nstopping …");
  for (const agent of agents) agent.kill("SIGTERM");
  await Promise.all(
    agents.map((a) => new Promise((r) => (a.exitCode === null ? a.once("exit", r) : r(null)))),
  );
  await cp.stop();
  await databases.source.close();
  await databases.target.close();
  console.log("stopped.");
}

main().catch((error) => {
  console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
