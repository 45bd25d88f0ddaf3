import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ApiClient, apiClient, eventually } from "./api-client.js";
import { createTestDatabase, type TestDatabase } from "./databases.js";
import { type DrayProcess, freePort, startAgentProcess, startControlPlaneProcess } from "./processes.js";

/** One control-plane replica process with a client of its API (the organisation's admin token). */
export interface Replica {
  cp: Awaited<ReturnType<typeof startControlPlaneProcess>>;
  api: ApiClient;
  /** The replica's gateway as a bare `host:port`. */
  grpcHostPort: string;
}

/** An environment with its database and an agent started with a chosen DRAY_CONTROL_PLANE_URL. */
export interface ReplicaEnvironment {
  id: string;
  db: TestDatabase;
  agent: DrayProcess;
  stateDir: string;
}

/** Control-plane replicas sharing one store database and NATS, and an organisation on them. */
export interface ReplicaSet {
  replicas: Replica[];
  store: TestDatabase;
  /**
   * Creates an environment (through the first replica still running) and starts its
   * agent with `controlPlaneUrl` as DRAY_CONTROL_PLANE_URL and the enrollment token.
   */
  addEnvironment(name: string, controlPlaneUrl: string): Promise<ReplicaEnvironment>;
  close(): Promise<void>;
}

/**
 * True when replica `replica`'s API says the environment's agent is connected: to it, or (through
 * the store's registry of agent sessions) to another live replica.
 */
export async function agentConnectedTo(replica: Replica, environmentId: string): Promise<boolean> {
  const r = await replica.api.get(`/api/v1/environments/${environmentId}`);
  return r.status === 200 && r.body.agent?.connected === true;
}

/**
 * Starts `count` control-plane processes, one after the other, on one fresh store
 * database and the same NATS (what several replicas behind a load balancer share),
 * and creates an organisation with an admin token usable on every one of them.
 */
export async function startReplicaSet(baseUrl: string, natsUrl: string, count = 2): Promise<ReplicaSet> {
  const store = await createTestDatabase(baseUrl, "dray_replicas_store");
  const adminToken = `dray_admin_${randomBytes(16).toString("hex")}`;
  const shared = {
    DRAY_DATABASE_URL: store.url,
    DRAY_NATS_URL: natsUrl,
    DRAY_ADMIN_TOKEN: adminToken,
    DRAY_HEARTBEAT_INTERVAL_MS: "10000",
    DRAY_EXECUTION_LEASE_MS: "3000",
  };
  const processes: Replica["cp"][] = [];
  const environments: ReplicaEnvironment[] = [];
  try {
    // One at a time: the first applies the store's migrations.
    for (let i = 0; i < count; i++) {
      processes.push(
        await startControlPlaneProcess({
          ...shared,
          DRAY_HTTP_PORT: String(await freePort()),
          DRAY_GRPC_PORT: String(await freePort()),
        }),
      );
    }
  } catch (error) {
    await Promise.allSettled(processes.map((p) => p.stop("SIGKILL")));
    await store.drop().catch(() => {});
    throw error;
  }
  const admin = apiClient(processes[0]!.httpUrl, adminToken);
  const org = await admin.post("/api/v1/organisations", {
    name: `org-${randomBytes(3).toString("hex")}`,
    monthlyRecordLimit: 100_000_000,
  });
  if (org.status !== 201) throw new Error(`cannot create organisation: ${JSON.stringify(org.body)}`);
  const token = await admin.post("/api/v1/tokens", {
    name: "replicas",
    role: "admin",
    organisationId: org.body.id,
  });
  const replicas: Replica[] = processes.map((cp) => ({
    cp,
    api: apiClient(cp.httpUrl, token.body.token),
    grpcHostPort: cp.grpcUrl.replace("http://", ""),
  }));

  return {
    replicas,
    store,
    async addEnvironment(name, controlPlaneUrl) {
      const replica = replicas.find((r) => r.cp.child.exitCode === null && r.cp.child.signalCode === null);
      if (!replica) throw new Error("no replica is running");
      const db = await createTestDatabase(baseUrl, `dray_replicas_${name.replace(/\W/g, "_")}`);
      const created = await replica.api.post("/api/v1/environments", { name, platform: "postgres" });
      if (created.status !== 201)
        throw new Error(`cannot create environment: ${JSON.stringify(created.body)}`);
      const stateDir = await mkdtemp(join(tmpdir(), `dray-agent-${name}-`));
      const environment: ReplicaEnvironment = {
        id: created.body.environment.id,
        db,
        stateDir,
        agent: startAgentProcess({
          DRAY_CONTROL_PLANE_URL: controlPlaneUrl,
          DRAY_ENROLLMENT_TOKEN: created.body.enrollmentToken,
          DRAY_AGENT_DATABASE_URL: db.url,
          DRAY_AGENT_STATE_DIR: stateDir,
          DRAY_AGENT_NAME: `agent-${name}`,
        }),
      };
      environments.push(environment);
      return environment;
    },
    async close() {
      await Promise.allSettled(environments.map((e) => e.agent.stop("SIGKILL")));
      await Promise.allSettled(replicas.map((r) => r.cp.stop("SIGTERM")));
      await Promise.allSettled([store.drop(), ...environments.map((e) => e.db.drop())]);
      await Promise.allSettled(environments.map((e) => rm(e.stateDir, { recursive: true, force: true })));
    },
  };
}

/** Polls until `replica` shows the environment's agent connected (see {@link agentConnectedTo}); resolves with the milliseconds it took. */
export async function waitForAgentOn(
  replica: Replica,
  environmentId: string,
  timeoutMs: number,
): Promise<number> {
  const started = performance.now();
  await eventually(
    async () => ((await agentConnectedTo(replica, environmentId)) ? true : undefined),
    timeoutMs,
    50,
  );
  return Math.round(performance.now() - started);
}
