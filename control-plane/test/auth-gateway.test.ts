/**
 * Issue 9, security 3 and 6: the agent gateway answers malformed or wrong
 * credentials with UNAUTHENTICATED and no internals, logs each refusal once at
 * debug level without the credential, and limits failed checks per address.
 */
import { randomUUID } from "node:crypto";
import { silentLogger } from "@dray/common";
import { agentGatewayDefinition, Platform } from "@dray/proto";
import { ChannelCredentials } from "@grpc/grpc-js";
import { type Channel, ClientError, createChannel, createClient, Metadata, Status } from "nice-grpc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toServerError } from "../src/gateway/gateway-service.js";
import { type AuthStack, startAuthStack } from "./auth-stack-support.js";

let stack: AuthStack;
let channel: Channel;
let client: ReturnType<typeof createClient<typeof agentGatewayDefinition>>;

beforeAll(async () => {
  stack = await startAuthStack();
  channel = createChannel(stack.grpcAddress, ChannelCredentials.createInsecure());
  client = createClient(agentGatewayDefinition, channel);
});
afterAll(async () => {
  channel?.close();
  await stack?.stop();
});

const withCredential = (credential: string) => ({
  metadata: Metadata({ authorization: `Bearer ${credential}` }),
});

/** The gRPC error of a call, or undefined when it succeeded. */
async function errorOf(call: () => Promise<unknown>): Promise<ClientError | undefined> {
  try {
    await call();
    return undefined;
  } catch (error) {
    if (error instanceof ClientError) return error;
    throw error;
  }
}

/** Calls every authenticated method with `credential`; returns their errors. */
async function everyMethod(credential: string): Promise<(ClientError | undefined)[]> {
  const options = withCredential(credential);
  const stream = async () => {
    for await (const _ of client.openWorkStream({ maxConcurrentTasks: 1 }, options)) break;
  };
  return Promise.all([
    errorOf(() => client.heartbeat({ databaseReachable: true }, options)),
    errorOf(() => client.completeTask({ taskId: "t" }, options)),
    errorOf(() => client.drain({ reason: "test" }, options)),
    errorOf(stream),
  ]);
}

const INTERNALS = /select|failed query|credential_hash|"agents"|postgres|syntax|uuid/i;

describe("agent credentials at the gateway", () => {
  let credential: string;

  it("enrolls and heartbeats with a real credential", async () => {
    const enrolled = await client.enroll({
      enrollmentToken: await stack.enrollmentToken("gw-auth"),
      agent: { name: "a", version: "1.0.0", platform: Platform.POSTGRES, hostname: "h" },
    });
    credential = enrolled.credential;
    expect(credential).toMatch(/^[0-9a-f-]{36}\./);
    await expect(
      client.heartbeat({ databaseReachable: true }, withCredential(credential)),
    ).resolves.toBeDefined();
  });

  it("answers UNAUTHENTICATED without internals for every malformed form, logged once at debug level", async () => {
    const secret = credential.slice(credential.indexOf(".") + 1);
    const malformed = [
      `${"-".repeat(36)}.${secret}`,
      "x.y",
      `not-a-uuid-not-a-uuid-not-a-uuid-xx.${secret}`,
      `${randomUUID()}.${secret}`,
    ];
    for (const value of malformed) {
      const before = stack.lines.length;
      const errors = await everyMethod(value);
      for (const error of errors) {
        expect(error?.code, value).toBe(Status.UNAUTHENTICATED);
        expect(error?.details).not.toMatch(INTERNALS);
      }
      const logged = stack.lines.slice(before).filter((l) => l.message === "agent authentication refused");
      expect(logged).toHaveLength(4);
      for (const line of logged) {
        expect(line.level).toBe("debug");
        expect(JSON.stringify(line.fields)).not.toContain(secret);
      }
      expect(stack.lines.slice(before).filter((l) => l.level === "error")).toEqual([]);
    }
    // The real credential still works.
    await expect(
      client.heartbeat({ databaseReachable: true }, withCredential(credential)),
    ).resolves.toBeDefined();
  });

  it("answers UNAUTHENTICATED to an enrollment with a wrong or oversized token", async () => {
    for (const enrollmentToken of ["dray_enr_wrong", "x".repeat(100_000)]) {
      const error = await errorOf(() =>
        client.enroll({ enrollmentToken, agent: { name: "a", version: "1", platform: Platform.POSTGRES } }),
      );
      expect(error?.code).toBe(Status.UNAUTHENTICATED);
      expect(error?.details).not.toMatch(INTERNALS);
    }
  });

  // Runs last: it exhausts the failure budget of 127.0.0.1 in this control plane.
  it("answers RESOURCE_EXHAUSTED to an address after 30 failed checks, sparing credentials that worked from it", async () => {
    const failures: (number | undefined)[] = [];
    for (let i = 0; i < 40; i++) {
      const error = await errorOf(() =>
        client.heartbeat({}, withCredential(`${randomUUID()}.abcdefghijklmnopqrstuvwxyz`)),
      );
      failures.push(error?.code);
    }
    expect(failures.filter((c) => c === Status.RESOURCE_EXHAUSTED).length).toBeGreaterThan(0);
    expect(failures.every((c) => c === Status.UNAUTHENTICATED || c === Status.RESOURCE_EXHAUSTED)).toBe(true);
    expect(failures.at(-1)).toBe(Status.RESOURCE_EXHAUSTED);
    const limited = await errorOf(() =>
      client.heartbeat({}, withCredential(`${randomUUID()}.abcdefghijklmnopqrstuvwxyz`)),
    );
    expect(limited?.details).toMatch(/too many failed authentications.*retry in \d+ s/);
    // The agent whose credential already worked from this address is not locked out.
    await expect(
      client.heartbeat({ databaseReachable: true }, withCredential(credential)),
    ).resolves.toBeDefined();

    // One limiter per replica: the HTTP API refuses the address too, with Retry-After, for a token
    // not seen from it yet, and still serves the system token that was used from it.
    const org = await stack.api("POST", "/api/v1/organisations", stack.systemToken, { name: "fresh" });
    const created = await stack.api("POST", "/api/v1/tokens", stack.systemToken, {
      name: "fresh",
      role: "viewer",
      organisationId: org.body.id,
    });
    expect(created.status).toBe(201);
    const res = await fetch(`${stack.httpBase}/api/v1/environments`, {
      headers: { authorization: `Bearer ${created.body.token}` },
    });
    expect(res.status).toBe(429);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
    expect((await fetch(`${stack.httpBase}/healthz`)).status).toBe(200);
  });
});

describe("toServerError", () => {
  it("hides the text of anything that is not a DrayError", () => {
    const driver = new Error('Failed query: select "agents"."credential_hash" from "agents" where id = $1');
    const error = toServerError(driver, silentLogger);
    expect(error.code).toBe(Status.INTERNAL);
    expect(error.details).not.toMatch(INTERNALS);
    expect(error.details).toContain("internal error");
  });
});
