/**
 * Shared set-up of the API integration tests: a fresh Postgres database per
 * test file, the store opened on it, the app called with `app.request()` (no
 * port), a fake EnvironmentAgents and helpers to make tenants and tokens.
 */
import { randomBytes } from "node:crypto";
import { DrayError, type LogFields, type Logger, silentLogger } from "@dray/common";
import { eq } from "drizzle-orm";
import postgres from "postgres";
import { afterAll, beforeAll, inject } from "vitest";
import { createApiApp } from "../src/api/index.js";
import { ensureSystemAdminToken } from "../src/auth/index.js";
import type { SchemaSnapshot } from "../src/environments/schema-snapshot.js";
import type { ConnectionTest, EnvironmentAgents } from "../src/gateway/environment-agents.js";
import { type Db, environments, openStore, type Store } from "../src/store/index.js";

/** Creates `dray_cp_<random>` next to the test database; `drop()` removes it (forcefully). */
export async function createTestDatabase(): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  const adminUrl = inject("databaseUrl");
  const name = `dray_cp_${randomBytes(6).toString("hex")}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
      try {
        await sql.unsafe(`drop database if exists ${name} with (force)`);
      } finally {
        await sql.end();
      }
    },
  };
}

/** A log line kept by {@link recordingLogger}. */
/**
 * A store on a database of the test file's own, opened before its tests and
 * closed and dropped after them. Read `db` from inside a test or hook.
 */
export function useTestStore(): { readonly db: Db } {
  let store: Store | undefined;
  let drop: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    const database = await createTestDatabase();
    drop = database.drop;
    store = await openStore({ databaseUrl: database.url, dataDir: "memory://", logger: silentLogger });
  });
  afterAll(async () => {
    await store?.close();
    await drop?.();
  });
  return {
    get db() {
      if (!store) throw new Error("the test store is open only inside tests and hooks");
      return store.db;
    },
  };
}

export interface LogLine {
  level: string;
  message: string;
  fields: LogFields;
}

/** A logger that keeps every line, to assert what was (not) logged. */
export function recordingLogger(lines: LogLine[] = [], base: LogFields = {}): Logger & { lines: LogLine[] } {
  const at = (level: string) => (message: string, fields?: LogFields) =>
    void lines.push({ level, message, fields: { ...base, ...fields } });
  return {
    lines,
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: (fields) => recordingLogger(lines, { ...base, ...fields }),
  };
}

/** An EnvironmentAgents double: agents are "connected" by adding ids to `connected`. */
export class FakeAgents implements EnvironmentAgents {
  readonly connected = new Set<string>();
  readonly calls: { method: "testConnection" | "describeSchema"; environmentId: string }[] = [];
  testResult: ConnectionTest = {
    roundTripMs: 12.4,
    databaseLatencyMs: 3,
    serverVersion: "15.8",
    databaseName: "shop",
  };
  snapshot: SchemaSnapshot = sampleSnapshot("fp-1");
  /** When set, the next calls reject with it. */
  failure: Error | undefined;

  isConnected(environmentId: string): boolean {
    return this.connected.has(environmentId);
  }
  async testConnection(environmentId: string): Promise<ConnectionTest> {
    this.calls.push({ method: "testConnection", environmentId });
    this.check(environmentId);
    return this.testResult;
  }
  async describeSchema(environmentId: string): Promise<SchemaSnapshot> {
    this.calls.push({ method: "describeSchema", environmentId });
    this.check(environmentId);
    return this.snapshot;
  }
  private check(environmentId: string): void {
    if (this.failure) throw this.failure;
    if (!this.connected.has(environmentId)) {
      throw new DrayError(
        "unavailable",
        `environment ${environmentId} has no connected agent: start dray-agent with its enrollment token, then retry`,
      );
    }
  }
}

/** A two-entity snapshot (orders → customers). */
export function sampleSnapshot(fingerprint: string): SchemaSnapshot {
  const field = (name: string, type: string, nullable = false) => ({
    name,
    type,
    nullable,
    hasDefault: false,
    generated: false,
  });
  return {
    capturedAt: "2026-05-01T10:00:00.000Z",
    fingerprint,
    entities: [
      {
        entity: "public.customers",
        schema: "public",
        name: "customers",
        fields: [field("id", "bigint"), field("email", "text", true)],
        primaryKey: ["id"],
        references: [],
        estimatedRows: 1200,
      },
      {
        entity: "public.orders",
        schema: "public",
        name: "orders",
        fields: [field("id", "bigint"), field("customer_id", "bigint")],
        primaryKey: ["id"],
        references: [
          {
            name: "orders_customer_fk",
            fields: ["customer_id"],
            referencedEntity: "public.customers",
            referencedFields: ["id"],
          },
        ],
        estimatedRows: 5000,
      },
    ],
  };
}

/** An answer of the app, body parsed as JSON when there is one. */
export interface ApiAnswer {
  status: number;
  headers: Headers;
  body: any;
}

/** Options of {@link ApiHarness.call}. */
export interface CallOptions {
  token?: string | undefined;
  /** Sent as JSON. */
  json?: unknown;
  /** Sent as is (with Content-Type: application/json unless `headers` says otherwise). */
  raw?: string;
  headers?: Record<string, string>;
}

/** A store, the app over it and the system-admin token. */
export interface ApiHarness {
  store: Store;
  agents: FakeAgents;
  logger: ReturnType<typeof recordingLogger>;
  systemToken: string;
  app: ReturnType<typeof createApiApp>;
  /** The app's clock: real time unless a test pins `now` (set it back to undefined after). */
  clock: { now: Date | undefined };
  call(method: string, path: string, options?: CallOptions): Promise<ApiAnswer>;
  /** Creates an organisation and one token per role in it. */
  tenant(name: string): Promise<{ id: string; admin: string; operator: string; viewer: string }>;
  close(): Promise<void>;
}

/** Test configuration of the API. */
export const TEST_CONFIG = {
  enrollmentTokenTtlMs: 3_600_000,
  defaultMonthlyRecordLimit: 50_000,
  heartbeatIntervalMs: 1_000,
};

/**
 * Opens the store (`databaseUrl`, or PGlite in memory when undefined), makes a
 * system-admin token and builds the app.
 */
export async function openApiHarness(
  databaseUrl: string | undefined,
  options: { readiness?: () => Promise<boolean> } = {},
): Promise<ApiHarness> {
  const store = await openStore({ databaseUrl, dataDir: "memory://", logger: silentLogger });
  const { generated } = await ensureSystemAdminToken(store.db, undefined, silentLogger);
  const agents = new FakeAgents();
  const logger = recordingLogger();
  const clock: { now: Date | undefined } = { now: undefined };
  const app = createApiApp({
    db: store.db,
    agents,
    logger,
    config: TEST_CONFIG,
    now: () => (clock.now ? new Date(clock.now) : new Date()),
    ...(options.readiness ? { readiness: options.readiness } : {}),
  });

  const call = async (method: string, path: string, o: CallOptions = {}): Promise<ApiAnswer> => {
    const headers: Record<string, string> = { ...o.headers };
    if (o.token !== undefined) headers.authorization = `Bearer ${o.token}`;
    let body: string | undefined;
    if (o.json !== undefined || o.raw !== undefined) {
      body = o.raw ?? JSON.stringify(o.json);
      if (!Object.keys(headers).some((h) => h.toLowerCase() === "content-type"))
        headers["content-type"] = "application/json";
    }
    const res = await app.request(path, { method, headers, ...(body === undefined ? {} : { body }) });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
  };

  const systemToken = generated!;
  return {
    store,
    agents,
    logger,
    systemToken,
    app,
    clock,
    call,
    async tenant(name) {
      const org = await call("POST", "/api/v1/organisations", { token: systemToken, json: { name } });
      if (org.status !== 201) throw new Error(`tenant ${name}: ${org.status} ${JSON.stringify(org.body)}`);
      const token = async (role: string) => {
        const res = await call("POST", "/api/v1/tokens", {
          token: systemToken,
          json: { name: `${name} ${role}`, role, organisationId: org.body.id },
        });
        if (res.status !== 201) throw new Error(`token ${role}: ${res.status} ${JSON.stringify(res.body)}`);
        return res.body.token as string;
      };
      return {
        id: org.body.id,
        admin: await token("admin"),
        operator: await token("operator"),
        viewer: await token("viewer"),
      };
    },
    close: () => store.close(),
  };
}

/** Asserts nothing about the shape; returns the error object of an error answer for terse checks. */
export function errorOf(answer: ApiAnswer): { code: string; message: string; details?: unknown } {
  if (
    !answer.body?.error ||
    typeof answer.body.error.code !== "string" ||
    typeof answer.body.error.message !== "string"
  ) {
    throw new Error(`expected the error shape, got ${answer.status} ${JSON.stringify(answer.body)}`);
  }
  return answer.body.error;
}

/**
 * Creates an environment through the API as `tenant`'s operator and, when a
 * snapshot is given, stores it as the environment's cached entity snapshot
 * (as if its agent had described the database). Returns the environment id.
 */
export async function createEnvironmentWithSnapshot(
  h: ApiHarness,
  tenant: { operator: string },
  name: string,
  snapshot?: SchemaSnapshot,
): Promise<string> {
  const res = await h.call("POST", "/api/v1/environments", { token: tenant.operator, json: { name } });
  if (res.status !== 201) throw new Error(`cannot create environment ${name}: ${JSON.stringify(res.body)}`);
  const id: string = res.body.environment.id;
  if (snapshot) {
    await h.store.db
      .update(environments)
      .set({
        schemaSnapshot: snapshot,
        schemaCapturedAt: new Date(snapshot.capturedAt),
        schemaFingerprint: snapshot.fingerprint,
      })
      .where(eq(environments.id, id));
  }
  return id;
}
