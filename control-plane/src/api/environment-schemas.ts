/** Zod schemas of environments and their entity snapshots. */
import { z } from "@hono/zod-openapi";
import { ENVIRONMENT_SORTS, MAX_SEARCH_LENGTH } from "../environments/environments-query.js";
import { ENTITY_KINDS } from "../environments/schema-snapshot.js";
import { Timestamp } from "./schemas.js";

/** An environment as the API shows it. */
export const Environment = z
  .object({
    id: z.string().openapi({ format: "uuid" }),
    organisationId: z.string().openapi({ format: "uuid" }),
    name: z.string(),
    platform: z.enum(["postgres", "mysql"]),
    application: z.string().nullable(),
    url: z.string().nullable(),
    protected: z.boolean(),
    health: z.enum(["healthy", "unhealthy", "unknown"]),
    healthReason: z.string().nullable(),
    healthChangedAt: Timestamp.nullable(),
    lastHeartbeatAt: Timestamp.nullable(),
    agent: z.object({
      connected: z.boolean(),
      version: z.string().nullable(),
      databaseReachable: z.boolean().nullable(),
      databaseLatencyMs: z.number().nullable(),
    }),
    lastTestAt: Timestamp.nullable(),
    lastTestLatencyMs: z.number().nullable(),
    schemaCapturedAt: Timestamp.nullable(),
    createdAt: Timestamp,
    updatedAt: Timestamp,
  })
  .openapi("Environment");

const name = z.string().trim().min(1).max(100);
const application = z.string().trim().max(200).nullable();
const url = z
  .string()
  .trim()
  .max(2000)
  .nullable()
  .openapi({ description: "Where the environment is (never a credential)" });

/** Body of POST /environments. */
export const CreateEnvironment = z
  .strictObject({
    name,
    platform: z
      .enum(["postgres", "mysql"])
      .default("postgres")
      .openapi({ description: "mysql is not supported yet" }),
    application: application.optional(),
    url: url.optional(),
    protected: z.boolean().optional(),
  })
  .openapi("CreateEnvironment");

/** Body of PATCH /environments/{id}; null clears application or url. */
export const UpdateEnvironment = z
  .strictObject({
    name: name.optional(),
    application: application.optional(),
    url: url.optional(),
    protected: z.boolean().optional(),
  })
  .openapi("UpdateEnvironment");

/** Query of GET /environments. */
export const ListEnvironmentsQuery = z.object({
  search: z
    .string()
    .max(MAX_SEARCH_LENGTH)
    .optional()
    .openapi({ description: "Case-insensitive text matched anywhere in name, application or url" }),
  sort: z.enum(ENVIRONMENT_SORTS).optional().openapi({
    description:
      "name (A–Z, default), health (healthy, unhealthy, unknown), lastHeartbeat (most recent first), createdAt (newest first)",
  }),
});

/** A new enrollment token; the secret is shown only in this answer. */
export const EnrollmentToken = z
  .object({
    enrollmentToken: z.string().openapi({ description: "dray_enr_…; single use; give it to dray-agent" }),
    expiresAt: Timestamp,
  })
  .openapi("EnrollmentToken");

/** Answer of POST /environments. */
export const CreatedEnvironment = z
  .object({
    environment: Environment,
    enrollmentToken: z.string().openapi({ description: "dray_enr_…; single use; give it to dray-agent" }),
    enrollmentTokenExpiresAt: Timestamp,
  })
  .openapi("CreatedEnvironment");

/** Answer of POST /environments/{id}/test. */
export const ConnectionTestResult = z
  .object({
    ok: z.literal(true),
    roundTripMs: z.number(),
    databaseLatencyMs: z.number(),
    serverVersion: z.string(),
    databaseName: z.string(),
    testedAt: Timestamp,
  })
  .openapi("ConnectionTestResult");

/** One entity (table) of an environment. */
export const EntitySnapshot = z
  .object({
    entity: z.string().openapi({ description: "schema.table" }),
    schema: z.string(),
    name: z.string(),
    fields: z.array(
      z.object({
        name: z.string(),
        type: z.string(),
        nullable: z.boolean(),
        hasDefault: z.boolean(),
        generated: z.boolean(),
      }),
    ),
    primaryKey: z.array(z.string()),
    rowKey: z
      .array(z.string())
      .optional()
      .openapi({
        description:
          "The fields that identify a row: the primary key, else the unique key whose fields are all NOT NULL; " +
          "empty when the table has neither (it can be copied with writeStrategy insert or clean, not merge). " +
          "Absent in snapshots captured before row keys existed: the primary key (refresh the snapshot to get it)",
      }),
    kind: z
      .enum(ENTITY_KINDS)
      .optional()
      .openapi({
        description:
          "table; partitioned (written through the partitioned table, its partitions are not entities); " +
          "inheritance_parent (other tables inherit from it: read, counted and cleaned without them, with ONLY). " +
          "Absent in snapshots captured before kinds existed: table",
      }),
    references: z.array(
      z.object({
        name: z.string(),
        fields: z.array(z.string()),
        referencedEntity: z.string(),
        referencedFields: z.array(z.string()),
        validated: z
          .boolean()
          .optional()
          .openapi({
            description:
              "True when the database enforces the reference for every row (declared on the table, validated, " +
              "its triggers on); absent when it does not or when the agent did not say",
          }),
      }),
    ),
    estimatedRows: z.number(),
    estimateSource: z.enum(["statistics", "exact", "sampled"]).optional().openapi({
      description: "Where estimatedRows comes from (statistics when absent)",
    }),
  })
  .openapi("EntitySnapshot");

/** The cached description of an environment's entities. */
export const SchemaSnapshot = z
  .object({ capturedAt: Timestamp, fingerprint: z.string(), entities: z.array(EntitySnapshot) })
  .openapi("SchemaSnapshot");
