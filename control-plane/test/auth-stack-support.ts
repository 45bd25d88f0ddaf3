/**
 * A whole control plane started in-process on ephemeral ports (its own test
 * database, in-process bus), for the gateway-authentication and TLS tests.
 */
import { request as httpsRequest } from "node:https";
import { loadConfig } from "../src/config.js";
import { type ControlPlane, startControlPlane } from "../src/control-plane.js";
import { createTestDatabase, type LogLine, recordingLogger } from "./api-test-harness.js";

/** A running control plane and what a test needs to talk to it. */
export interface AuthStack {
  controlPlane: ControlPlane;
  lines: LogLine[];
  systemToken: string;
  httpBase: string;
  grpcAddress: string;
  /** JSON request to the HTTP API (HTTPS with `ca` when the stack serves TLS). */
  api(method: string, path: string, token: string, json?: unknown): Promise<{ status: number; body: any }>;
  /** An organisation with an environment; returns the environment's enrollment token. */
  enrollmentToken(name: string): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Starts a control plane with `env` on top of a fresh store database and ports 0.
 * `ca` is the CA the HTTP client trusts when `DRAY_HTTP_TLS_*` are set.
 */
export async function startAuthStack(env: Record<string, string> = {}, ca?: Buffer): Promise<AuthStack> {
  const database = await createTestDatabase();
  const lines: LogLine[] = [];
  const config = loadConfig(
    {
      DRAY_DATABASE_URL: database.url,
      DRAY_HTTP_PORT: "0",
      DRAY_GRPC_PORT: "0",
      DRAY_BIND_HOST: "127.0.0.1",
      DRAY_HEARTBEAT_INTERVAL_MS: "1000",
      DRAY_LOG_LEVEL: "debug",
      ...env,
    },
    { replicaId: "auth-stack" },
  );
  const controlPlane = await startControlPlane(config, recordingLogger(lines));
  const scheme = config.httpTls ? "https" : "http";
  const httpBase = `${scheme}://127.0.0.1:${controlPlane.httpPort}`;
  const systemToken = controlPlane.generatedAdminToken!;

  const api: AuthStack["api"] = async (method, path, token, json) => {
    const body = json === undefined ? undefined : JSON.stringify(json);
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (!config.httpTls) {
      const res = await fetch(`${httpBase}${path}`, { method, headers, ...(body ? { body } : {}) });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    }
    return new Promise((resolve, reject) => {
      const req = httpsRequest(`${httpBase}${path}`, { method, headers, ...(ca ? { ca } : {}) }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          text += chunk;
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined }),
        );
      });
      req.on("error", reject);
      req.end(body);
    });
  };

  return {
    controlPlane,
    lines,
    systemToken,
    httpBase,
    grpcAddress: `127.0.0.1:${controlPlane.grpcPort}`,
    api,
    async enrollmentToken(name) {
      const org = await api("POST", "/api/v1/organisations", systemToken, { name });
      const token = await api("POST", "/api/v1/tokens", systemToken, {
        name: "ops",
        role: "operator",
        organisationId: org.body.id,
      });
      const environment = await api("POST", "/api/v1/environments", token.body.token, { name: "qa" });
      if (environment.status !== 201) throw new Error(`environment: ${JSON.stringify(environment.body)}`);
      return environment.body.enrollmentToken as string;
    },
    async stop() {
      await controlPlane.stop();
      await database.drop();
    },
  };
}
