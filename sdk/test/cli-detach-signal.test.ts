/**
 * `dray watch` and `dray run` say "Ctrl-C detaches" only once Ctrl-C does: a Ctrl-C the
 * moment the line appears detaches (exit code 130, the run goes on) instead of killing the
 * CLI with the signal's default action. In process, against the control plane's API app over
 * a test database, with an execution left in progress (no executor runs).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createApiApp } from "../../control-plane/src/api/index.js";
import { createMemoryEventBus } from "../../control-plane/src/events/memory-event-bus.js";
import { environments, newId } from "../../control-plane/src/store/index.js";
import {
  type ApiHarness,
  createTestDatabase,
  openApiHarness,
  TEST_CONFIG,
} from "../../control-plane/test/api-test-harness.js";
import { seedRunningExecution } from "../../control-plane/test/execution-fixtures.js";
import { runCli } from "../src/cli/main.js";

const BASE = "http://dray.test";

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let h: ApiHarness;
let app: ReturnType<typeof createApiApp>;
let operator: string;
let token: string;

beforeAll(async () => {
  database = await createTestDatabase();
  h = await openApiHarness(database.url);
  app = createApiApp({
    db: h.store.db,
    agents: h.agents,
    logger: h.logger,
    config: TEST_CONFIG,
    bus: createMemoryEventBus(),
  });
  const org = await h.tenant("cli-detach");
  operator = org.operator;
  const [sourceEnvironmentId, targetEnvironmentId] = [newId(), newId()];
  await h.store.db.insert(environments).values(
    [sourceEnvironmentId, targetEnvironmentId].map((id, i) => ({
      id,
      organisationId: org.id,
      name: i === 0 ? "detach-src" : "detach-dst",
      platform: "postgres" as const,
    })),
  );
  const { executionId } = await seedRunningExecution(h.store.db, {
    organisationId: org.id,
    sourceEnvironmentId,
    targetEnvironmentId,
  });
  token = `pt-${executionId}`;
});

/**
 * The API app as `fetch`. A response body ends when the request's signal aborts, as a
 * socket's does (the app's event stream would otherwise stay open in process).
 */
const appFetch: typeof fetch = async (input, init) => {
  const response = await app.fetch(new Request(input, init));
  const signal = init?.signal;
  if (!signal || !response.body) return response;
  const body = response.body.pipeThrough(new TransformStream(), { signal });
  return new Response(body, response);
};

afterAll(async () => {
  vi.unstubAllGlobals();
  await h?.close();
  await database?.drop();
});

describe("Ctrl-C right after the line that says it detaches", () => {
  it("dray watch: the handler is there when the line is, and the Ctrl-C detaches (exit 130)", async () => {
    vi.stubGlobal("fetch", appFetch);
    const before = process.listenerCount("SIGINT");
    let out = "";
    let err = "";
    let listenersAtLine: number | undefined;
    const stdout = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
      const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString();
      out += text;
      if (text.includes("Ctrl-C detaches") && listenersAtLine === undefined) {
        listenersAtLine = process.listenerCount("SIGINT");
        // The user's Ctrl-C, as soon as the line is on the screen.
        setImmediate(() => process.emit("SIGINT"));
      }
      return true;
    });
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
      err += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString();
      return true;
    });
    let code: number;
    try {
      code = await runCli(["watch", token], {
        DRAY_CONFIG_DIR: "/nonexistent-dray",
        NO_COLOR: "1",
        DRAY_URL: BASE,
        DRAY_TOKEN: operator,
      });
    } finally {
      stdout.mockRestore();
      stderr.mockRestore();
      vi.unstubAllGlobals();
    }
    expect(out).toContain(`watching copy-`);
    expect(listenersAtLine).toBe(before + 1);
    expect(code).toBe(130);
    expect(err).toContain(`is still running; \`dray watch ${token}\` to return`);
    expect(process.listenerCount("SIGINT")).toBe(before);
  });
});
