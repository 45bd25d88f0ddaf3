/**
 * End to end, as an operator would: a real control plane and real agents as
 * separate processes on loopback, against the local Postgres and NATS.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type ApiClient, apiClient, eventually } from "./support/api-client.js";
import { createTestDatabase, type TestDatabase } from "./support/databases.js";
import {
  type DrayProcess,
  METRICS_HEADERS,
  startAgentProcess,
  startControlPlaneProcess,
} from "./support/processes.js";

const INTERVAL = 1000;

let store: TestDatabase;
let envDb: TestDatabase;
let cp: Awaited<ReturnType<typeof startControlPlaneProcess>>;
let nats: NatsConnection;
let stateDir: string;
let admin: ApiClient;
let orgA: ApiClient;
let orgB: ApiClient;
let orgAId: string;
let environmentId: string;
let enrollmentToken: string;
const agents: DrayProcess[] = [];
const healthEvents: { health: string; previous: string; reason: string | null; type: string }[] = [];

function agentEnv(extra: Record<string, string> = {}) {
  return {
    DRAY_CONTROL_PLANE_URL: cp.grpcUrl,
    DRAY_AGENT_DATABASE_URL: envDb.url,
    DRAY_AGENT_STATE_DIR: stateDir,
    DRAY_AGENT_NAME: "e2e-agent",
    ...extra,
  };
}

async function environment() {
  const r = await orgA.get(`/api/v1/environments/${environmentId}`);
  expect(r.status).toBe(200);
  return r.body;
}

beforeAll(async () => {
  const baseUrl = inject("databaseUrl");
  [store, envDb] = await Promise.all([
    createTestDatabase(baseUrl, "dray_e2e_store"),
    createTestDatabase(baseUrl, "dray_e2e_env"),
  ]);
  await envDb.sql.unsafe(`
    create table accounts (id bigint primary key, name text not null, parent_id bigint references accounts(id));
    create table teams (id int primary key, name text not null, lead_id int);
    create table people (id int primary key, team_id int not null references teams(id), email text);
    alter table teams add constraint teams_lead_fk foreign key (lead_id) references people(id);
    create table contacts (id bigint primary key, account_id bigint not null references accounts(id), email text);
  `);
  stateDir = await mkdtemp(join(tmpdir(), "dray-agent-"));
  const adminToken = `dray_admin_${randomBytes(16).toString("hex")}`;
  cp = await startControlPlaneProcess({
    DRAY_DATABASE_URL: store.url,
    DRAY_NATS_URL: inject("natsUrl"),
    DRAY_ADMIN_TOKEN: adminToken,
    DRAY_HEARTBEAT_INTERVAL_MS: String(INTERVAL),
  });
  admin = apiClient(cp.httpUrl, adminToken);
  const a = await admin.post("/api/v1/organisations", { name: "Org A" });
  const b = await admin.post("/api/v1/organisations", { name: "Org B" });
  expect(a.status).toBe(201);
  orgAId = a.body.id;
  const ta = await admin.post("/api/v1/tokens", {
    name: "a-admin",
    role: "admin",
    organisationId: a.body.id,
  });
  const tb = await admin.post("/api/v1/tokens", {
    name: "b-admin",
    role: "admin",
    organisationId: b.body.id,
  });
  expect(ta.status).toBe(201);
  orgA = apiClient(cp.httpUrl, ta.body.token);
  orgB = apiClient(cp.httpUrl, tb.body.token);
  const created = await orgA.post("/api/v1/environments", {
    name: "qa",
    platform: "postgres",
    application: "crm",
  });
  expect(created.status).toBe(201);
  environmentId = created.body.environment.id;
  enrollmentToken = created.body.enrollmentToken;
  expect(created.body.environment.health).toBe("unknown");

  nats = await connect({ servers: inject("natsUrl") });
  nats.subscribe(`dray.${orgAId}.environments.${environmentId}.health`, {
    callback: (_err, msg) => {
      const event = msg.json<{ type: string; health: string; previous: string; reason: string | null }>();
      if (event.type === "environment.health_changed") healthEvents.push(event);
    },
  });
  await nats.flush();
}, 90_000);

afterAll(async () => {
  await Promise.allSettled(agents.map((a) => a.stop("SIGKILL")));
  await cp?.stop("SIGTERM");
  await nats?.close();
  await Promise.allSettled([store?.drop(), envDb?.drop()]);
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
});

describe("an agent next to a Postgres database", () => {
  it("enrols with the token and shows healthy within two heartbeat intervals", async () => {
    const agent = startAgentProcess(agentEnv({ DRAY_ENROLLMENT_TOKEN: enrollmentToken }));
    agents.push(agent);
    await agent.waitFor(/"msg":"starting"/);
    const started = Date.now();
    const env = await eventually(async () => {
      const e = await environment();
      return e.health === "healthy" ? e : undefined;
    }, 10_000);
    expect(Date.now() - started).toBeLessThanOrEqual(2 * INTERVAL + 1500);
    expect(env.agent.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(env.agent.connected).toBe(true);
    expect(Date.parse(env.lastHeartbeatAt)).toBeGreaterThan(Date.now() - 5 * INTERVAL);
    const credential = JSON.parse(await readFile(join(stateDir, "credential.json"), "utf8"));
    expect(credential.credential).toMatch(/\./);
  });

  it("a second enrolment with the same token is refused with a clear message", async () => {
    const dir = await mkdtemp(join(tmpdir(), "dray-agent-"));
    const intruder = startAgentProcess(
      agentEnv({ DRAY_ENROLLMENT_TOKEN: enrollmentToken, DRAY_AGENT_STATE_DIR: dir }),
    );
    const code = await intruder.exited;
    expect(code).toBe(1);
    expect(intruder.output()).toMatch(/enrollment token is invalid, expired or already used/);
    await rm(dir, { recursive: true, force: true });
  });

  it("lists entities with fields, primary keys and references, including a self-reference and a cycle", async () => {
    const r = await orgA.get(`/api/v1/environments/${environmentId}/entities`);
    expect(r.status).toBe(200);
    const byName = new Map<string, any>(r.body.entities.map((e: any) => [e.entity, e]));
    expect([...byName.keys()].sort()).toEqual([
      "public.accounts",
      "public.contacts",
      "public.people",
      "public.teams",
    ]);
    const accounts = byName.get("public.accounts");
    expect(accounts.primaryKey).toEqual(["id"]);
    expect(accounts.fields.map((f: any) => [f.name, f.type, f.nullable])).toEqual([
      ["id", "bigint", false],
      ["name", "text", false],
      ["parent_id", "bigint", true],
    ]);
    expect(accounts.references).toEqual([
      expect.objectContaining({
        fields: ["parent_id"],
        referencedEntity: "public.accounts",
        referencedFields: ["id"],
      }),
    ]);
    expect(byName.get("public.teams").references).toEqual([
      expect.objectContaining({ fields: ["lead_id"], referencedEntity: "public.people" }),
    ]);
    expect(byName.get("public.people").references).toEqual([
      expect.objectContaining({ fields: ["team_id"], referencedEntity: "public.teams" }),
    ]);
  });

  it("tests the connection with a live round trip and records its latency", async () => {
    const r = await orgA.post(`/api/v1/environments/${environmentId}/test`);
    expect(r.status).toBe(200);
    expect(r.body.ok).toBe(true);
    expect(r.body.roundTripMs).toBeGreaterThanOrEqual(0);
    expect(r.body.serverVersion).toMatch(/^1\d/);
    const env = await environment();
    expect(env.lastTestAt).not.toBeNull();
    expect(env.lastTestLatencyMs).toBe(r.body.roundTripMs);
  });

  it("serves Prometheus metrics: connected agents and environments by health, no tenant labels", async () => {
    // Closed without the token: its counters name organisations and pipelines.
    expect((await fetch(`${cp.httpUrl}/metrics`)).status).toBe(401);
    const response = await fetch(`${cp.httpUrl}/metrics`, { headers: METRICS_HEADERS });
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toMatch(/^dray_agents_connected\{service="dray-control-plane"\} 1$/m);
    expect(text).toMatch(/^dray_environments\{health="healthy",service="dray-control-plane"\} 1$/m);
    expect(text).toMatch(
      /^dray_http_requests_total\{method="GET",status="2xx",service="dray-control-plane"\} \d+$/m,
    );
    expect(text).not.toContain(orgAId);
  });

  it("keeps tenants apart and answers bad requests with the error shape", async () => {
    const other = await orgB.get(`/api/v1/environments/${environmentId}`);
    expect(other.status).toBe(404);
    expect(other.body.error.code).toBe("not_found");
    expect((await orgB.get(`/api/v1/environments/${environmentId}/entities`)).status).toBe(404);
    expect((await orgB.post(`/api/v1/environments/${environmentId}/test`)).status).toBe(404);
    expect((await orgB.get("/api/v1/environments")).body.environments).toEqual([]);
    const anonymous = await apiClient(cp.httpUrl).get("/api/v1/environments");
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.error.code).toBe("unauthenticated");
    expect((await apiClient(cp.httpUrl, "dray_not_a_real_token").get("/api/v1/environments")).status).toBe(
      401,
    );
    const malformed = await orgA.postRaw("/api/v1/environments", "{not json");
    expect(malformed.status).toBe(400);
    expect(malformed.body.error).toMatchObject({ code: "invalid_argument" });
    const missingName = await orgA.post("/api/v1/environments", { platform: "postgres" });
    expect(missingName.status).toBe(400);
    expect(missingName.body.error.code).toBe("invalid_argument");
    expect(missingName.body.error.message).toMatch(/name/);
  });

  it("turns unhealthy within four intervals after SIGKILL, and healthy again after a restart without a token", async () => {
    const agent = agents[0]!;
    await agent.stop("SIGKILL");
    const killed = Date.now();
    const down = await eventually(async () => {
      const e = await environment();
      return e.health === "unhealthy" ? e : undefined;
    }, 10 * INTERVAL);
    expect(Date.now() - killed).toBeLessThanOrEqual(4 * INTERVAL);
    expect(down.healthReason).toMatch(/no heartbeat/);

    const restarted = startAgentProcess(agentEnv());
    agents.push(restarted);
    await eventually(async () => ((await environment()).health === "healthy" ? true : undefined), 15_000);
    expect(restarted.output()).not.toMatch(/enrolled/);
  });

  it("published a health event for each transition", async () => {
    await eventually(async () => (healthEvents.length >= 3 ? true : undefined), 5_000);
    expect(healthEvents.map((e) => `${e.previous}->${e.health}`)).toEqual([
      "unknown->healthy",
      "healthy->unhealthy",
      "unhealthy->healthy",
    ]);
    expect(healthEvents[1]!.reason).toMatch(/no heartbeat/);
  });

  it("drains on SIGTERM: exits 0 and the environment reports the shutdown at once", async () => {
    const agent = agents[agents.length - 1]!;
    const code = await agent.stop("SIGTERM");
    expect(code).toBe(0);
    expect(agent.output()).toMatch(/"to":"draining"/);
    const env = await eventually(async () => {
      const e = await environment();
      return e.health === "unhealthy" ? e : undefined;
    }, 2 * INTERVAL);
    expect(env.healthReason).toMatch(/shutting down/);
    expect(env.agent.connected).toBe(false);
  });
});
