/**
 * The compiled bundles the images run (scripts/build-bundles.ts), run here with plain `node`:
 * two control-plane replicas over one store and NATS, two agents (one dialling a bare host:port,
 * one a gateway list), a copy of the compose demo data started through the other replica, and,
 * when nginx is installed, the compose load balancer's configuration in front of both replicas.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type BuiltBundle, buildBundles } from "../scripts/build-bundles.js";
import { loopbackNginxConfig } from "../scripts/deploy-validation/compose.js";
import { checkDockerfile } from "../scripts/deploy-validation/dockerfile.js";
import { apiClient, eventually } from "./support/api-client.js";
import { createTestDatabase, type TestDatabase } from "./support/databases.js";
import { createPipeline, startRun, tableDigests } from "./support/executions.js";
import { freePort, METRICS_HEADERS, TEST_METRICS_TOKEN } from "./support/processes.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const composeDir = join(root, "deploy/compose");
const TABLES = ["customers", "orders"];
const nginx = ["/usr/sbin/nginx", "nginx"].find((bin) => spawnSync(bin, ["-v"]).status === 0);

/** A process started from a bundle, with its output kept for failure messages. */
interface Running {
  child: ChildProcess;
  output(): string;
  waitFor(pattern: RegExp, timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

function run(command: string, args: string[], env: Record<string, string>): Running {
  const child = spawn(command, args, {
    cwd: tmpdir(),
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let text = "";
  child.stdout?.on("data", (c: Buffer) => (text += c.toString()));
  child.stderr?.on("data", (c: Buffer) => (text += c.toString()));
  const exited = once(child, "exit");
  return {
    child,
    output: () => text,
    async waitFor(pattern, timeoutMs) {
      await eventually(async () => {
        if (child.exitCode !== null) throw new Error(`exited early:\n${text}`);
        return pattern.test(text) ? true : undefined;
      }, timeoutMs).catch((error) => {
        throw new Error(`${command} ${args.join(" ")}: ${(error as Error).message}\n${text.slice(-3000)}`);
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

let out: string;
let bundles: Record<string, BuiltBundle>;
const databases: TestDatabase[] = [];
/** The V8 flags of the Dockerfile's CMD and deploy/systemd's ExecStart lines. */
const NODE_FLAGS = ["--max-semi-space-size=64", "--initial-old-space-size=128"];
const processes: Running[] = [];
const stateDirs: string[] = [];
const adminToken = `dray_admin_bundle_${Date.now()}_0123456789`;
const replicas: { name: string; http: number; grpc: number }[] = [];

async function startReplica(name: string, storeUrl: string) {
  const ports = { name, http: await freePort(), grpc: await freePort() };
  // Node's flags as the image and the systemd units give them.
  const cp = run(process.execPath, [...NODE_FLAGS, bundles["control-plane"]!.file], {
    DRAY_DATABASE_URL: storeUrl,
    DRAY_NATS_URL: inject("natsUrl"),
    DRAY_ADMIN_TOKEN: adminToken,
    DRAY_METRICS_TOKEN: TEST_METRICS_TOKEN,
    DRAY_HTTP_PORT: String(ports.http),
    DRAY_GRPC_PORT: String(ports.grpc),
    DRAY_REPLICA_ID: name,
    DRAY_LOG_LEVEL: "warn",
  });
  processes.push(cp);
  await cp.waitFor(/dray-control-plane ready/, 30_000);
  replicas.push(ports);
}

function startAgent(name: string, controlPlaneUrl: string, databaseUrl: string, enrollmentToken: string) {
  return mkdtemp(join(tmpdir(), `dray-bundle-agent-${name}-`)).then((stateDir) => {
    stateDirs.push(stateDir);
    const agent = run(process.execPath, [...NODE_FLAGS, bundles.agent!.file], {
      DRAY_CONTROL_PLANE_URL: controlPlaneUrl,
      DRAY_AGENT_DATABASE_URL: databaseUrl,
      DRAY_AGENT_STATE_DIR: stateDir,
      DRAY_AGENT_NAME: name,
      DRAY_ENROLLMENT_TOKEN: enrollmentToken,
    });
    processes.push(agent);
    return { agent, stateDir };
  });
}

beforeAll(async () => {
  out = await mkdtemp(join(tmpdir(), "dray-bundles-"));
  bundles = Object.fromEntries((await buildBundles({ outDir: out })).map((b) => [b.name, b]));
  const base = inject("databaseUrl");
  const [store, source, target] = await Promise.all([
    createTestDatabase(base, "dray_bundle_store"),
    createTestDatabase(base, "dray_bundle_source"),
    createTestDatabase(base, "dray_bundle_target"),
  ]);
  databases.push(store, source, target);
  const schema = await readFile(join(composeDir, "schema.sql"), "utf8");
  await source.sql.unsafe(schema);
  await source.sql.unsafe(await readFile(join(composeDir, "source-data.sql"), "utf8"));
  await target.sql.unsafe(schema);
  // One after the other: the second also finds the migrations applied under the lock.
  await startReplica("bundle-cp-1", store.url);
  await startReplica("bundle-cp-2", store.url);
}, 90_000);

afterAll(async () => {
  await Promise.allSettled(processes.reverse().map((p) => p.stop()));
  await Promise.allSettled(databases.map((d) => d.drop()));
  await Promise.allSettled(
    [out, ...stateDirs].filter(Boolean).map((dir) => rm(dir, { recursive: true, force: true })),
  );
});

describe("the bundles of scripts/build-bundles.ts", () => {
  it("are plain JavaScript with no TypeScript loader, at the paths the Dockerfile runs", async () => {
    for (const name of ["control-plane", "agent"]) {
      const text = await readFile(bundles[name]!.file, "utf8");
      expect(text).not.toMatch(/from "tsx|tsx\/esm/);
      expect(text).not.toMatch(/\.ts"\)/);
    }
    const docker = checkDockerfile(root, out);
    expect(docker.details.join("\n")).toContain("fresh bundle build");
    expect(docker.status, docker.details.join("\n")).toBe("ok");
  });

  it("start with the same V8 flags in the image and the systemd units as here", async () => {
    const files = [
      "Dockerfile",
      "deploy/systemd/dray-agent.service",
      "deploy/systemd/dray-control-plane.service",
    ];
    for (const file of files) {
      const text = await readFile(join(root, file), "utf8");
      const starts = text
        .split("\n")
        .filter((line) => /^(CMD \[|ExecStart=)/.test(line) && /node/.test(line));
      expect(starts.length, file).toBeGreaterThan(0);
      for (const line of starts) for (const flag of NODE_FLAGS) expect(line, file).toContain(flag);
    }
  });

  it("serve /healthz, /readyz, /metrics and the UI's assets from the control-plane bundle", async () => {
    const http = `http://127.0.0.1:${replicas[0]!.http}`;
    expect(await (await fetch(`${http}/healthz`)).json()).toEqual({ status: "ok" });
    const ready = await fetch(`${http}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: "ready", checks: { store: true, readiness: true } });
    expect((await fetch(`${http}/metrics`)).status).toBe(401);
    const metrics = await fetch(`${http}/metrics`, { headers: METRICS_HEADERS });
    expect(await metrics.text()).toContain("dray_http_requests_total");
    const page = await (await fetch(`${http}/ui`)).text();
    const script = page.match(/\/ui\/assets\/app\.[0-9a-f]+\.js/)?.[0];
    expect(script).toBeDefined();
    const asset = await fetch(`${http}${script}`);
    expect(asset.status).toBe(200);
    expect(await asset.text()).toBe(
      await readFile(join(root, "control-plane/src/web/assets/app.js"), "utf8"),
    );
  });

  it("enrol agents on either replica and copy the compose demo data started through the other", async () => {
    const [cp1, cp2] = replicas as [(typeof replicas)[0], (typeof replicas)[0]];
    const [, source, target] = databases as [TestDatabase, TestDatabase, TestDatabase];
    const admin = apiClient(`http://127.0.0.1:${cp1.http}`, adminToken);
    const org = await admin.post("/api/v1/organisations", { name: `bundle-${Date.now()}` });
    expect(org.status).toBe(201);
    const token = await admin.post("/api/v1/tokens", {
      name: "bundle",
      role: "admin",
      organisationId: org.body.id,
    });
    const api1 = apiClient(`http://127.0.0.1:${cp1.http}`, token.body.token);
    const api2 = apiClient(`http://127.0.0.1:${cp2.http}`, token.body.token);
    const src = await api1.post("/api/v1/environments", { name: "source", platform: "postgres" });
    const tgt = await api2.post("/api/v1/environments", { name: "target", platform: "postgres" });
    expect([src.status, tgt.status]).toEqual([201, 201]);
    // A bare host:port to replica 1; a gateway list starting with replica 2.
    const a = await startAgent("source", `127.0.0.1:${cp1.grpc}`, source.url, src.body.enrollmentToken);
    const b = await startAgent(
      "target",
      `127.0.0.1:${cp2.grpc},http://127.0.0.1:${cp1.grpc}`,
      target.url,
      tgt.body.enrollmentToken,
    );
    for (const [env, agent] of [
      [src.body.environment.id, a.agent],
      [tgt.body.environment.id, b.agent],
    ] as const) {
      await eventually(async () => {
        if (agent.child.exitCode !== null) throw new Error(agent.output());
        const r = await api1.get(`/api/v1/environments/${env}`);
        return r.body.health === "healthy" && r.body.agent.connected ? true : undefined;
      }, 20_000);
      expect((await api2.post(`/api/v1/environments/${env}/refresh`)).status).toBe(200);
    }
    const pipelineId = await createPipeline(api1, {
      name: "bundle-copy",
      sourceEnvironmentId: src.body.environment.id,
      targetEnvironmentId: tgt.body.environment.id,
      writeStrategy: "merge",
      entities: TABLES.map((t) => `public.${t}`),
    });
    const started = await startRun(api2, pipelineId);
    const final = await eventually(
      async () => {
        const r = await api1.get(`/api/v1/executions/${started.id}`);
        return ["completed", "failed", "cancelled"].includes(r.body.status) ? r.body : undefined;
      },
      60_000,
      100,
    );
    expect(final.status, JSON.stringify(final)).toBe("completed");
    const [fromSource, fromTarget] = await Promise.all([
      tableDigests(source.sql, TABLES),
      tableDigests(target.sql, TABLES),
    ]);
    expect(fromSource.customers!.rows).toBe(1000);
    expect(fromSource.orders!.rows).toBe(5000);
    expect(fromTarget).toEqual(fromSource);
  }, 90_000);

  it.skipIf(!nginx)(
    "pass the API and the agents' gRPC (HTTP/2) through deploy/compose/nginx.conf (needs nginx: apt-get install nginx-light)",
    async () => {
      const workDir = await mkdtemp(join(tmpdir(), "dray-bundle-nginx-"));
      const ports = {
        api: await freePort(),
        gateway: await freePort(),
        workDir,
        replicas: Object.fromEntries(
          replicas.map((r, i) => [`control-plane-${i + 1}`, { http: r.http, grpc: r.grpc }]),
        ),
      };
      const conf = join(workDir, "nginx.conf");
      await writeFile(
        conf,
        loopbackNginxConfig(await readFile(join(composeDir, "nginx.conf"), "utf8"), ports),
      );
      const lb = run(nginx!, ["-p", workDir, "-c", conf, "-g", "daemon off;"], {});
      processes.push(lb);
      try {
        const viaLb = `http://127.0.0.1:${ports.api}`;
        await eventually(async () => {
          if (lb.child.exitCode !== null) throw new Error(`nginx exited: ${lb.output()}`);
          return (await fetch(`${viaLb}/healthz`).catch(() => undefined))?.ok ? true : undefined;
        }, 10_000).catch((error) => {
          throw new Error(`${(error as Error).message}\n${lb.output()}`);
        });
        const answers = await Promise.all(
          [1, 2, 3, 4].map(() => fetch(`${viaLb}/readyz`).then((r) => r.status)),
        );
        expect(answers).toEqual([200, 200, 200, 200]);
        expect((await fetch(`${viaLb}/metrics`)).status).toBe(404);
        // An agent through the balancer's gRPC port: it enrols (unary) and its stream stays up (heartbeats).
        const api = apiClient(viaLb, adminToken);
        const org = await api.post("/api/v1/organisations", { name: `bundle-lb-${Date.now()}` });
        const token = await api.post("/api/v1/tokens", {
          name: "lb",
          role: "admin",
          organisationId: org.body.id,
        });
        const orgApi = apiClient(viaLb, token.body.token);
        const env = await orgApi.post("/api/v1/environments", { name: "via-lb", platform: "postgres" });
        expect(env.status).toBe(201);
        const { agent } = await startAgent(
          "via-lb",
          `127.0.0.1:${ports.gateway}`,
          databases[1]!.url,
          env.body.enrollmentToken,
        );
        await eventually(async () => {
          if (agent.child.exitCode !== null) throw new Error(agent.output());
          const r = await orgApi.get(`/api/v1/environments/${env.body.environment.id}`);
          return r.body.health === "healthy" && r.body.agent.connected ? true : undefined;
        }, 20_000);
        const refreshed = await orgApi.post(`/api/v1/environments/${env.body.environment.id}/refresh`);
        expect(refreshed.status).toBe(200);
        expect(refreshed.body.entities.map((e: any) => e.name).sort()).toEqual(TABLES);
      } finally {
        await lb.stop();
        await rm(workDir, { recursive: true, force: true });
      }
    },
    60_000,
  );
});
