import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EntitySnapshot, SchemaSnapshot } from "../src/environments/schema-snapshot.js";
import { environments, organisations, usage } from "../src/store/index.js";
import {
  type ApiHarness,
  createEnvironmentWithSnapshot,
  createTestDatabase,
  errorOf,
  openApiHarness,
  TEST_CONFIG,
} from "./api-test-harness.js";

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let h: ApiHarness;
type Tenant = Awaited<ReturnType<ApiHarness["tenant"]>>;
let org: Tenant;
let other: Tenant;
const env = { prod: "", qa: "", fresh: "" };

/** `public.<name>` with an `id` key and one bigint field per reference `{ field: [target, nullable] }`. */
function entity(name: string, rows: number, refs: Record<string, [string, boolean]> = {}): EntitySnapshot {
  const field = (f: string, nullable: boolean) => ({
    name: f,
    type: "bigint",
    nullable,
    hasDefault: false,
    generated: false,
  });
  return {
    entity: `public.${name}`,
    schema: "public",
    name,
    fields: [field("id", false), ...Object.entries(refs).map(([f, [, nullable]]) => field(f, nullable))],
    primaryKey: ["id"],
    references: Object.entries(refs).map(([f, [to]]) => ({
      name: `${name}_${f}_fkey`,
      fields: [f],
      referencedEntity: `public.${to}`,
      referencedFields: ["id"],
    })),
    estimatedRows: rows,
  };
}

/** A CRM (accounts ← contacts ← opportunities ← activities, accounts.parent_id self-reference) and two cycles. */
const crm = [
  entity("accounts", 100, { parent_id: ["accounts", true] }),
  entity("contacts", 200, { account_id: ["accounts", false] }),
  entity("opportunities", 300, { contact_id: ["contacts", false] }),
  entity("activities", 400, { opportunity_id: ["opportunities", false] }),
];
const cycles = [
  entity("departments", 5, { manager_id: ["employees", true] }),
  entity("employees", 50, { department_id: ["departments", false] }),
  entity("eggs", 1, { chicken_id: ["chickens", false] }),
  entity("chickens", 1, { egg_id: ["eggs", false] }),
];
const snapshot = (entities: EntitySnapshot[]): SchemaSnapshot => ({
  capturedAt: "2026-05-01T10:00:00.000Z",
  fingerprint: `fp-${entities.length}`,
  entities,
});
const crmNames = ["public.accounts", "public.contacts", "public.opportunities", "public.activities"];

const createEnvironment = (tenant: Tenant, name: string, snapshot?: SchemaSnapshot) =>
  createEnvironmentWithSnapshot(h, tenant, name, snapshot);

beforeAll(async () => {
  database = await createTestDatabase();
  h = await openApiHarness(database.url);
  org = await h.tenant("plans");
  other = await h.tenant("plans-other");
  env.prod = await createEnvironment(org, "prod", snapshot([...crm, ...cycles]));
  // qa lacks activities, and its contacts lack account_id.
  const qaContacts = {
    ...crm[1]!,
    fields: crm[1]!.fields.filter((f) => f.name !== "account_id"),
    references: [],
  };
  env.qa = await createEnvironment(org, "qa", snapshot([crm[0]!, qaContacts, crm[2]!, ...cycles]));
  env.fresh = await createEnvironment(org, "fresh");
});
afterAll(async () => {
  await h?.close();
  await database?.drop();
});

async function pipeline(name: string, entities: string[], targetEnvironmentId = env.fresh) {
  const res = await h.call("POST", "/api/v1/pipelines", {
    token: org.operator,
    json: { name, sourceEnvironmentId: env.prod, targetEnvironmentId, writeStrategy: "insert", entities },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id as string;
}
const plan = (id: string, token = org.viewer) => h.call("GET", `/api/v1/pipelines/${id}/plan`, { token });
const entry = (entity: string, level: number | null, estimatedRows: number) => ({
  entity,
  level,
  estimatedRows,
  estimateSource: "statistics",
  primaryKey: ["id"],
  rowKey: ["id"],
  kind: "table",
  missingInTarget: false,
  fieldsMissingInTarget: [],
});

describe("GET /api/v1/pipelines/{id}/plan", () => {
  it("plans a CRM chain in four levels with the self-reference deferred, and the record limit", async () => {
    const id = await pipeline("crm", crmNames);
    h.clock.now = new Date("2026-05-31T23:59:00.000Z");
    try {
      const res = await plan(id);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        targetTriggers: "off",
        targetTriggersNote:
          "off: rows are written with the target's user triggers and rules off (like pg_restore " +
          "--disable-triggers), and the agent checks foreign keys itself",
        loadOrder: "dependencies",
        loadOrderNote:
          "dependencies: each table loads once the tables it references are loaded (nullable references of " +
          "cycles are loaded NULL, then back-filled)",
        levels: [["public.accounts"], ["public.contacts"], ["public.opportunities"], ["public.activities"]],
        deferred: [
          {
            entity: "public.accounts",
            reference: "accounts_parent_id_fkey",
            fields: ["parent_id"],
            referencedEntity: "public.accounts",
          },
        ],
        postponed: [],
        cycles: [],
        warnings: [
          {
            code: "target_not_checked",
            message: expect.stringContaining("target environment fresh has no entity snapshot yet"),
          },
        ],
        entities: [
          entry("public.accounts", 0, 100),
          entry("public.contacts", 1, 200),
          entry("public.opportunities", 2, 300),
          entry("public.activities", 3, 400),
        ],
        estimatedRecords: 1000,
        monthlyRecordLimit: {
          limit: TEST_CONFIG.defaultMonthlyRecordLimit,
          used: 0,
          reserved: 0,
          remaining: TEST_CONFIG.defaultMonthlyRecordLimit,
          month: "2026-05",
          wouldExceed: false,
        },
        blocking: [],
      });
    } finally {
      h.clock.now = undefined;
    }
  });

  it("defers the nullable reference of a two-table cycle", async () => {
    const res = await plan(await pipeline("departments", ["public.employees", "public.departments"]));
    expect(res.status).toBe(200);
    const deferred = {
      entity: "public.departments",
      reference: "departments_manager_id_fkey",
      fields: ["manager_id"],
      referencedEntity: "public.employees",
    };
    expect(res.body).toMatchObject({
      levels: [["public.departments"], ["public.employees"]],
      deferred: [deferred],
      postponed: [],
      cycles: [
        {
          entities: ["public.departments", "public.employees"],
          handling: "deferred_references",
          resolvedBy: [deferred],
          postponed: [],
        },
      ],
      blocking: [],
      entities: [entry("public.employees", 1, 50), entry("public.departments", 0, 5)],
    });
  });

  it("loads a cycle without a nullable reference with targetTriggers off, checking one reference after load", async () => {
    const res = await plan(await pipeline("eggs", ["public.chickens", "public.eggs"]));
    expect(res.status).toBe(200);
    const postponed = {
      entity: "public.chickens",
      reference: "chickens_egg_id_fkey",
      fields: ["egg_id"],
      referencedEntity: "public.eggs",
    };
    expect(res.body).toMatchObject({
      targetTriggers: "off",
      targetTriggersNote: expect.stringContaining("1 reference of NOT NULL cycles or self-references"),
      levels: [["public.chickens"], ["public.eggs"]],
      deferred: [],
      postponed: [postponed],
      cycles: [
        {
          entities: ["public.chickens", "public.eggs"],
          handling: "checked_after_load",
          resolvedBy: [],
          postponed: [postponed],
        },
      ],
      blocking: [],
    });
  });

  it("reports a cycle without a nullable reference as a blocking item under targetTriggers fire, answering 200", async () => {
    const id = await pipeline("eggs fired", ["public.chickens", "public.eggs"]);
    const patched = await h.call("PATCH", `/api/v1/pipelines/${id}`, {
      token: org.operator,
      json: { targetTriggers: "fire" },
    });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    expect(patched.body.targetTriggers).toBe("fire");
    const res = await plan(id);
    expect(res.status).toBe(200);
    expect(res.body.targetTriggers).toBe("fire");
    expect(res.body.targetTriggersNote).toMatch(/^fire: the target's triggers and rules fire/);
    expect(res.body.levels).toEqual([]);
    expect(res.body.cycles).toEqual([]);
    expect(res.body.blocking).toEqual([
      {
        code: "unresolvable_cycle",
        message: expect.stringMatching(
          /^cannot order entities: the references of cycle public\.chickens → public\.eggs → public\.chickens .* are all NOT NULL.*targetTriggers to "off" \(the default\)/,
        ),
        details: {
          reason: "unresolvable_cycle",
          cycle: ["public.chickens", "public.eggs"],
          references: ["chickens_egg_id_fkey", "eggs_chicken_id_fkey"],
        },
      },
    ]);
    expect(res.body.entities).toEqual([entry("public.chickens", null, 1), entry("public.eggs", null, 1)]);
  });

  it("loads every table at once with loadOrder parallel, checking every reference between them after load", async () => {
    const res = await h.call("POST", "/api/v1/pipelines", {
      token: org.operator,
      json: {
        name: "parallel",
        sourceEnvironmentId: env.prod,
        targetEnvironmentId: env.fresh,
        writeStrategy: "insert",
        entities: [...crmNames, "public.chickens", "public.eggs", "public.departments"],
        loadOrder: "parallel",
      },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({ loadOrder: "parallel", targetTriggers: "off" });
    const shown = await h.call("GET", `/api/v1/pipelines/${res.body.id}`, { token: org.viewer });
    expect(shown.body.loadOrder).toBe("parallel");
    const ref = (entity: string, field: string, to: string) => ({
      entity: `public.${entity}`,
      reference: `${entity}_${field}_fkey`,
      fields: [field],
      referencedEntity: `public.${to}`,
    });
    const planned = await plan(res.body.id);
    expect(planned.status).toBe(200);
    expect(planned.body).toMatchObject({
      loadOrder: "parallel",
      loadOrderNote:
        "parallel: every table loads at once, like pg_restore; the 6 references between selected tables are " +
        "checked once all are loaded (a violation fails the run and is listed by key)",
      levels: [
        [
          "public.accounts",
          "public.activities",
          "public.chickens",
          "public.contacts",
          "public.departments",
          "public.eggs",
          "public.opportunities",
        ],
      ],
      deferred: [],
      cycles: [],
      postponed: [
        ref("accounts", "parent_id", "accounts"),
        ref("activities", "opportunity_id", "opportunities"),
        ref("chickens", "egg_id", "eggs"),
        ref("contacts", "account_id", "accounts"),
        ref("eggs", "chicken_id", "chickens"),
        ref("opportunities", "contact_id", "contacts"),
      ],
      blocking: [],
    });
    expect(planned.body.entities.map((e: { level: number }) => e.level)).toEqual([0, 0, 0, 0, 0, 0, 0]);
    // departments.manager_id references unselected employees: still checked by each write, and a warning.
    expect(planned.body.warnings.map((w: { code: string; entity?: string }) => [w.code, w.entity])).toEqual([
      ["unselected_reference", "public.departments"],
      ["target_not_checked", undefined],
    ]);

    const fired = await h.call("PATCH", `/api/v1/pipelines/${res.body.id}`, {
      token: org.operator,
      json: { targetTriggers: "fire" },
    });
    expect(fired.status, JSON.stringify(fired.body)).toBe(200);
    const blocked = await plan(res.body.id);
    expect(blocked.status).toBe(200);
    // Planned as dependencies besides: the NOT NULL cycle chickens ⇄ eggs cannot be loaded while triggers fire.
    expect(blocked.body.blocking.map((b: { code: string }) => b.code)).toEqual([
      "parallel_needs_triggers_off",
      "unresolvable_cycle",
    ]);
    expect(blocked.body.blocking[0].message).toContain('loadOrder "parallel" needs targetTriggers "off"');
  });

  it("warns about references to unselected entities", async () => {
    const res = await plan(await pipeline("opportunities only", ["public.opportunities"]));
    expect(res.status).toBe(200);
    expect(res.body.blocking).toEqual([]);
    expect(res.body.warnings).toEqual([
      {
        code: "unselected_reference",
        entity: "public.opportunities",
        message: expect.stringContaining("public.opportunities references unselected public.contacts"),
        details: expect.objectContaining({ referencedEntity: "public.contacts", inSourceSnapshot: true }),
      },
      expect.objectContaining({ code: "target_not_checked" }),
    ]);
  });

  it("blocks on entities and fields missing in the target", async () => {
    const res = await plan(await pipeline("to qa", crmNames, env.qa));
    expect(res.status).toBe(200);
    expect(res.body.warnings).toEqual([]);
    expect(res.body.blocking).toEqual([
      {
        code: "fields_missing_in_target",
        entity: "public.contacts",
        message: "field account_id of public.contacts does not exist in target environment qa: add it there",
        details: { fields: ["account_id"] },
      },
      {
        code: "entity_missing_in_target",
        entity: "public.activities",
        message:
          "entity public.activities does not exist in target environment qa: create it there or remove it from the pipeline",
      },
    ]);
    expect(res.body.entities).toEqual([
      entry("public.accounts", 0, 100),
      { ...entry("public.contacts", 1, 200), fieldsMissingInTarget: ["account_id"] },
      entry("public.opportunities", 2, 300),
      { ...entry("public.activities", 3, 400), missingInTarget: true },
    ]);
  });

  it("computes the monthly record limit from the current UTC month's usage row", async () => {
    const id = await pipeline("metered", crmNames, env.qa);
    await h.store.db
      .update(organisations)
      .set({ monthlyRecordLimit: 10_000 })
      .where(eq(organisations.id, org.id));
    await h.store.db.insert(usage).values([
      { organisationId: org.id, month: "2026-06", records: 8_500, reserved: 600 },
      { organisationId: org.id, month: "2026-05", records: 1_000_000, reserved: 0 },
      { organisationId: other.id, month: "2026-06", records: 9_999, reserved: 0 },
    ]);
    h.clock.now = new Date("2026-06-01T00:00:00.000Z");
    try {
      let res = await plan(id);
      expect(res.status).toBe(200);
      expect(res.body.monthlyRecordLimit).toEqual({
        limit: 10_000,
        used: 8_500,
        reserved: 600,
        remaining: 900,
        month: "2026-06",
        wouldExceed: true,
      });
      expect(res.body.blocking.at(-1)).toEqual({
        code: "monthly_record_limit",
        message: expect.stringContaining(
          "estimated at 1000 records but only 900 of the organisation's 10000",
        ),
        details: { estimatedRecords: 1000, remaining: 900, month: "2026-06" },
      });

      await h.store.db
        .update(usage)
        .set({ records: 8_000, reserved: 1_000 })
        .where(eq(usage.month, "2026-06"));
      res = await plan(id);
      expect(res.body.monthlyRecordLimit).toMatchObject({
        used: 8_000,
        reserved: 1_000,
        remaining: 1_000,
        wouldExceed: false,
      });
      expect(res.body.blocking.map((b: { code: string }) => b.code)).not.toContain("monthly_record_limit");

      h.clock.now = new Date("2026-07-15T12:00:00.000Z");
      res = await plan(id);
      expect(res.body.monthlyRecordLimit).toEqual({
        limit: 10_000,
        used: 0,
        reserved: 0,
        remaining: 10_000,
        month: "2026-07",
        wouldExceed: false,
      });
    } finally {
      h.clock.now = undefined;
    }
  });

  it("answers 404 to other organisations and for malformed ids, 409 when the source lost its snapshot", async () => {
    const id = await pipeline("private plan", ["public.accounts"]);
    for (const [path, token] of [
      [id, other.admin],
      ["not-a-uuid", org.viewer],
    ] as const) {
      const res = await plan(path, token);
      expect(res.status).toBe(404);
      expect(errorOf(res)).toEqual({ code: "not_found", message: `pipeline ${path} was not found` });
    }
    expect((await h.call("GET", `/api/v1/pipelines/${id}/plan`)).status).toBe(401);

    await h.store.db
      .update(environments)
      .set({ schemaSnapshot: null, schemaCapturedAt: null })
      .where(eq(environments.id, env.prod));
    try {
      const res = await plan(id);
      expect(res.status).toBe(409);
      expect(errorOf(res)).toMatchObject({
        code: "failed_precondition",
        message: expect.stringContaining(`environment prod (${env.prod}) has no entity snapshot yet`),
      });
    } finally {
      const snap = snapshot([...crm, ...cycles]);
      await h.store.db
        .update(environments)
        .set({ schemaSnapshot: snap, schemaCapturedAt: new Date(snap.capturedAt) })
        .where(eq(environments.id, env.prod));
    }
  });

  it("fetches missing snapshots of both sides from their connected agents", async () => {
    const source = await createEnvironment(org, "plan-source");
    const target = await createEnvironment(org, "plan-target");
    h.agents.snapshot = snapshot(crm);
    h.agents.connected.add(source);
    h.agents.connected.add(target);
    try {
      const res = await h.call("POST", "/api/v1/pipelines", {
        token: org.operator,
        json: {
          name: "both fetched",
          sourceEnvironmentId: source,
          targetEnvironmentId: target,
          writeStrategy: "insert",
          entities: crmNames,
        },
      });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      const answer = await plan(res.body.id);
      expect(answer.status).toBe(200);
      expect(answer.body.warnings).toEqual([]);
      expect(answer.body.blocking).toEqual([]);
      expect(h.agents.calls).toContainEqual({ method: "describeSchema", environmentId: target });
      const [stored] = await h.store.db.select().from(environments).where(eq(environments.id, target));
      expect(stored!.schemaCapturedAt).not.toBeNull();
    } finally {
      h.agents.connected.delete(source);
      h.agents.connected.delete(target);
    }
  });

  it("labels each estimate and checks the limit against counts of never-analysed tables", async () => {
    // The agent counted tables the planner never analysed: 67,000 rows, not "about 0".
    const counted = (name: string, rows: number, estimateSource: string) =>
      Object.assign(entity(name, rows), { estimateSource });
    const source = await createEnvironment(
      org,
      "unanalysed",
      snapshot([counted("accounts", 2_000, "exact"), counted("contacts", 65_000, "sampled")]),
    );
    const res = await h.call("POST", "/api/v1/pipelines", {
      token: org.operator,
      json: {
        name: "unanalysed",
        sourceEnvironmentId: source,
        targetEnvironmentId: env.fresh,
        writeStrategy: "insert",
        entities: ["public.accounts", "public.contacts"],
      },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const answer = await plan(res.body.id);
    expect(answer.status).toBe(200);
    expect(
      answer.body.entities.map((e: { estimatedRows: number; estimateSource: string }) => [
        e.estimatedRows,
        e.estimateSource,
      ]),
    ).toEqual([
      [2_000, "exact"],
      [65_000, "sampled"],
    ]);
    expect(answer.body.estimatedRecords).toBe(67_000);
    expect(answer.body.monthlyRecordLimit.wouldExceed).toBe(true);
    const blocked = answer.body.blocking.find((b: { code: string }) => b.code === "monthly_record_limit");
    expect(blocked.message).toContain(`PATCH /api/v1/organisations/${org.id}`);
    expect(blocked.message).toContain("system administrator");
  });
});
