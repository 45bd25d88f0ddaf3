/**
 * Issue 9, security 4: with a client CA configured the gateway enrols only
 * agents whose certificate chains to it, and the HTTP API serves HTTPS.
 */
import { request as httpsRequest } from "node:https";
import { agentGatewayDefinition, Platform } from "@dray/proto";
import { ChannelCredentials } from "@grpc/grpc-js";
import { type Channel, ClientError, createChannel, createClient, Metadata, Status } from "nice-grpc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AuthStack, startAuthStack } from "./auth-stack-support.js";
import { makeTestCertificates, type TestCertificates } from "./tls-certificates.js";

let certs: TestCertificates;
let stack: AuthStack;
const channels: Channel[] = [];

beforeAll(async () => {
  certs = makeTestCertificates();
  stack = await startAuthStack(
    {
      DRAY_GRPC_TLS_CERT_FILE: certs.serverCert,
      DRAY_GRPC_TLS_KEY_FILE: certs.serverKey,
      DRAY_GRPC_TLS_CLIENT_CA_FILE: certs.caCert,
      DRAY_HTTP_TLS_CERT_FILE: certs.serverCert,
      DRAY_HTTP_TLS_KEY_FILE: certs.serverKey,
    },
    certs.read(certs.caCert),
  );
});
afterAll(async () => {
  for (const channel of channels) channel.close();
  await stack?.stop();
  certs?.remove();
});

/** A gateway client trusting the test CA, presenting `identity` when given (as the agent's gateway-client does). */
function gatewayClient(identity?: { cert: string; key: string }) {
  const credentials = ChannelCredentials.createSsl(
    certs.read(certs.caCert),
    identity ? certs.read(identity.key) : null,
    identity ? certs.read(identity.cert) : null,
  );
  const channel = createChannel(`https://${stack.grpcAddress}`, credentials, {
    "grpc.ssl_target_name_override": "localhost",
  });
  channels.push(channel);
  return createClient(agentGatewayDefinition, channel);
}

async function enroll(client: ReturnType<typeof gatewayClient>, enrollmentToken: string) {
  return client.enroll(
    { enrollmentToken, agent: { name: "tls", version: "1.0.0", platform: Platform.POSTGRES, hostname: "h" } },
    { signal: AbortSignal.timeout(10_000) },
  );
}

describe("mutual TLS at the agent gateway", () => {
  it("enrols and heartbeats an agent whose certificate chains to the client CA", async () => {
    const client = gatewayClient({ cert: certs.clientCert, key: certs.clientKey });
    const enrolled = await enroll(client, await stack.enrollmentToken("tls-good"));
    expect(enrolled.credential).toBeTruthy();
    await expect(
      client.heartbeat(
        { databaseReachable: true },
        { metadata: Metadata({ authorization: `Bearer ${enrolled.credential}` }) },
      ),
    ).resolves.toBeDefined();
  });

  it("refuses an unrelated self-signed client certificate and a client without one", async () => {
    const enrollmentToken = await stack.enrollmentToken("tls-bad");
    for (const client of [
      gatewayClient({ cert: certs.strangerCert, key: certs.strangerKey }),
      gatewayClient(),
    ]) {
      const error = await enroll(client, enrollmentToken).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ClientError);
      expect((error as ClientError).code).toBe(Status.UNAVAILABLE);
    }
    // The token was never used: a good agent can still enrol with it.
    const good = gatewayClient({ cert: certs.clientCert, key: certs.clientKey });
    await expect(enroll(good, enrollmentToken)).resolves.toMatchObject({ credential: expect.any(String) });
  });
});

describe("HTTPS for the API", () => {
  it("answers /healthz and the API over TLS", async () => {
    const health = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpsRequest(`${stack.httpBase}/healthz`, { ca: certs.read(certs.caCert) }, (res) => {
        let body = "";
        res.on("data", (chunk) => {
          body += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject);
      req.end();
    });
    expect(stack.httpBase).toMatch(/^https:\/\//);
    expect(health.status).toBe(200);
    expect((await stack.api("GET", "/api/v1/tokens", stack.systemToken)).status).toBe(200);
  });

  it("does not answer plain HTTP", async () => {
    const plain = stack.httpBase.replace("https://", "http://");
    const outcome = await fetch(`${plain}/healthz`, { signal: AbortSignal.timeout(5_000) }).then(
      (res) => res.status,
      () => "refused",
    );
    expect(outcome).not.toBe(200);
  });
});
