/**
 * The routing bench's Dray: control-plane replica processes on one fresh store
 * database and one NATS, an organisation with an admin token, environments
 * created through the API, and simulated agents (routing-agent.ts) spread over
 * the replicas' gateways. Replicas are real processes started with the test
 * harness's helpers, with the production Node options (see stack.ts).
 */
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { type ApiClient, apiClient } from "../../test/support/api-client.js";
import { createTestDatabase, type TestDatabase } from "../../test/support/databases.js";
import { freePort, startControlPlaneProcess } from "../../test/support/processes.js";
import { type ReceivedTask, type SimulatedAgent, startSimulatedAgent } from "./routing-agent.js";
import { forEachLimited } from "./routing-latency.js";
import { startBundledControlPlane } from "./routing-process.js";

/** One replica process and a client of its API. */
export interface RoutingReplica {
  name: string;
  cp: Awaited<ReturnType<typeof startControlPlaneProcess>>;
  api: ApiClient;
  /** Its gateway, `host:port`. */
  grpc: string;
  pid: number;
}

/** An environment and the enrollment token for its (simulated) agent. */
export interface RoutingEnvironment {
  id: string;
  name: string;
  enrollmentToken: string;
}

/** Replicas over one store and NATS. Create with {@link startRoutingReplicas}. */
export interface RoutingStack {
  store: TestDatabase;
  replicas: RoutingReplica[];
  /** Starts one more replica on the same store and NATS. */
  addReplica(): Promise<RoutingReplica>;
  /** Creates `count` environments through `via`'s API, `concurrency` at a time. */
  createEnvironments(count: number, prefix: string, via: RoutingReplica): Promise<RoutingEnvironment[]>;
  /**
   * Starts one simulated agent per environment, agent i on `gatewayOf(i)`,
   * `concurrency` enrolments at a time, and waits until the store records every
   * one of them as held by a replica.
   */
  connectAgents(
    environments: RoutingEnvironment[],
    gatewayOf: (index: number) => RoutingReplica,
    onTask: (task: ReceivedTask) => void,
    options: { concurrency: number; maxConcurrentTasks: number; timeoutMs: number },
  ): Promise<SimulatedAgent[]>;
  /** Environments held per replica id, from the store's `agent_sessions`, among `environmentIds`. */
  holders(environmentIds: readonly string[]): Promise<Map<string, number>>;
  /** Writes each replica's output to `<logPrefix>-<name>.log`; returns the paths. */
  saveLogs(): Promise<string[]>;
  /** Stops every replica (SIGTERM, SIGKILL after 10 s), saves logs, drops the store unless `keep`. */
  close(keep: boolean): Promise<void>;
}

/**
 * Starts `count` replicas one after the other (the first migrates the store)
 * and creates an organisation and an admin token on them.
 */
export async function startRoutingReplicas(options: {
  baseUrl: string;
  natsUrl: string;
  count: number;
  logPrefix: string;
  /** Profile each replica's main thread into this directory (see cpu-profiler.mjs). */
  cpuProfileDir?: string | undefined;
  /** Run the replicas from this compiled bundle (`pnpm build`) instead of the TypeScript source. */
  bundle?: string | undefined;
}): Promise<RoutingStack> {
  const store = await createTestDatabase(options.baseUrl, "dray_bench_store");
  const adminToken = `dray_admin_${randomBytes(16).toString("hex")}`;
  const nodeOptions = [
    process.env.BENCH_NODE_OPTIONS ?? "--max-semi-space-size=64",
    ...(options.cpuProfileDir
      ? [`--import=${fileURLToPath(new URL("./cpu-profiler.mjs", import.meta.url))}`]
      : []),
  ].filter((o) => o !== "");
  const shared: Record<string, string> = {
    DRAY_DATABASE_URL: store.url,
    DRAY_NATS_URL: options.natsUrl,
    DRAY_ADMIN_TOKEN: adminToken,
    ...(nodeOptions.length ? { NODE_OPTIONS: nodeOptions.join(" ") } : {}),
    ...(options.cpuProfileDir ? { BENCH_CPU_PROF_DIR: options.cpuProfileDir } : {}),
  };
  const replicas: RoutingReplica[] = [];
  let token = "";

  const addReplica = async (): Promise<RoutingReplica> => {
    const env = {
      ...shared,
      DRAY_HTTP_PORT: String(await freePort()),
      DRAY_GRPC_PORT: String(await freePort()),
    };
    const cp = options.bundle
      ? await startBundledControlPlane(options.bundle, env)
      : await startControlPlaneProcess(env);
    const replica: RoutingReplica = {
      name: `replica-${replicas.length + 1}`,
      cp,
      api: apiClient(cp.httpUrl, token || adminToken),
      grpc: cp.grpcUrl.replace("http://", ""),
      pid: cp.child.pid ?? 0,
    };
    replicas.push(replica);
    return replica;
  };

  const stopAll = async () => {
    await Promise.allSettled(
      replicas.map(async (r) => {
        const timer = setTimeout(() => r.cp.child.kill("SIGKILL"), 10_000);
        try {
          await r.cp.stop("SIGTERM");
        } finally {
          clearTimeout(timer);
        }
      }),
    );
  };
  const saveLogs = async () => {
    const paths: string[] = [];
    for (const r of replicas) {
      const path = `${options.logPrefix}-${r.name}.log`;
      await writeFile(path, r.cp.output());
      paths.push(path);
    }
    return paths;
  };

  const holders = async (environmentIds: readonly string[]) => {
    const rows = await store.sql<{ replica_id: string; n: number }[]>`
      select replica_id, count(*)::int as n from agent_sessions
      where environment_id = any(${environmentIds as string[]}::uuid[]) and lease_until > now()
      group by replica_id`;
    return new Map(rows.map((r) => [r.replica_id, r.n]));
  };

  try {
    for (let i = 0; i < options.count; i++) await addReplica();
    const admin = apiClient(replicas[0]!.cp.httpUrl, adminToken);
    const org = await admin.post("/api/v1/organisations", {
      name: `bench-routing-${randomBytes(3).toString("hex")}`,
      monthlyRecordLimit: 1_000_000,
    });
    if (org.status !== 201) throw new Error(`cannot create the organisation: ${JSON.stringify(org.body)}`);
    const created = await admin.post("/api/v1/tokens", {
      name: "bench-routing",
      role: "admin",
      organisationId: org.body.id,
    });
    if (created.status !== 201) throw new Error(`cannot create a token: ${JSON.stringify(created.body)}`);
    token = created.body.token;
    for (const r of replicas) r.api = apiClient(r.cp.httpUrl, token);
  } catch (error) {
    await stopAll();
    await saveLogs().catch(() => {});
    await store.drop().catch(() => {});
    throw error;
  }

  return {
    store,
    replicas,
    addReplica,
    async createEnvironments(count, prefix, via) {
      const out: RoutingEnvironment[] = new Array(count);
      await forEachLimited(count, 8, async (i) => {
        const name = `${prefix}-${String(i).padStart(4, "0")}`;
        const r = await via.api.post("/api/v1/environments", { name, platform: "postgres" });
        if (r.status !== 201) throw new Error(`cannot create environment ${name}: ${JSON.stringify(r.body)}`);
        out[i] = { id: r.body.environment.id, name, enrollmentToken: r.body.enrollmentToken };
      });
      return out;
    },
    async connectAgents(environments, gatewayOf, onTask, o) {
      const agents: SimulatedAgent[] = new Array(environments.length);
      try {
        await forEachLimited(environments.length, o.concurrency, async (i) => {
          const e = environments[i]!;
          agents[i] = await startSimulatedAgent({
            name: e.name,
            environmentId: e.id,
            enrollmentToken: e.enrollmentToken,
            gateway: gatewayOf(i).grpc,
            maxConcurrentTasks: o.maxConcurrentTasks,
            onTask,
          });
        });
        const ids = environments.map((e) => e.id);
        const deadline = performance.now() + o.timeoutMs;
        for (;;) {
          const held = [...(await holders(ids)).values()].reduce((a, b) => a + b, 0);
          if (held === ids.length) break;
          if (performance.now() > deadline) {
            const errors = agents.flatMap((a) => (a?.lastError() ? [`${a.name}: ${a.lastError()}`] : []));
            throw new Error(
              `only ${held} of ${ids.length} agents are held by a replica after ${o.timeoutMs} ms` +
                (errors.length ? `; first errors:\n${errors.slice(0, 5).join("\n")}` : ""),
            );
          }
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        return agents;
      } catch (error) {
        for (const a of agents) a?.close();
        throw error;
      }
    },
    holders,
    saveLogs,
    async close(keep) {
      await stopAll();
      await saveLogs().catch(() => {});
      if (!keep) await store.drop().catch(() => {});
      else await store.sql.end({ timeout: 1 }).catch(() => {});
    },
  };
}
