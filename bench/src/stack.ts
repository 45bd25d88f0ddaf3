/**
 * A Dray stack for benchmarks: the control plane (Postgres store, in-process
 * event bus) and one agent per environment, each a real process, started with
 * the test harness's process helpers but with production settings, an optional
 * CPU profiler preloaded through NODE_OPTIONS, and their output saved under bench/logs/.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ApiClient, apiClient, eventually } from "../../test/support/api-client.js";
import { createTestDatabase, type TestDatabase } from "../../test/support/databases.js";
import {
  type DrayProcess,
  freePort,
  startAgentProcess,
  startControlPlaneProcess,
} from "../../test/support/processes.js";

export interface BenchEnvironment {
  id: string;
  name: string;
  agent: DrayProcess;
}

export interface BenchStack {
  store: TestDatabase;
  cp: DrayProcess & { httpUrl: string };
  api: ApiClient;
  /** The bearer token `api` sends (an admin of the bench's organisation), for clients of its own (SSE). */
  apiToken: string;
  environments: BenchEnvironment[];
  /** Creates an environment for `databaseUrl`, starts its agent, waits until healthy and describes it. */
  addEnvironment(name: string, databaseUrl: string): Promise<BenchEnvironment>;
  /** Named process ids: control plane and agents. */
  pids(): Record<string, number>;
  /** Saves every process's output to `<logPrefix>-<name>.log` and returns the paths. */
  saveLogs(): Promise<string[]>;
  /**
   * Stops the agents, then the control plane, with SIGTERM (so that --cpu-prof
   * profiles get written), SIGKILL after `graceMs`; saves logs; drops the store unless `keep`.
   */
  close(options: { keep: boolean; graceMs?: number }): Promise<void>;
}

async function stopProcess(proc: DrayProcess, graceMs: number): Promise<number | string> {
  const timer = setTimeout(() => proc.child.kill("SIGKILL"), graceMs);
  try {
    return await proc.stop("SIGTERM");
  } finally {
    clearTimeout(timer);
  }
}

export async function startBenchStack(options: {
  baseUrl: string;
  logPrefix: string;
  /** Profile each process's main thread into this directory (see cpu-profiler.mjs). */
  cpuProfileDir?: string;
}): Promise<BenchStack> {
  const { baseUrl, logPrefix } = options;
  const store = await createTestDatabase(baseUrl, "dray_bench_store");
  const dataDir = await mkdtemp(join(tmpdir(), "dray-bench-cp-"));
  const adminToken = `dray_admin_${randomBytes(16).toString("hex")}`;
  // The processes run as the systemd units and the image run them (deploy/systemd, Dockerfile): a
  // 64 MiB young generation and a 128 MiB initial old generation. BENCH_NODE_OPTIONS and
  // BENCH_NODE_ARGS replace those, e.g. with "" to measure Node's defaults.
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? "--initial-old-space-size=128").split(" ").filter(Boolean);
  const nodeOptions = [
    process.env.BENCH_NODE_OPTIONS ?? "--max-semi-space-size=64",
    ...(options.cpuProfileDir
      ? [`--import=${fileURLToPath(new URL("./cpu-profiler.mjs", import.meta.url))}`]
      : []),
  ];
  const extra: Record<string, string> = {
    ...(nodeOptions.some((o) => o !== "")
      ? { NODE_OPTIONS: nodeOptions.filter((o) => o !== "").join(" ") }
      : {}),
    ...(options.cpuProfileDir ? { BENCH_CPU_PROF_DIR: options.cpuProfileDir } : {}),
  };
  const processes: Record<string, DrayProcess> = {};
  const stateDirs: string[] = [dataDir];
  let cp: Awaited<ReturnType<typeof startControlPlaneProcess>>;
  try {
    // DRAY_NATS_URL is left unset: the in-process event bus.
    cp = await startControlPlaneProcess(
      {
        DRAY_DATABASE_URL: store.url,
        DRAY_DATA_DIR: dataDir,
        DRAY_ADMIN_TOKEN: adminToken,
        DRAY_HTTP_PORT: String(await freePort()),
        DRAY_GRPC_PORT: String(await freePort()),
        ...extra,
      },
      nodeArgs,
    );
    processes["control-plane"] = cp;
  } catch (error) {
    await store.drop().catch(() => {});
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  const { grpcUrl, httpUrl } = cp;
  const admin = apiClient(httpUrl, adminToken);
  let api: ApiClient;
  let apiToken: string;
  try {
    const org = await admin.post("/api/v1/organisations", {
      name: `bench-${randomBytes(3).toString("hex")}`,
      monthlyRecordLimit: 1_000_000_000_000,
    });
    if (org.status !== 201) throw new Error(`cannot create the organisation: ${JSON.stringify(org.body)}`);
    const token = await admin.post("/api/v1/tokens", {
      name: "bench",
      role: "admin",
      organisationId: org.body.id,
    });
    if (token.status !== 201) throw new Error(`cannot create a token: ${JSON.stringify(token.body)}`);
    apiToken = token.body.token;
    api = apiClient(httpUrl, apiToken);
  } catch (error) {
    await stopProcess(cp, 10_000);
    await writeFile(`${logPrefix}-control-plane.log`, cp.output()).catch(() => {});
    await store.drop().catch(() => {});
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  const environments: BenchEnvironment[] = [];

  const saveLogs = async () => {
    const paths: string[] = [];
    for (const [name, proc] of Object.entries(processes)) {
      const path = `${logPrefix}-${name}.log`;
      await writeFile(path, proc.output());
      paths.push(path);
    }
    return paths;
  };

  return {
    apiToken,
    store,
    cp,
    api,
    environments,
    async addEnvironment(name, databaseUrl) {
      const created = await api.post("/api/v1/environments", { name, platform: "postgres" });
      if (created.status !== 201)
        throw new Error(`cannot create environment ${name}: ${JSON.stringify(created.body)}`);
      const stateDir = await mkdtemp(join(tmpdir(), `dray-bench-agent-${name}-`));
      stateDirs.push(stateDir);
      const agent = startAgentProcess(
        {
          DRAY_CONTROL_PLANE_URL: grpcUrl,
          DRAY_AGENT_DATABASE_URL: databaseUrl,
          DRAY_AGENT_STATE_DIR: stateDir,
          DRAY_AGENT_NAME: `bench-${name}`,
          DRAY_ENROLLMENT_TOKEN: created.body.enrollmentToken,
          ...extra,
        },
        nodeArgs,
      );
      processes[`${name}-agent`] = agent;
      const environment: BenchEnvironment = { id: created.body.environment.id, name, agent };
      environments.push(environment);
      await eventually(
        async () => {
          if (agent.child.exitCode !== null)
            throw new Error(`agent ${name} exited:\n${agent.output().slice(-4000)}`);
          const r = await api.get(`/api/v1/environments/${environment.id}`);
          return r.body.health === "healthy" && r.body.agent?.connected ? true : undefined;
        },
        60_000,
        100,
      );
      const described = await api.post(`/api/v1/environments/${environment.id}/refresh`);
      if (described.status !== 200)
        throw new Error(`cannot describe environment ${name}: ${JSON.stringify(described.body)}`);
      return environment;
    },
    pids() {
      const out: Record<string, number> = {};
      for (const [name, proc] of Object.entries(processes)) if (proc.child.pid) out[name] = proc.child.pid;
      return out;
    },
    saveLogs,
    async close({ keep, graceMs = 30_000 }) {
      await Promise.allSettled(environments.map((e) => stopProcess(e.agent, graceMs)));
      await stopProcess(cp, graceMs).catch(() => {});
      await saveLogs().catch(() => {});
      if (!keep) await store.drop().catch(() => {});
      else await store.sql.end({ timeout: 1 }).catch(() => {});
      await Promise.allSettled(stateDirs.map((d) => rm(d, { recursive: true, force: true })));
    },
  };
}
