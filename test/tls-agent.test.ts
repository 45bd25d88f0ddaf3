/**
 * Issue 9, security 4, end to end: a real control plane requiring client
 * certificates, and real dray-agent processes. The agent with a certificate
 * from the configured CA enrols and turns its environment healthy; one with an
 * unrelated self-signed certificate never enrols.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { makeTestCertificates, type TestCertificates } from "../control-plane/test/tls-certificates.js";
import { type ApiClient, apiClient, eventually } from "./support/api-client.js";
import { createTestDatabase, type TestDatabase } from "./support/databases.js";
import { type DrayProcess, startAgentProcess, startControlPlaneProcess } from "./support/processes.js";

let certs: TestCertificates;
let store: TestDatabase;
let envDb: TestDatabase;
let cp: Awaited<ReturnType<typeof startControlPlaneProcess>>;
let org: ApiClient;
const agents: DrayProcess[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  certs = makeTestCertificates();
  const baseUrl = inject("databaseUrl");
  [store, envDb] = await Promise.all([
    createTestDatabase(baseUrl, "dray_tls_store"),
    createTestDatabase(baseUrl, "dray_tls_env"),
  ]);
  const adminToken = `dray_admin_${randomBytes(16).toString("hex")}`;
  cp = await startControlPlaneProcess({
    DRAY_DATABASE_URL: store.url,
    DRAY_ADMIN_TOKEN: adminToken,
    DRAY_HEARTBEAT_INTERVAL_MS: "1000",
    DRAY_GRPC_TLS_CERT_FILE: certs.serverCert,
    DRAY_GRPC_TLS_KEY_FILE: certs.serverKey,
    DRAY_GRPC_TLS_CLIENT_CA_FILE: certs.caCert,
  });
  const admin = apiClient(cp.httpUrl, adminToken);
  const o = await admin.post("/api/v1/organisations", { name: "TLS" });
  const t = await admin.post("/api/v1/tokens", { name: "ops", role: "operator", organisationId: o.body.id });
  org = apiClient(cp.httpUrl, t.body.token);
}, 90_000);

afterAll(async () => {
  await Promise.allSettled(agents.map((a) => a.stop("SIGKILL")));
  await cp?.stop("SIGTERM");
  await Promise.allSettled([store?.drop(), envDb?.drop()]);
  await Promise.allSettled(dirs.map((d) => rm(d, { recursive: true, force: true })));
  certs?.remove();
});

async function newEnvironment(name: string): Promise<{ id: string; enrollmentToken: string }> {
  const created = await org.post("/api/v1/environments", { name, platform: "postgres" });
  expect(created.status).toBe(201);
  return { id: created.body.environment.id, enrollmentToken: created.body.enrollmentToken };
}

async function agentWith(
  enrollmentToken: string,
  identity: { cert: string; key: string },
): Promise<DrayProcess> {
  const stateDir = await mkdtemp(join(tmpdir(), "dray-tls-agent-"));
  dirs.push(stateDir);
  const agent = startAgentProcess({
    DRAY_CONTROL_PLANE_URL: cp.grpcUrl.replace("http://", "https://"),
    DRAY_ENROLLMENT_TOKEN: enrollmentToken,
    DRAY_AGENT_DATABASE_URL: envDb.url,
    DRAY_AGENT_STATE_DIR: stateDir,
    DRAY_AGENT_TLS_CA_FILE: certs.caCert,
    DRAY_AGENT_TLS_CERT_FILE: identity.cert,
    DRAY_AGENT_TLS_KEY_FILE: identity.key,
  });
  agents.push(agent);
  return agent;
}

describe("mutual TLS with real agents", () => {
  it("an agent with a certificate from the client CA enrols and turns healthy", async () => {
    const env = await newEnvironment("good");
    const agent = await agentWith(env.enrollmentToken, { cert: certs.clientCert, key: certs.clientKey });
    await agent.waitFor(/"msg":"enrolled"/, 20_000);
    await eventually(async () => {
      const r = await org.get(`/api/v1/environments/${env.id}`);
      return r.body.health === "healthy" ? r.body : undefined;
    }, 15_000);
  });

  it("an agent with an unrelated self-signed certificate never enrols", async () => {
    const env = await newEnvironment("stranger");
    const agent = await agentWith(env.enrollmentToken, { cert: certs.strangerCert, key: certs.strangerKey });
    // The handshake fails, so the agent sees the gateway as unreachable and keeps retrying.
    await agent.waitFor(/UNAVAILABLE[^\n]*retrying enrolment/, 20_000);
    expect(agent.output()).not.toMatch(/"msg":"enrolled"/);
    const r = await org.get(`/api/v1/environments/${env.id}`);
    expect(r.body.health).toBe("unknown");
    expect(r.body.agent?.connected ?? false).toBe(false);
  });
});
