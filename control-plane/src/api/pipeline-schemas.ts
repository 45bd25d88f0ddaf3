/** Zod schemas of pipelines and their plans; they also make up the OpenAPI document. */
import { z } from "@hono/zod-openapi";
import { MAX_SEARCH_LENGTH } from "../environments/environments-query.js";
import { ENTITY_KINDS } from "../environments/schema-snapshot.js";
import {
  DEFAULT_BATCH_BYTES,
  DEFAULT_BATCH_INTERVAL_MS,
  DEFAULT_BATCH_SIZE,
  DEFAULT_ENTITY_CONCURRENCY,
  DEFAULT_LOAD_ORDER,
  DEFAULT_MAX_FAILED_POLLS,
  DEFAULT_MAX_RETRIES_PER_BATCH,
  DEFAULT_RECONCILE_EVERY_POLLS,
  DEFAULT_SAFETY_LAG_MS,
  DEFAULT_STOP_ON_ERROR,
  DEFAULT_TARGET_TRIGGERS,
  LOAD_ORDERS,
  MAX_BATCH_BYTES,
  MAX_BATCH_INTERVAL_MS,
  MAX_BATCH_SIZE,
  MAX_ENTITY_CONCURRENCY,
  MAX_MAX_FAILED_POLLS,
  MAX_PIPELINE_ENTITIES,
  MAX_PIPELINE_NAME_LENGTH,
  MAX_PIPELINE_QUALITY_RULES,
  MAX_PIPELINE_TRANSFORMATIONS,
  MAX_RECONCILE_EVERY_POLLS,
  MAX_RETRIES_PER_BATCH,
  MAX_SAFETY_LAG_MS,
  MIN_BATCH_BYTES,
  MIN_BATCH_INTERVAL_MS,
  MIN_BATCH_SIZE,
  PIPELINE_ACTIONS,
  PIPELINE_MODES,
  SOURCE_KINDS,
  TARGET_TRIGGERS,
  WRITE_STRATEGIES,
} from "../pipelines/pipeline-defaults.js";
import { EntityNameInput, Timestamp } from "./schemas.js";

const uuid = z.string().openapi({ format: "uuid" });
const action = z.enum(PIPELINE_ACTIONS).openapi({
  description:
    "copy: records as they are; transform: records with the fields of `transformations` transformed by the " +
    "source agent while it reads (delete is not supported yet)",
});

const TRANSFORMER_KINDS = ["bijective", "unique", "lossy"] as const;

/** One transformation rule, as sent and as shown. */
const TransformationRule = z
  .strictObject({
    entity: EntityNameInput.openapi({ description: "A selected entity (`schema.table`)" }),
    field: z.string().min(1).max(63).openapi({ description: "A field of the entity (not generated)" }),
    transformer: z
      .string()
      .min(1)
      .max(100)
      .openapi({
        description:
          "A transformer of the catalogue (@dray/common TRANSFORMERS), fitting the field's type. A lossy one " +
          "is refused on a primary key, row key or referenced key: use ff1, permute, hash or email there",
        example: "email",
      }),
    options: z
      .record(z.string(), z.unknown())
      .default({})
      .openapi({ description: "The transformer's options", example: { domain: "example.com" } }),
  })
  .openapi("TransformationRule");

const transformations = z
  .array(TransformationRule)
  .max(MAX_PIPELINE_TRANSFORMATIONS)
  .openapi({
    description:
      'Fields the source agent transforms while reading; needs (and, non-empty, is needed by) action "transform". ' +
      "A transformer on a referenced key is carried over to every referencing field among the selected " +
      "entities so joins still match",
    example: [{ entity: "public.contacts", field: "email", transformer: "email", options: {} }],
  });

/** One data-quality rule, as sent and as shown. */
const QualityRule = z
  .strictObject({
    entity: EntityNameInput.openapi({ description: "A selected entity (`schema.table`)" }),
    field: z.string().min(1).max(63).openapi({ description: "A field of the entity (not generated)" }),
    rule: z
      .string()
      .min(1)
      .max(100)
      .openapi({
        description:
          "not_null, matches (RE2 pattern), range (min/max), max_length (length) or one_of (values); every rule " +
          "but not_null lets NULL pass",
        example: "matches",
      }),
    options: z
      .record(z.string(), z.unknown())
      .default({})
      .openapi({ description: "The rule's options", example: { pattern: "^[^@\\s]+@[^@\\s]+$" } }),
  })
  .openapi("QualityRule");

const qualityRules = z
  .array(QualityRule)
  .max(MAX_PIPELINE_QUALITY_RULES)
  .openapi({
    description:
      "Checks the source agent runs on every row it reads, before transformations (seed 02's DataQuality " +
      "stage). A row that fails one is not copied: it is reported with its (transformed) key and the rule in the " +
      "execution's errors and counted as skipped. On a files pipeline the rules name target fields (after " +
      "fileSettings.fieldMapping) and the control plane checks each parsed row; a failing row is skipped and " +
      "reported by its line",
    example: [{ entity: "public.contacts", field: "email", rule: "not_null", options: {} }],
  });

/** A transformation a run applies, with the transformer's kind. */
const EffectiveTransformation = z
  .object({
    field: z.string(),
    transformer: z.string(),
    options: z.record(z.string(), z.unknown()),
    kind: z.enum(TRANSFORMER_KINDS),
    propagatedFrom: z.string().optional().openapi({
      description:
        "The referenced key (`schema.table.field`) this field's transformer was carried over from; absent for a rule",
    }),
  })
  .openapi("EffectiveTransformation");
const writeStrategy = z.enum(WRITE_STRATEGIES).openapi({
  description:
    "insert (always add), merge (upsert on the row key: the primary key, else a unique key of NOT NULL fields; " +
    "target-only rows kept; every entity needs a row key), clean (delete the target rows of the selected entities, " +
    "then load). insert and clean also copy entities without a row key",
});
const targetTriggers = z.enum(TARGET_TRIGGERS).openapi({
  description:
    "What the target's user triggers and rules do while rows are written. off (the default): loads run with " +
    "them off, like pg_restore --disable-triggers; foreign keys are still checked, by the agent, and a cycle " +
    "of NOT NULL references is loaded with some of them checked once its tables are loaded. fire: triggers " +
    "and rules fire for every row written, and a cycle of NOT NULL references cannot be loaded",
});
const loadOrder = z.enum(LOAD_ORDERS).openapi({
  description:
    "How a run orders its entities. dependencies (the default): an entity loads once the entities it " +
    "references are loaded (nullable references of cycles are loaded NULL, then back-filled). parallel: every " +
    "entity loads at once, like pg_restore; every reference between selected entities is written without its " +
    "check and all are checked once everything is loaded (a violation fails the run and is listed by key). " +
    "parallel needs targetTriggers off: with triggers firing the database checks each reference as it is written",
});

const sourceKind = z.enum(SOURCE_KINDS).openapi({
  description:
    "environment (the default): rows are read by the source environment's agent. files: rows come from files " +
    "uploaded with POST /pipeline/upload into the one target entity; there is no sourceEnvironmentId",
});
const mode = z.enum(PIPELINE_MODES).openapi({
  description:
    "once (the default): a run copies what is there and ends. continuous: POST /pipelines/{id}/start begins one " +
    "long-lived execution that copies new and changed rows batch after batch (ordered by cursorField, then the " +
    "row key) until POST /pipelines/{id}/stop; needs writeStrategy merge",
});
const FileSettings = z
  .strictObject({
    format: z.enum(["csv", "ndjson"]).openapi({ description: "csv (with a header row) or ndjson" }),
    delimiter: z
      .string()
      .optional()
      .openapi({ description: 'CSV field delimiter, one character (default ",")' }),
    quote: z.string().optional().openapi({ description: 'CSV quote character, one character (default ")' }),
    fieldMapping: z
      .record(z.string(), z.string())
      .optional()
      .openapi({
        description:
          "File column (CSV header name or JSON key) → target field. Without it every column must be a field " +
          "of the target entity; with it, unmapped columns are ignored",
      }),
  })
  .openapi("FileSettings");

/** Fields of a pipeline body, without defaults (PATCH leaves absent ones as they are). */
const fields = {
  sourceKind,
  mode,
  cursorField: z
    .string()
    .min(1)
    .max(63)
    .nullable()
    .openapi({
      description:
        "Continuous mode: the field whose growth marks new or changed rows (e.g. updated_at); null or absent: the " +
        "row key. Rows are read in (cursorField, row key) order, strictly after the last position",
    }),
  batchIntervalMs: z
    .number()
    .int()
    .min(MIN_BATCH_INTERVAL_MS)
    .max(MAX_BATCH_INTERVAL_MS)
    .openapi({ description: "Continuous mode: wait between polls that found nothing new (default 2,500)" }),
  safetyLagMs: z
    .number()
    .int()
    .min(0)
    .max(MAX_SAFETY_LAG_MS)
    .openapi({
      description:
        "Continuous mode, date/time cursors: rows newer than now() minus this lag wait for a later poll, so a " +
        "transaction that commits late is still copied (default 5,000)",
    }),
  maxFailedPolls: z.number().int().min(1).max(MAX_MAX_FAILED_POLLS).openapi({
    description:
      "Continuous mode: consecutive failed polls after which the pipeline pauses itself (default 5)",
  }),
  reconcileEveryPolls: z
    .number()
    .int()
    .min(0)
    .max(MAX_RECONCILE_EVERY_POLLS)
    .openapi({
      description:
        "Continuous mode: every N polls, remove target rows whose key no longer exists at the source; 0 (the " +
        "default): only when asked for with POST /pipelines/{id}/reconcile",
    }),
  fileSettings: FileSettings.nullable(),
  name: z.string().trim().min(1).max(MAX_PIPELINE_NAME_LENGTH),
  sourceEnvironmentId: z.string().nullable().openapi({
    format: "uuid",
    description: 'Environment records are read from; null for sourceKind "files"',
  }),
  targetEnvironmentId: z
    .string()
    .openapi({ format: "uuid", description: "Environment records are written to" }),
  action,
  writeStrategy,
  entities: z
    .array(EntityNameInput)
    .min(1)
    .max(MAX_PIPELINE_ENTITIES)
    .openapi({
      description:
        "Selected entities, each present in the source's entity snapshot, no duplicates. Each is a name " +
        '(`schema.table`, with a part that contains `.` or `"` double-quoted: `"sch.ema".t`) or ' +
        "`{ schema, table }`; the pipeline stores and shows the canonical name",
      example: ["public.accounts", "public.contacts"],
    }),
  batchSize: z
    .number()
    .int()
    .min(MIN_BATCH_SIZE)
    .max(MAX_BATCH_SIZE)
    .openapi({ description: "Rows per batch" }),
  batchBytes: z
    .number()
    .int()
    .min(MIN_BATCH_BYTES)
    .max(MAX_BATCH_BYTES)
    .openapi({ description: "Byte budget of a batch's row data (64 KiB … 48 MiB)" }),
  maxRetriesPerBatch: z
    .number()
    .int()
    .min(0)
    .max(MAX_RETRIES_PER_BATCH)
    .openapi({ description: "Retries of a batch after a retryable error" }),
  stopOnError: z.boolean().openapi({
    description:
      "true: the first record the target rejects fails its batch, and a batch given up after its retries " +
      "fails the run; false: records the target rejects are skipped one by one (the rest of the batch is " +
      "written), and a batch given up is Skipped, its records counted as failed, while the run goes on",
  }),
  entityConcurrency: z
    .number()
    .int()
    .min(1)
    .max(MAX_ENTITY_CONCURRENCY)
    .openapi({ description: "Entities of one dependency level processed at once" }),
  targetTriggers,
  loadOrder,
  transformations,
  qualityRules,
};

/** Body of POST /pipelines. */
export const CreatePipeline = z
  .strictObject({
    name: fields.name,
    sourceKind: fields.sourceKind.default("environment"),
    sourceEnvironmentId: fields.sourceEnvironmentId.default(null),
    targetEnvironmentId: fields.targetEnvironmentId,
    action: fields.action.default("copy"),
    writeStrategy: fields.writeStrategy,
    entities: fields.entities,
    batchSize: fields.batchSize.default(DEFAULT_BATCH_SIZE),
    batchBytes: fields.batchBytes.default(DEFAULT_BATCH_BYTES),
    maxRetriesPerBatch: fields.maxRetriesPerBatch.default(DEFAULT_MAX_RETRIES_PER_BATCH),
    stopOnError: fields.stopOnError.default(DEFAULT_STOP_ON_ERROR),
    entityConcurrency: fields.entityConcurrency.default(DEFAULT_ENTITY_CONCURRENCY),
    targetTriggers: fields.targetTriggers.default(DEFAULT_TARGET_TRIGGERS),
    loadOrder: fields.loadOrder.default(DEFAULT_LOAD_ORDER),
    transformations: fields.transformations.default([]),
    qualityRules: fields.qualityRules.default([]),
    mode: fields.mode.default("once"),
    cursorField: fields.cursorField.default(null),
    batchIntervalMs: fields.batchIntervalMs.default(DEFAULT_BATCH_INTERVAL_MS),
    safetyLagMs: fields.safetyLagMs.default(DEFAULT_SAFETY_LAG_MS),
    maxFailedPolls: fields.maxFailedPolls.default(DEFAULT_MAX_FAILED_POLLS),
    reconcileEveryPolls: fields.reconcileEveryPolls.default(DEFAULT_RECONCILE_EVERY_POLLS),
    fileSettings: fields.fileSettings.default(null),
  })
  .openapi("CreatePipeline");

/** Body of PATCH /pipelines/{id}: any subset of the fields of POST. */
export const UpdatePipeline = z
  .strictObject({
    name: fields.name.optional(),
    sourceEnvironmentId: fields.sourceEnvironmentId.optional(),
    targetEnvironmentId: fields.targetEnvironmentId.optional(),
    action: fields.action.optional(),
    writeStrategy: fields.writeStrategy.optional(),
    entities: fields.entities.optional(),
    batchSize: fields.batchSize.optional(),
    batchBytes: fields.batchBytes.optional(),
    maxRetriesPerBatch: fields.maxRetriesPerBatch.optional(),
    stopOnError: fields.stopOnError.optional(),
    entityConcurrency: fields.entityConcurrency.optional(),
    targetTriggers: fields.targetTriggers.optional(),
    loadOrder: fields.loadOrder.optional(),
    transformations: fields.transformations.optional(),
    qualityRules: fields.qualityRules.optional(),
    sourceKind: fields.sourceKind.optional(),
    mode: fields.mode.optional(),
    cursorField: fields.cursorField.optional(),
    batchIntervalMs: fields.batchIntervalMs.optional(),
    safetyLagMs: fields.safetyLagMs.optional(),
    maxFailedPolls: fields.maxFailedPolls.optional(),
    reconcileEveryPolls: fields.reconcileEveryPolls.optional(),
    fileSettings: fields.fileSettings.optional(),
  })
  .openapi("UpdatePipeline");

/** Query of GET /pipelines. */
export const ListPipelinesQuery = z.object({
  search: z
    .string()
    .max(MAX_SEARCH_LENGTH)
    .optional()
    .openapi({ description: "Case-insensitive text matched anywhere in the name" }),
});

/** A pipeline as the API shows it. */
export const Pipeline = z
  .object({
    id: uuid,
    organisationId: uuid,
    name: z.string(),
    sourceKind,
    sourceEnvironmentId: uuid.nullable(),
    targetEnvironmentId: uuid,
    action,
    writeStrategy,
    entities: z.array(z.string()),
    mode,
    cursorField: z.string().nullable(),
    batchIntervalMs: z.number().int(),
    safetyLagMs: z.number().int(),
    maxFailedPolls: z.number().int(),
    reconcileEveryPolls: z.number().int(),
    fileSettings: FileSettings.nullable(),
    batchSize: z.number().int(),
    batchBytes: z.number().int(),
    maxRetriesPerBatch: z.number().int(),
    stopOnError: z.boolean(),
    entityConcurrency: z.number().int(),
    targetTriggers,
    loadOrder,
    transformations: z
      .array(
        z.object({
          entity: z.string(),
          field: z.string(),
          transformer: z.string(),
          options: z.record(z.string(), z.unknown()),
        }),
      )
      .optional()
      .openapi({ description: "The transformation rules as set (action transform only)" }),
    qualityRules: z
      .array(
        z.object({
          entity: z.string(),
          field: z.string(),
          rule: z.string(),
          options: z.record(z.string(), z.unknown()),
        }),
      )
      .optional()
      .openapi({ description: "The data-quality rules as set; absent when there are none" }),
    effectiveTransformations: z
      .array(EffectiveTransformation.extend({ entity: z.string() }))
      .nullable()
      .optional()
      .openapi({
        description:
          "What a run transforms: the rules plus transformers carried over to referencing fields, from the " +
          "source's cached snapshot; null when that cannot be worked out (see the plan's blocking). Action transform only",
      }),
    createdAt: Timestamp,
    updatedAt: Timestamp,
    running: z.boolean().openapi({ description: "An execution is queued or in progress" }),
    lastExecution: z
      .object({
        id: uuid,
        status: z.enum(["queued", "in_progress", "completed", "failed", "cancelled"]),
        pipelineToken: z.string().openapi({ example: "pt-5d0e…" }),
        createdAt: Timestamp,
      })
      .nullable(),
  })
  .openapi("Pipeline");

const DeferredReference = z
  .object({
    entity: z.string(),
    reference: z.string(),
    fields: z.array(z.string()),
    referencedEntity: z.string(),
  })
  .openapi("DeferredReference");

const PlanIssue = z
  .object({
    code: z.string(),
    message: z.string(),
    entity: z.string().optional(),
    details: z.unknown().optional(),
  })
  .openapi("PlanIssue");

const PlanCycle = z
  .object({
    entities: z.array(z.string()),
    handling: z.enum(["deferred_references", "checked_after_load"]).openapi({
      description:
        "deferred_references: nullable references are loaded NULL, then back-filled; checked_after_load: " +
        "NOT NULL references had to be postponed too (targetTriggers off): written without their check and " +
        "validated once the cycle's tables are loaded",
    }),
    resolvedBy: z
      .array(DeferredReference)
      .openapi({ description: "Nullable references deferred to break it" }),
    postponed: z
      .array(DeferredReference)
      .openapi({ description: "NOT NULL references checked after load to break it" }),
  })
  .openapi("PlanCycle");

/** Answer of GET /pipelines/{id}/plan. */
export const PipelinePlan = z
  .object({
    targetTriggers: targetTriggers.openapi({ description: "The pipeline's targetTriggers setting" }),
    targetTriggersNote: z.string().openapi({
      description: "One line on what targetTriggers means for this load",
      example:
        "off: rows are written with the target's user triggers and rules off (like pg_restore " +
        "--disable-triggers), and the agent checks foreign keys itself",
    }),
    loadOrder: loadOrder.openapi({ description: "The pipeline's loadOrder setting" }),
    loadOrderNote: z.string().openapi({
      description: "One line on what loadOrder means for this load",
      example:
        "dependencies: each table loads once the tables it references are loaded (nullable references of " +
        "cycles are loaded NULL, then back-filled)",
    }),
    levels: z.array(z.array(z.string())).openapi({
      description:
        "Topological levels, level 0 first; entities of a level run concurrently. One level with every entity " +
        "with loadOrder parallel. Empty when a cycle cannot be loaded",
    }),
    deferred: z.array(DeferredReference).openapi({
      description:
        "References loaded NULL in pass 1 and back-filled in pass 2 (cycle breaks, self-references)",
    }),
    postponed: z.array(DeferredReference).openapi({
      description:
        "References written without their check and validated once their tables are loaded (targetTriggers " +
        "off): NOT NULL references of cycles and self-references, or with loadOrder parallel every reference " +
        "between selected entities",
    }),
    cycles: z.array(PlanCycle),
    warnings: z.array(PlanIssue),
    entities: z.array(
      z.object({
        entity: z.string(),
        level: z.number().int().nullable(),
        estimatedRows: z.number(),
        estimateSource: z.enum(["statistics", "exact", "sampled", "unknown"]).openapi({
          description:
            "Where estimatedRows comes from: planner statistics, an exact count or a sampled estimate (for tables " +
            "never analysed), or unknown",
        }),
        primaryKey: z.array(z.string()),
        rowKey: z.array(z.string()).openapi({
          description:
            "The fields that identify a row: the primary key, else a unique key of NOT NULL fields; empty " +
            "when there is none (read in one consistent snapshot in physical order; merge is not possible)",
        }),
        kind: z.enum(ENTITY_KINDS),
        missingInTarget: z.boolean(),
        fieldsMissingInTarget: z.array(z.string()),
        transformations: z.array(EffectiveTransformation).optional().openapi({
          description: "Fields the source agent transforms while reading this entity (action transform only)",
        }),
        qualityRules: z
          .array(
            z.object({ field: z.string(), rule: z.string(), options: z.record(z.string(), z.unknown()) }),
          )
          .optional()
          .openapi({ description: "Data-quality rules the source agent checks on this entity's rows" }),
      }),
    ),
    estimatedRecords: z.number(),
    monthlyRecordLimit: z.object({
      limit: z.number(),
      used: z.number(),
      reserved: z.number(),
      remaining: z.number(),
      month: z.string().openapi({ description: "YYYY-MM (UTC)", example: "2026-05" }),
      wouldExceed: z.boolean(),
    }),
    blocking: z.array(PlanIssue).openapi({
      description:
        "Everything that would stop a run before any record moves, all at once (empty when it can run)",
    }),
  })
  .openapi("PipelinePlan");

/** Answer of POST /pipelines/{id}/preview. */
export const PipelinePreview = z
  .object({
    entities: z.array(
      z.object({
        entity: z.string(),
        fields: z.array(z.string()).openapi({
          description: "The entity's transformed fields only (untransformed fields are never shown)",
        }),
        rows: z.array(z.array(z.string().nullable())).openapi({
          description: "Up to 20 rows of transformed values, in the order of `fields`, as text; null is NULL",
        }),
      }),
    ),
    warnings: z.array(PlanIssue).openapi({
      description:
        "Remarks on the previewed values, e.g. `value_too_long`: values longer than the target's varchar(n)",
    }),
  })
  .openapi("PipelinePreview");
