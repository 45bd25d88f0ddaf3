/**
 * The zero-service demo: the control plane on PGlite with the in-process bus,
 * a demo environment database (PGlite served over the Postgres protocol, or
 * DRAY_DEMO_DATABASE_URL), and a real dray-agent process paired with it.
 * State lives in ./.dray; a second start reuses it.
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
  environmentId?: string;
  enrollmentToken?: string;
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

const SEED = `
  create table if not exists accounts (id bigint primary key, name text not null, parent_id bigint references accounts(id));
  create table if not exists contacts (id bigint primary key, account_id bigint not null references accounts(id), email text, created_at timestamptz not null default now());
  insert into accounts select g, 'Account ' || g, case when g > 10 then g % 10 + 1 end from generate_series(1, 200) g on conflict do nothing;
  insert into contacts select g, g % 200 + 1, 'person' || g || '@example.com' from generate_series(1, 2000) g on conflict do nothing;
`;

async function main() {
  await mkdir(demoDir, { recursive: true });
  const state: DemoState = existsSync(stateFile)
    ? JSON.parse(await readFile(stateFile, "utf8"))
    : { adminToken: `dray_admin_${randomBytes(24).toString("base64url")}` };
  const save = () => writeFile(stateFile, JSON.stringify(state, null, 2), { mode: 0o600 });
  await save();

  // 1. The demo environment's database.
  let databaseUrl = process.env.DRAY_DEMO_DATABASE_URL;
  let socketServer: PGLiteSocketServer | undefined;
  let pglite: PGlite | undefined;
  if (!databaseUrl) {
    pglite = new PGlite(join(demoDir, "source-db"));
    await pglite.exec(SEED);
    const port = await freePort(54329);
    socketServer = new PGLiteSocketServer({ db: pglite, port, host: "127.0.0.1", maxConnections: 8 });
    await socketServer.start();
    databaseUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  }

  // 2. The control plane, embedded.
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

  // 3. Organisation, token and environment, once.
  if (!state.organisationId) {
    const org = await api(base, state.adminToken, "POST", "/api/v1/organisations", { name: "Demo" });
    state.organisationId = org.id;
    const token = await api(base, state.adminToken, "POST", "/api/v1/tokens", {
      name: "demo",
      role: "admin",
      organisationId: org.id,
    });
    state.token = token.token;
    const env = await api(base, token.token, "POST", "/api/v1/environments", {
      name: "demo-source",
      platform: "postgres",
      application: "crm",
    });
    state.environmentId = env.environment.id;
    state.enrollmentToken = env.enrollmentToken;
    await save();
  }

  // 4. A real agent process next to the demo database.
  const agent: ChildProcess = spawn(process.execPath, [join(root, "agent", "bin", "dray-agent.js")], {
    cwd: root,
    stdio: ["ignore", "inherit", "inherit"],
    env: {
      ...process.env,
      DRAY_CONTROL_PLANE_URL: `http://127.0.0.1:${cp.grpcPort}`,
      DRAY_AGENT_DATABASE_URL: databaseUrl,
      DRAY_AGENT_STATE_DIR: join(demoDir, "agent-demo-source"),
      DRAY_AGENT_NAME: "demo-agent",
      DRAY_AGENT_DB_POOL_SIZE: "2",
      DRAY_LOG_LEVEL: process.env.DRAY_LOG_LEVEL ?? "warn",
      ...(state.enrollmentToken ? { DRAY_ENROLLMENT_TOKEN: state.enrollmentToken } : {}),
    },
  });

  const started = Date.now();
  let env: any;
  while (Date.now() - started < 30_000) {
    env = await api(base, state.token!, "GET", `/api/v1/environments/${state.environmentId}`);
    if (env.health === "healthy") break;
    await new Promise((r) => setTimeout(r, 250));
  }
  const entities = await api(
    base,
    state.token!,
    "GET",
    `/api/v1/environments/${state.environmentId}/entities`,
  ).catch(() => ({ entities: [] }));
  delete state.enrollmentToken;
  await save();

  const line = "─".repeat(72);
  console.log(`\n${line}\n Dray demo is running\n${line}`);
  console.log(` environment   ${env.name}: ${env.health}${env.healthReason ? ` (${env.healthReason})` : ""}`);
  console.log(
    `               agent ${env.agent?.version ?? "?"}, last heartbeat ${env.lastHeartbeatAt ?? "never"}`,
  );
  console.log(
    `               entities: ${entities.entities.map((e: any) => e.entity).join(", ") || "(none yet)"}`,
  );
  console.log(` API           ${base}/api/v1   (OpenAPI: ${base}/api/v1/openapi.json)`);
  console.log(` agent gateway 127.0.0.1:${cp.grpcPort}`);
  console.log(` token         ${state.token}`);
  console.log(` try           curl -H "Authorization: Bearer ${state.token}" ${base}/api/v1/environments`);
  console.log(` state         ${dataDir} (delete it to start over)`);
  console.log(`${line}\n Ctrl-C stops everything.\n`);

  await new Promise<void>((done) => {
    process.once("SIGINT", () => done());
    process.once("SIGTERM", () => done());
  });
  console.log("\nstopping …");
  agent.kill("SIGTERM");
  await new Promise((r) => agent.once("exit", r));
  await cp.stop();
  await socketServer?.stop();
  await pglite?.close();
  console.log("stopped.");
}

main().catch((error) => {
  console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
