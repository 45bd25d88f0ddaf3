/**
 * Preview of a transform pipeline (issue 11 item 7), with a real control plane
 * and real agents on the CRM-like schema of the transform test:
 * POST /pipelines/{id}/preview answers up to 20 rows per transformed entity,
 * with only the transformed fields, values the source agent transformed
 * (different from the source's), the same twice, and no canary value; a
 * transformed value longer than the target's varchar(n) is a warning;
 * `dray pipeline preview` prints the rows; 404 for an unknown pipeline, 409
 * for a copy pipeline, 503 once the source's agent is gone.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { runCli } from "../sdk/src/cli/main.js";
import { apiClient, eventually } from "./support/api-client.js";
import { type DrayStack, type StackEnvironment, startDrayStack } from "./support/dray-stack.js";
import { createPipeline } from "./support/executions.js";
import {
  canaryCounts,
  NO_CANARY,
  TX_DATA,
  TX_ENTITIES,
  TX_SCHEMA,
  TX_TRANSFORMATIONS,
} from "./support/transform-crm.js";

let stack: DrayStack;
let source: StackEnvironment;
let target: StackEnvironment;
let transformId: string;
let copyId: string;

/** The target's full_name is narrower than the transformed names: a preview warning. */
const NARROW = 6;

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"));
  [source, target] = await Promise.all([
    stack.addEnvironment("pv-src", `${TX_SCHEMA}${TX_DATA}`),
    stack.addEnvironment(
      "pv-dst",
      `${TX_SCHEMA} alter table customers alter column full_name type varchar(${NARROW});`,
    ),
  ]);
  const base = {
    sourceEnvironmentId: source.id,
    targetEnvironmentId: target.id,
    writeStrategy: "clean",
    entities: TX_ENTITIES,
  };
  transformId = await createPipeline(stack.api, {
    ...base,
    name: "crm-preview",
    action: "transform",
    transformations: TX_TRANSFORMATIONS,
  });
  copyId = await createPipeline(stack.api, { ...base, name: "crm-copy", action: "copy" });
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

/** Source rows of `fields` (as text), first 20 by `key`. */
async function sourceRows(table: string, fields: string[], key: string): Promise<(string | null)[][]> {
  const list = fields.map((f) => `"${f}"::text`).join(", ");
  const rows = await source.db.sql.unsafe(`select ${list} from ${table} order by "${key}" limit 20`, [], {
    prepare: false,
  });
  return rows.map((r) => Object.values(r) as (string | null)[]);
}

const KEYS: Record<string, string> = {
  "public.customers": "id",
  "public.contacts": "email",
  "public.orders": "id",
};

describe("preview of a transform pipeline", () => {
  let first: any;

  it("answers up to 20 transformed rows per transformed entity, transformed fields only", async () => {
    const r = await stack.api.post(`/api/v1/pipelines/${transformId}/preview`);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    first = r.body;
    const shown = new Map<string, any>(first.entities.map((e: any) => [e.entity, e]));
    expect([...shown.keys()].sort()).toEqual([...TX_ENTITIES].sort());
    const pipeline = (await stack.api.get(`/api/v1/pipelines/${transformId}`)).body;
    for (const [entity, e] of shown) {
      const transformed = pipeline.effectiveTransformations
        .filter((t: any) => t.entity === entity)
        .map((t: any) => t.field);
      expect(e.fields, entity).toEqual(transformed);
      expect(e.rows.length, entity).toBeGreaterThan(0);
      expect(e.rows.length, entity).toBeLessThanOrEqual(20);
      for (const row of e.rows) expect(row).toHaveLength(e.fields.length);
    }
    // Untransformed fields are never shown.
    expect(shown.get("public.customers").fields).not.toContain("segment");
    expect(shown.get("public.orders").fields).toEqual(["contact_email"]);
  });

  it("shows values that differ from the source's, NULL kept", async () => {
    let compared = 0;
    for (const e of first.entities) {
      const table = e.entity.split(".")[1];
      const raw = await sourceRows(table, e.fields, KEYS[e.entity]!);
      expect(e.rows.length).toBe(raw.length);
      e.rows.forEach((row: (string | null)[], i: number) => {
        row.forEach((value, j) => {
          const before = raw[i]![j];
          if (before === null) {
            expect(value, `${e.entity}.${e.fields[j]} row ${i}`).toBeNull();
            return;
          }
          if (e.entity === "public.contacts" && e.fields[j] === "email") {
            // Read by the raw email (the row key), shown transformed: no raw email appears.
            expect(raw.map((r) => r[j])).not.toContain(value);
          }
          expect(value, `${e.entity}.${e.fields[j]} row ${i}`).not.toBe(before);
          compared++;
        });
      });
    }
    expect(compared).toBeGreaterThan(50);
  });

  it("is deterministic and leaks no canary", async () => {
    const again = await stack.api.post(`/api/v1/pipelines/${transformId}/preview`);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first);
    expect(canaryCounts(JSON.stringify(first))).toEqual(NO_CANARY);
  });

  it("warns about transformed values longer than the target's varchar(n)", () => {
    const warning = first.warnings.find((w: any) => w.code === "value_too_long");
    expect(warning, JSON.stringify(first.warnings)).toMatchObject({ entity: "public.customers" });
    expect(warning.message).toContain(`public.customers.full_name (varchar(${NARROW}))`);
    expect(first.warnings.filter((w: any) => w.code === "value_too_long")).toHaveLength(1);
  });

  it("warns about a regexp_replace that matched none of the previewed values, and not about one that matched", async () => {
    expect(first.warnings.filter((w: any) => w.code === "transform_unchanged")).toEqual([]);
    const id = await createPipeline(stack.api, {
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy: "clean",
      entities: TX_ENTITIES,
      name: "crm-preview-nomatch",
      action: "transform",
      transformations: [
        {
          entity: "public.contacts",
          field: "phone",
          transformer: "regexp_replace",
          options: { pattern: "^never-a-phone$", replacement: "x" },
        },
      ],
    });
    const r = await stack.api.post(`/api/v1/pipelines/${id}/preview`);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const unchanged = r.body.warnings.filter((w: any) => w.code === "transform_unchanged");
    expect(unchanged).toHaveLength(1);
    expect(unchanged[0]).toMatchObject({ entity: "public.contacts", details: { field: "phone" } });
    expect(unchanged[0].message).toMatch(
      /^regexp_replace on public\.contacts\.phone matched none of the \d+ previewed values/,
    );
  });

  it("is open to viewers", async () => {
    const token = await stack.admin.post("/api/v1/tokens", {
      name: "pv-viewer",
      role: "viewer",
      organisationId: stack.organisationId,
    });
    const viewer = apiClient(stack.cp.httpUrl, token.body.token);
    const r = await viewer.post(`/api/v1/pipelines/${transformId}/preview`);
    expect(r.status).toBe(200);
    expect(r.body).toEqual(first);
  });

  it("dray pipeline preview prints the rows", async () => {
    let out = "";
    const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      out += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString();
      return true;
    });
    const env = {
      DRAY_URL: stack.cp.httpUrl,
      DRAY_TOKEN: stack.apiToken,
      DRAY_CONFIG_DIR: "/nonexistent-dray",
    };
    let code: number;
    let json: string;
    try {
      code = await runCli(["pipeline", "preview", "crm-preview", "--json"], env);
      json = out;
      out = "";
      code += await runCli(["pipeline", "preview", "crm-preview"], { ...env, NO_COLOR: "1" });
    } finally {
      spy.mockRestore();
    }
    expect(code).toBe(0);
    expect(JSON.parse(json)).toEqual(first);
    const customers = first.entities.find((e: any) => e.entity === "public.customers");
    expect(out).toContain("public.customers");
    expect(out).toContain(customers.rows[0][0]);
    expect(out).toContain(customers.rows[1][0]);
    expect(out).toContain("warning:");
    expect(canaryCounts(out)).toEqual(NO_CANARY);
  });

  it("is 404 for an unknown pipeline and 409 for a copy pipeline", async () => {
    const unknown = await stack.api.post(`/api/v1/pipelines/${randomUUID()}/preview`);
    expect(unknown.status).toBe(404);
    const copy = await stack.api.post(`/api/v1/pipelines/${copyId}/preview`);
    expect(copy.status).toBe(409);
    expect(copy.body.error?.code ?? copy.body.code, JSON.stringify(copy.body)).toBe("failed_precondition");
    expect(JSON.stringify(copy.body)).toContain("transform");
  });

  it("is 503 once the source's agent is gone", async () => {
    await source.agent.stop("SIGTERM");
    await eventually(async () => {
      const r = await stack.api.get(`/api/v1/environments/${source.id}`);
      return r.body.agent?.connected === false ? true : undefined;
    }, 20_000);
    const r = await stack.api.post(`/api/v1/pipelines/${transformId}/preview`);
    expect(r.status, JSON.stringify(r.body)).toBe(503);
    expect(JSON.stringify(r.body)).toContain("pv-src");
  });
});
