import { describe, expect, it } from "vitest";
import type { Pipeline } from "../client.js";
import { pipelineDefinition, qualityRuleLine, rulesSection, transformationLine } from "./pipeline-format.js";

const BASE: Pipeline = {
  id: "5b1e8f0c-0000-4000-8000-000000000001",
  organisationId: "5b1e8f0c-0000-4000-8000-000000000002",
  name: "crm",
  sourceKind: "environment",
  mode: "once",
  cursorField: null,
  batchIntervalMs: 5000,
  safetyLagMs: 0,
  maxFailedPolls: 5,
  reconcileEveryPolls: 0,
  fileSettings: null,
  sourceEnvironmentId: "5b1e8f0c-0000-4000-8000-000000000003",
  targetEnvironmentId: "5b1e8f0c-0000-4000-8000-000000000004",
  action: "transform",
  writeStrategy: "merge",
  entities: ["public.customers", "public.orders"],
  batchSize: 500,
  batchBytes: 1_048_576,
  maxRetriesPerBatch: 2,
  stopOnError: false,
  entityConcurrency: 3,
  targetTriggers: "off",
  loadOrder: "dependencies",
  transformations: [
    { entity: "public.customers", field: "id", transformer: "hash", options: { length: 12 } },
  ],
  effectiveTransformations: [
    { entity: "public.customers", field: "id", transformer: "hash", options: { length: 12 }, kind: "unique" },
    {
      entity: "public.orders",
      field: "customer_id",
      transformer: "hash",
      options: { length: 12 },
      kind: "unique",
      propagatedFrom: "public.customers.id",
    },
  ],
  createdAt: "2026-05-01T12:00:00.000Z",
  updatedAt: "2026-05-01T12:00:00.000Z",
  running: true,
  lastExecution: null,
};

/** The view with quality rules, as the API answers once it has them. */
const WITH_RULES = {
  ...BASE,
  qualityRules: [
    { entity: "public.customers", field: "email", rule: "not_null", options: {} },
    { entity: "public.orders", field: "total", rule: "range", options: { min: 0, max: 1000 } },
  ],
} as Pipeline;

describe("pipeline lines", () => {
  it("writes a transformation with its options and what it follows from", () => {
    expect(transformationLine(BASE.transformations![0]!)).toBe('public.customers.id ← hash {"length":12}');
    expect(transformationLine(BASE.effectiveTransformations![1]!)).toBe(
      'public.orders.customer_id ← hash {"length":12} (follows from public.customers.id)',
    );
    expect(
      qualityRuleLine({ entity: "public.orders", field: "total", rule: "range", options: { min: 0 } }),
    ).toBe('public.orders.total must range {"min":0}');
  });

  it("shows the rules, the carried-over fields and the quality rules of a pipeline", () => {
    expect(rulesSection(WITH_RULES)).toEqual([
      "  transformations:",
      '    public.customers.id ← hash {"length":12}',
      "  fields that follow from transformed keys:",
      '    public.orders.customer_id ← hash {"length":12} (follows from public.customers.id)',
      "  quality rules:",
      "    public.customers.email must not_null {}",
      '    public.orders.total must range {"min":0,"max":1000}',
    ]);
    expect(rulesSection({ ...BASE, effectiveTransformations: null })[2]).toContain("not known");
    const copy = { ...BASE, action: "copy" } as Pipeline;
    delete copy.transformations;
    delete copy.effectiveTransformations;
    expect(rulesSection(copy)).toEqual([]);
  });
});

describe("pipelineDefinition", () => {
  it("keeps the settings and rules, names environments when known and drops server fields", () => {
    const definition = pipelineDefinition(WITH_RULES, { source: "prod", target: "qa" });
    expect(definition).toEqual({
      name: "crm",
      action: "transform",
      source: "prod",
      target: "qa",
      entities: ["public.customers", "public.orders"],
      writeStrategy: "merge",
      batchSize: 500,
      batchBytes: 1_048_576,
      maxRetriesPerBatch: 2,
      entityConcurrency: 3,
      stopOnError: false,
      targetTriggers: "off",
      loadOrder: "dependencies",
      transformations: BASE.transformations,
      qualityRules: (WITH_RULES as { qualityRules?: unknown }).qualityRules,
    });
  });

  it("falls back to environment ids and leaves out rules a pipeline does not have", () => {
    const copy = { ...BASE, action: "copy" } as Pipeline;
    delete copy.transformations;
    const definition = pipelineDefinition(copy, { source: "prod" });
    expect(definition).toMatchObject({ source: "prod", targetEnvironmentId: BASE.targetEnvironmentId });
    expect(Object.keys(definition)).not.toContain("transformations");
    expect(Object.keys(definition)).not.toContain("qualityRules");
    expect(Object.keys(definition)).not.toContain("target");
  });
});
