import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EntitySnapshot, SchemaSnapshot } from "../src/environments/schema-snapshot.js";
import { pipelineSnapshot } from "../src/executions/start-execution.js";
import { compileExecutorOptions } from "../src/executor/executor-options.js";
import { gatewayAgentPort } from "../src/executor/gateway-agent-port.js";
import { preflight } from "../src/executor/preflight.js";
import type { AgentSessions } from "../src/gateway/agent-sessions.js";
import { environments, pipelines } from "../src/store/index.js";
import {
  type ApiHarness,
  createEnvironmentWithSnapshot,
  createTestDatabase,
  errorOf,
  openApiHarness,
} from "./api-test-harness.js";

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let h: ApiHarness;
let org: Awaited<ReturnType<ApiHarness["tenant"]>>;
const env = { prod: "", qa: "" };

type Field = EntitySnapshot["fields"][number];
const f = (name: string, type: string, extra: Partial<Field> = {}): Field => ({
  name,
  type,
  nullable: true,
  hasDefault: false,
  generated: false,
  ...extra,
});
const ref = (name: string, fields: string[], referencedEntity: string, referencedFields: string[]) => ({
  name,
  fields,
  referencedEntity,
  referencedFields,
});

/**
 * customers (id PK) ← orders.customer_id ← order_lines.order_id → orders.id;
 * accounts.code (NOT NULL, referenced by contacts.account_code); tokens keyed by
 * a unique NOT NULL token (row key, no primary key).
 */
const entities: EntitySnapshot[] = [
  {
    entity: "public.customers",
    schema: "public",
    name: "customers",
    fields: [
      f("id", "bigint", { nullable: false }),
      f("email", "character varying(200)", { nullable: false }),
      f("name", "text"),
      f("phone", "text"),
      f("born", "date"),
      f("tags", "text[]"),
      f("profile", "jsonb"),
      f("search", "tsvector", { generated: true }),
      f("balance", "numeric(12,2)"),
    ],
    primaryKey: ["id"],
    references: [],
    estimatedRows: 10,
  },
  {
    entity: "public.orders",
    schema: "public",
    name: "orders",
    fields: [f("id", "bigint", { nullable: false }), f("customer_id", "bigint", { nullable: false })],
    primaryKey: ["id"],
    references: [ref("orders_customer_id_fkey", ["customer_id"], "public.customers", ["id"])],
    estimatedRows: 20,
  },
  {
    entity: "public.order_lines",
    schema: "public",
    name: "order_lines",
    fields: [f("id", "bigint", { nullable: false }), f("order_id", "bigint", { nullable: false })],
    primaryKey: ["id"],
    references: [ref("order_lines_order_id_fkey", ["order_id"], "public.orders", ["id"])],
    estimatedRows: 40,
  },
  {
    entity: "public.accounts",
    schema: "public",
    name: "accounts",
    fields: [f("id", "integer", { nullable: false }), f("code", "text", { nullable: false })],
    primaryKey: ["id"],
    references: [],
    estimatedRows: 5,
  },
  {
    entity: "public.contacts",
    schema: "public",
    name: "contacts",
    fields: [f("id", "integer", { nullable: false }), f("account_code", "text")],
    primaryKey: ["id"],
    references: [ref("contacts_account_code_fkey", ["account_code"], "public.accounts", ["code"])],
    estimatedRows: 8,
  },
  {
    entity: "public.tokens",
    schema: "public",
    name: "tokens",
    fields: [f("token", "text", { nullable: false }), f("note", "text")],
    primaryKey: [],
    rowKey: ["token"],
    references: [],
    estimatedRows: 3,
  },
];
const snapshot: SchemaSnapshot = { capturedAt: "2026-05-01T10:00:00.000Z", fingerprint: "fp-t", entities };
const ALL = entities.map((e) => e.entity);

type Rule = {
  entity: string | { schema: string; table: string };
  field: string;
  transformer: string;
  options?: unknown;
};

beforeAll(async () => {
  database = await createTestDatabase();
  h = await openApiHarness(database.url);
  org = await h.tenant("transform");
  env.prod = await createEnvironmentWithSnapshot(h, org, "prod", snapshot);
  env.qa = await createEnvironmentWithSnapshot(h, org, "qa", snapshot);
});
afterAll(async () => {
  await h?.close();
  await database?.drop();
});

let counter = 0;
const create = (transformations: Rule[] | undefined, extra: Record<string, unknown> = {}) =>
  h.call("POST", "/api/v1/pipelines", {
    token: org.operator,
    json: {
      name: `p${++counter}`,
      sourceEnvironmentId: env.prod,
      targetEnvironmentId: env.qa,
      writeStrategy: "insert",
      entities: ALL,
      action: "transform",
      ...(transformations ? { transformations } : {}),
      ...extra,
    },
  });

/** Expects a 400 whose message names the rule and contains every part. */
async function refused(transformations: Rule[], rule: string, ...parts: string[]) {
  const res = await create(transformations);
  expect(res.status, JSON.stringify(res.body)).toBe(400);
  const error = errorOf(res);
  expect(error.code).toBe("invalid_argument");
  expect(error.message).toContain(rule);
  for (const part of parts) expect(error.message).toContain(part);
  return error;
}

const GOOD: Rule[] = [
  { entity: "public.customers", field: "email", transformer: "email", options: { domain: "example.org" } },
  {
    entity: { schema: "public", table: "customers" },
    field: "phone",
    transformer: "regexp_replace",
    options: { pattern: "\\d{4}$", replacement: "0000" },
  },
  { entity: "public.customers", field: "id", transformer: "permute" },
  { entity: "public.accounts", field: "code", transformer: "hash", options: { length: 16 } },
  { entity: "public.customers", field: "name", transformer: "full_name", options: { locale: "fr" } },
  {
    entity: "public.customers",
    field: "tags",
    transformer: "array_each",
    options: { transformer: { name: "city" } },
  },
  {
    entity: "public.customers",
    field: "profile",
    transformer: "json_path",
    options: { path: "$.email", transformer: { name: "email" } },
  },
];

describe("transform pipelines", () => {
  it("saves transformations, carries key transformers over to referencing fields and shows them", async () => {
    const res = await create(GOOD);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.action).toBe("transform");
    expect(res.body.transformations).toEqual(
      GOOD.map((r) => ({ ...r, entity: "public.customers", options: r.options ?? {} })).map((r, i) =>
        i === 3 ? { ...r, entity: "public.accounts" } : r,
      ),
    );
    const id = res.body.id as string;
    const [row] = await h.store.db.select().from(pipelines).where(eq(pipelines.id, id));
    expect(row!.transformations[2]).toEqual({
      entity: "public.customers",
      field: "id",
      transformer: "permute",
      options: {},
    });

    const view = await h.call("GET", `/api/v1/pipelines/${id}`, { token: org.viewer });
    expect(view.status).toBe(200);
    expect(view.body.effectiveTransformations).toEqual(
      expect.arrayContaining([
        { entity: "public.customers", field: "id", transformer: "permute", options: {}, kind: "bijective" },
        {
          entity: "public.orders",
          field: "customer_id",
          transformer: "permute",
          options: {},
          kind: "bijective",
          propagatedFrom: "public.customers.id",
        },
        {
          entity: "public.contacts",
          field: "account_code",
          transformer: "hash",
          options: { length: 16 },
          kind: "unique",
          propagatedFrom: "public.accounts.code",
        },
      ]),
    );

    const plan = await h.call("GET", `/api/v1/pipelines/${id}/plan`, { token: org.viewer });
    expect(plan.status, JSON.stringify(plan.body)).toBe(200);
    expect(plan.body.blocking).toEqual([]);
    const of = (entity: string) =>
      (plan.body.entities as { entity: string; transformations: unknown[] }[]).find(
        (e) => e.entity === entity,
      )!.transformations;
    expect(of("public.orders")).toEqual([
      {
        field: "customer_id",
        transformer: "permute",
        options: {},
        kind: "bijective",
        propagatedFrom: "public.customers.id",
      },
    ]);
    expect(of("public.contacts")).toEqual([
      {
        field: "account_code",
        transformer: "hash",
        options: { length: 16 },
        kind: "unique",
        propagatedFrom: "public.accounts.code",
      },
    ]);
    expect(of("public.order_lines")).toEqual([]);
    expect(of("public.customers").map((t) => (t as { field: string }).field)).toEqual([
      "email",
      "phone",
      "id",
      "name",
      "tags",
      "profile",
    ]);

    // The settings frozen into an execution carry the rules as saved.
    expect(pipelineSnapshot(row!).transformations).toEqual(row!.transformations);
  });

  it("carries a transformer down a chain of references", async () => {
    const res = await create([{ entity: "public.orders", field: "id", transformer: "permute" }]);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.effectiveTransformations).toEqual([
      { entity: "public.orders", field: "id", transformer: "permute", options: {}, kind: "bijective" },
      {
        entity: "public.order_lines",
        field: "order_id",
        transformer: "permute",
        options: {},
        kind: "bijective",
        propagatedFrom: "public.orders.id",
      },
    ]);
  });

  it("accepts a referencing field set exactly like the key it references", async () => {
    const res = await create([
      { entity: "public.customers", field: "id", transformer: "permute" },
      { entity: "public.orders", field: "customer_id", transformer: "permute", options: {} },
    ]);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
  });

  it("accepts (a+)+$: RE2 runs it in linear time", async () => {
    const res = await create([
      {
        entity: "public.customers",
        field: "phone",
        transformer: "regexp_replace",
        options: { pattern: "(a+)+$", replacement: "b", flags: "i" },
      },
    ]);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    // Escaped backslashes and classes are not backreferences or lookaround.
    const escaped = await create([
      {
        entity: "public.customers",
        field: "phone",
        transformer: "regexp_replace",
        options: { pattern: "\\\\1[(?=]\\(?!x", replacement: "$1" },
      },
    ]);
    expect(escaped.status, JSON.stringify(escaped.body)).toBe(201);
  });

  it("refuses an unknown transformer, listing the known ones", async () => {
    const error = await refused(
      [{ entity: "public.customers", field: "name", transformer: "rot13" }],
      "transformations[0] (public.customers.name)",
      'transformer "rot13" is not known',
      "ff1",
      "regexp_replace",
    );
    expect(error.details).toMatchObject({ issues: [{ path: "transformations.0.transformer" }] });
  });

  it("refuses an unknown field, a generated field and an entity not selected", async () => {
    await refused(
      [{ entity: "public.customers", field: "nope", transformer: "hash" }],
      "transformations[0] (public.customers.nope)",
      "field nope does not exist in public.customers",
    );
    await refused(
      [{ entity: "public.customers", field: "search", transformer: "null" }],
      "(public.customers.search)",
      "generated",
    );
    const res = await create([{ entity: "public.tokens", field: "note", transformer: "hash" }], {
      entities: ["public.customers"],
    });
    expect(res.status).toBe(400);
    expect(errorOf(res).message).toContain("entity public.tokens is not selected");
  });

  it("refuses a transformer that does not fit the column type", async () => {
    await refused(
      [
        { entity: "public.customers", field: "email", transformer: "email" },
        { entity: "public.customers", field: "born", transformer: "mask" },
      ],
      "transformations[1] (public.customers.born)",
      "mask does not fit column type date",
    );
    await refused(
      [
        {
          entity: "public.customers",
          field: "tags",
          transformer: "array_each",
          options: { transformer: { name: "noise_date", options: { days: 3 } } },
        },
      ],
      "transformations[0] (public.customers.tags)",
      "noise_date does not fit elements of type text",
    );
  });

  it("refuses bad options: unknown, missing, wrong JSON type, bad value", async () => {
    const rule = (transformer: string, options: unknown, field = "name"): Rule[] => [
      { entity: "public.customers", field, transformer, options },
    ];
    await refused(
      rule("mask", { keepFirst: 2, keep: 1 }),
      "(public.customers.name)",
      "option keep is not an option of mask",
    );
    await refused(rule("constant", {}), "(public.customers.name)", "option value of constant is required");
    await refused(
      rule("mask", { keepLast: "4" }),
      "(public.customers.name)",
      "option keepLast of mask must be an integer",
    );
    await refused(rule("hash", { length: 8 }), "(public.customers.name)", "at least 16");
    await refused(rule("choice", { values: ["a", 1] }), "(public.customers.name)", "array of strings");
    await refused(rule("full_name", { locale: "xx" }), "(public.customers.name)", "en, fr, de");
    await refused(rule("template", { template: "{first}.{name}" }), "(public.customers.name)", "{first}");
    await refused(rule("null", {}, "email"), "(public.customers.email)", "NOT NULL");
  });

  it("refuses regexp_replace patterns with backreferences, lookaround or over 1,000 characters", async () => {
    const regexp = (pattern: string): Rule[] => [
      {
        entity: "public.customers",
        field: "phone",
        transformer: "regexp_replace",
        options: { pattern, replacement: "x" },
      },
    ];
    await refused(regexp("(\\d)\\1"), "transformations[0] (public.customers.phone)", "backreference \\1");
    await refused(regexp("\\d(?=0)"), "(public.customers.phone)", "lookaround (?=");
    await refused(regexp("a(?!b)"), "(public.customers.phone)", "lookaround (?!");
    await refused(regexp("(?<=a)b"), "(public.customers.phone)", "lookaround (?<=");
    await refused(regexp("(?<!a)b"), "(public.customers.phone)", "lookaround (?<!");
    await refused(regexp("a".repeat(1001)), "(public.customers.phone)", "1001 characters; at most 1000");
    await refused(
      [
        {
          entity: "public.customers",
          field: "phone",
          transformer: "regexp_replace",
          options: { pattern: "a", replacement: "b", flags: "g" },
        },
      ],
      "(public.customers.phone)",
      "flags",
    );
  });

  it("refuses a lossy transformer on a primary key or row key, suggesting key-safe ones", async () => {
    const error = await refused(
      [{ entity: "public.customers", field: "id", transformer: "noise_number", options: { percent: 5 } }],
      "transformations[0] (public.customers.id)",
      "public.customers.id is part of the primary key",
      "noise_number is lossy",
      "ff1, permute, hash, email",
    );
    expect(error.details).toMatchObject({ entity: "public.customers", field: "id" });
    await refused(
      [{ entity: "public.tokens", field: "token", transformer: "mask" }],
      "(public.tokens.token)",
      "public.tokens.token is part of the row key",
      "ff1, permute, hash, email",
    );
  });

  it("refuses a lossy transformer on a referenced key", async () => {
    await refused(
      [{ entity: "public.accounts", field: "code", transformer: "char_scramble" }],
      "transformations[0] (public.accounts.code)",
      "public.accounts.code is referenced by a foreign key of public.contacts.account_code",
      "ff1, permute, hash, email",
    );
  });

  it("refuses a referencing field set differently from the key it references, naming both", async () => {
    await refused(
      [
        { entity: "public.accounts", field: "code", transformer: "hash" },
        { entity: "public.contacts", field: "account_code", transformer: "email" },
      ],
      "public.contacts.account_code",
      "public.accounts.code",
      "hash",
      "email",
    );
    // Transforming only the referencing field would leave dangling references.
    await refused(
      [{ entity: "public.contacts", field: "account_code", transformer: "hash" }],
      "(public.contacts.account_code)",
      "references public.accounts.code",
    );
  });

  it("refuses transformations on a copy pipeline and a transform pipeline without any", async () => {
    const copy = await create(GOOD, { action: "copy" });
    expect(copy.status).toBe(400);
    expect(errorOf(copy).message).toContain("transformations need action transform");
    const none = await create([]);
    expect(none.status).toBe(400);
    expect(errorOf(none).message).toContain("action transform needs at least one transformation");
  });

  it("leaves a copy pipeline as it was", async () => {
    const res = await create(undefined, { action: "copy" });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).not.toHaveProperty("transformations");
    expect(res.body).not.toHaveProperty("effectiveTransformations");
    const plan = await h.call("GET", `/api/v1/pipelines/${res.body.id}/plan`, { token: org.viewer });
    expect(plan.body.entities[0]).not.toHaveProperty("transformations");
  });

  it("validates transformations on update, against the merged settings", async () => {
    const res = await create([{ entity: "public.customers", field: "email", transformer: "email" }]);
    const id = res.body.id as string;
    const patch = (json: unknown) =>
      h.call("PATCH", `/api/v1/pipelines/${id}`, { token: org.operator, json });
    const bad = await patch({
      transformations: [{ entity: "public.customers", field: "id", transformer: "mask" }],
    });
    expect(bad.status).toBe(400);
    expect(errorOf(bad).message).toContain("(public.customers.id)");
    const toCopy = await patch({ action: "copy" });
    expect(toCopy.status).toBe(400);
    expect(errorOf(toCopy).message).toContain("transformations need action transform");
    const copy = await patch({ action: "copy", transformations: [] });
    expect(copy.status, JSON.stringify(copy.body)).toBe(200);
    expect(copy.body.action).toBe("copy");
    const back = await patch({
      action: "transform",
      transformations: [
        { entity: "public.customers", field: "born", transformer: "noise_date", options: { days: 30 } },
      ],
    });
    expect(back.status, JSON.stringify(back.body)).toBe(200);
    expect(back.body.effectiveTransformations).toEqual([
      {
        entity: "public.customers",
        field: "born",
        transformer: "noise_date",
        options: { days: 30 },
        kind: "lossy",
      },
    ]);
  });
});

describe("preflight", () => {
  /** Sessions of always-connected agents whose source describes `snapshot` and counts 5 rows a table. */
  const sessions = {
    isConnected: () => true,
    get: () => ({ openedAt: Date.now() }),
    absence: () => undefined,
    dispatch: async (_env: string, kind: string) => {
      if (kind === "count") return { count: 5n };
      if (kind !== "describeSchema") throw new Error(`unexpected task ${kind}`);
      return {
        fingerprint: "fp-t",
        entities: entities.map((e) => ({
          schema: e.schema,
          name: e.name,
          fields: e.fields,
          primaryKey: e.primaryKey,
          rowKey: e.rowKey ?? e.primaryKey,
          kind: "",
          references: e.references.map((r) => ({
            name: r.name,
            fields: r.fields,
            referencedEntity: { schema: "public", name: r.referencedEntity.slice("public.".length) },
            referencedFields: r.referencedFields,
          })),
          estimatedRows: BigInt(e.estimatedRows),
          estimateSource: "",
        })),
      };
    },
  } as unknown as AgentSessions;

  it("puts each entity's effective transformations into EntityRunPlan.transforms", async () => {
    const res = await create([
      { entity: "public.customers", field: "id", transformer: "permute" },
      {
        entity: "public.customers",
        field: "email",
        transformer: "email",
        options: { domain: "example.org" },
      },
    ]);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    await h.store.db
      .update(environments)
      .set({ health: "healthy", databaseReachable: true, lastHeartbeatAt: new Date() })
      .where(eq(environments.organisationId, org.id));
    const [row] = await h.store.db.select().from(pipelines).where(eq(pipelines.id, res.body.id));
    const ctx = {
      db: h.store.db,
      agents: gatewayAgentPort(sessions),
      organisationId: org.id,
      signal: new AbortController().signal,
      journal: { stage: async () => {}, error: async () => {} },
      logger: { warn: () => {}, info: () => {}, error: () => {}, debug: () => {} },
      options: compileExecutorOptions({ agentAwayLimitMs: 1_000 }),
    } as unknown as Parameters<typeof preflight>[0];
    const { plan } = await preflight(ctx, pipelineSnapshot(row!), false);
    const transforms = Object.fromEntries(plan.entities.map((e) => [e.entity, e.transforms]));
    expect(transforms).toEqual({
      "public.customers": [
        { field: "id", transformer: "permute", options: {} },
        { field: "email", transformer: "email", options: { domain: "example.org" } },
      ],
      "public.orders": [{ field: "customer_id", transformer: "permute", options: {} }],
      "public.order_lines": [],
      "public.accounts": [],
      "public.contacts": [],
      "public.tokens": [],
    });
  });
});
