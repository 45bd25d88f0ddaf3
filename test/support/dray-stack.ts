import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ApiClient, apiClient, eventually } from "./api-client.js";
import { createTestDatabase, type TestDatabase } from "./databases.js";
import { type DrayProcess, freePort, startAgentProcess, startControlPlaneProcess } from "./processes.js";

/** An environment with its database and real agent process. */
export interface StackEnvironment {
  id: string;
  name: string;
  db: TestDatabase;
  agent: DrayProcess;
  stateDir: string;
  /** Starts the agent again (after a kill), reusing its credential. */
  restartAgent(): Promise<DrayProcess>;
}

/** Options of {@link DrayStack.addEnvironment}. */
export interface AddEnvironmentOptions {
  /** Server (any database URL on it) where the environment's database is created. @default the stack's */
  baseUrl?: string;
  /** The gateway address(es) the agent dials. @default the stack's control plane */
  controlPlaneUrl?: string;
}

/** A control plane, an organisation with an admin token, and helpers to add environments. */
export interface DrayStack {
  cp: Awaited<ReturnType<typeof startControlPlaneProcess>>;
  store: TestDatabase;
  admin: ApiClient;
  api: ApiClient;
  /** The organisation admin token behind `api`. */
  apiToken: string;
  organisationId: string;
  adminToken: string;
  env: Record<string, string>;
  /**
   * Adds an environment with a fresh database (on the stack's server, or on
   * `options.baseUrl`, e.g. a second cluster a fault test stops) and a real agent.
   */
  addEnvironment(name: string, setupSql?: string, options?: AddEnvironmentOptions): Promise<StackEnvironment>;
  /**
   * Restarts the control plane process with the same ports and store, after
   * `downMs` without one (agents back off meanwhile).
   */
  restartControlPlane(signal?: NodeJS.Signals, downMs?: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * Starts a real control plane process on a fresh store database, with NATS,
 * and an organisation ready to use. Environments get their own databases and
 * real agent processes.
 */
export async function startDrayStack(
  baseUrl: string,
  natsUrl: string,
  options: { heartbeatMs?: number; leaseMs?: number; monthlyRecordLimit?: number } = {},
): Promise<DrayStack> {
  const store = await createTestDatabase(baseUrl, "dray_stack_store");
  const adminToken = `dray_admin_${randomBytes(16).toString("hex")}`;
  const env = {
    DRAY_DATABASE_URL: store.url,
    DRAY_NATS_URL: natsUrl,
    DRAY_ADMIN_TOKEN: adminToken,
    // The production default: an agent that is away is waited for until its environment would turn
    // unhealthy (3 intervals + ¼), so a shorter interval would fail runs whose agents restart.
    DRAY_HEARTBEAT_INTERVAL_MS: String(options.heartbeatMs ?? 10_000),
    DRAY_EXECUTION_LEASE_MS: String(options.leaseMs ?? 3000),
    DRAY_HTTP_PORT: String(await freePort()),
    DRAY_GRPC_PORT: String(await freePort()),
  };
  let cp = await startControlPlaneProcess(env);
  const admin = apiClient(cp.httpUrl, adminToken);
  const org = await admin.post("/api/v1/organisations", {
    name: `org-${randomBytes(3).toString("hex")}`,
    monthlyRecordLimit: options.monthlyRecordLimit ?? 100_000_000,
  });
  if (org.status !== 201) throw new Error(`cannot create organisation: ${JSON.stringify(org.body)}`);
  const token = await admin.post("/api/v1/tokens", {
    name: "stack-admin",
    role: "admin",
    organisationId: org.body.id,
  });
  const api = apiClient(cp.httpUrl, token.body.token);
  const environments: StackEnvironment[] = [];
  const pending = new Set<Promise<StackEnvironment>>();

  const stack: DrayStack = {
    get cp() {
      return cp;
    },
    store,
    admin,
    api,
    apiToken: token.body.token,
    organisationId: org.body.id,
    adminToken,
    env,
    addEnvironment(name, setupSql, addOptions) {
      // close() waits for environments still being added, so none is left behind.
      const adding = addEnvironment(name, setupSql, addOptions);
      pending.add(adding);
      return adding.finally(() => pending.delete(adding));
    },
    async restartControlPlane(signal = "SIGTERM", downMs = 0) {
      await cp.stop(signal);
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      cp = await startControlPlaneProcess(env);
    },
    async close() {
      await Promise.allSettled([...pending]);
      await Promise.allSettled(environments.map((e) => e.agent.stop("SIGKILL")));
      await cp.stop("SIGTERM");
      await Promise.allSettled([store.drop(), ...environments.map((e) => e.db.drop())]);
      await Promise.allSettled(environments.map((e) => rm(e.stateDir, { recursive: true, force: true })));
    },
  };

  async function addEnvironment(
    name: string,
    setupSql?: string,
    addOptions: AddEnvironmentOptions = {},
  ): Promise<StackEnvironment> {
    const db = await createTestDatabase(
      addOptions.baseUrl ?? baseUrl,
      `dray_stack_${name.replace(/\W/g, "_")}`,
    );
    if (setupSql) {
      try {
        await db.sql.unsafe(setupSql);
      } catch (error) {
        await db.drop().catch(() => {});
        throw error;
      }
    }
    const created = await api.post("/api/v1/environments", { name, platform: "postgres" });
    if (created.status !== 201) throw new Error(`cannot create environment: ${JSON.stringify(created.body)}`);
    const stateDir = await mkdtemp(join(tmpdir(), `dray-agent-${name}-`));
    const agentEnv = {
      DRAY_CONTROL_PLANE_URL: addOptions.controlPlaneUrl ?? cp.grpcUrl,
      DRAY_AGENT_DATABASE_URL: db.url,
      DRAY_AGENT_STATE_DIR: stateDir,
      DRAY_AGENT_NAME: `agent-${name}`,
    };
    const environment: StackEnvironment = {
      id: created.body.environment.id,
      name,
      db,
      stateDir,
      agent: startAgentProcess({ ...agentEnv, DRAY_ENROLLMENT_TOKEN: created.body.enrollmentToken }),
      async restartAgent() {
        environment.agent = startAgentProcess(agentEnv);
        return environment.agent;
      },
    };
    environments.push(environment);
    await eventually(async () => {
      const r = await api.get(`/api/v1/environments/${environment.id}`);
      return r.body.health === "healthy" && r.body.agent.connected ? true : undefined;
      // Generous: on a loaded 2-core machine an agent's start, enrolment and first heartbeat took over 20 s.
    }, 60_000);
    const entities = await api.post(`/api/v1/environments/${environment.id}/refresh`);
    if (entities.status !== 200) throw new Error(`cannot describe ${name}: ${JSON.stringify(entities.body)}`);
    return environment;
  }
  return stack;
}

/** Polls an execution until it reaches a final status and returns its view. */
export async function waitForExecution(api: ApiClient, executionId: string, timeoutMs = 120_000) {
  return eventually(
    async () => {
      const r = await api.get(`/api/v1/executions/${executionId}`);
      return ["completed", "failed", "cancelled"].includes(r.body.status) ? r.body : undefined;
    },
    timeoutMs,
    100,
  );
}
