/**
 * The control plane's tables (drizzle). Migrations in control-plane/drizzle are
 * generated from this file with `pnpm --filter @dray/control-plane db:generate`
 * and run at start-up on Postgres and on PGlite alike.
 */
import { sql } from "drizzle-orm";
import {
  bigint,
  bigserial,
  boolean,
  customType,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";

/** Raw bytes (Postgres bytea) as Buffers. */
const bytea = customType<{ data: Buffer; driverData: Buffer }>({ dataType: () => "bytea" });

const createdAt = () => timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow();
const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

/** A tenant. Owns environments, pipelines, tokens and a monthly record limit. */
export const organisations = pgTable("organisations", {
  id: uuid("id").primaryKey(),
  name: text("name").notNull(),
  monthlyRecordLimit: bigint("monthly_record_limit", { mode: "number" }).notNull(),
  createdAt: createdAt(),
  updatedAt: ts("updated_at").notNull().defaultNow(),
});

/**
 * API tokens, stored as SHA-256 hashes of the secret. `organisationId` is null
 * only for system-admin tokens (role `system`).
 */
export const apiTokens = pgTable(
  "api_tokens",
  {
    id: uuid("id").primaryKey(),
    organisationId: uuid("organisation_id").references(() => organisations.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    role: text("role", { enum: ["system", "admin", "operator", "viewer"] }).notNull(),
    tokenHash: text("token_hash").notNull(),
    /**
     * A short, non-secret label to tell tokens apart: `dray_` and the next 4
     * characters of a generated token, `(chosen)` for a token chosen by the operator.
     */
    tokenPrefix: text("token_prefix").notNull(),
    createdAt: createdAt(),
    lastUsedAt: ts("last_used_at"),
    revokedAt: ts("revoked_at"),
    /** After this instant the token is refused (401); null: it does not expire. */
    expiresAt: ts("expires_at"),
  },
  (t) => [
    uniqueIndex("api_tokens_hash_idx").on(t.tokenHash),
    index("api_tokens_org_idx").on(t.organisationId),
    /** Keyset pages of GET /tokens: (created_at, id). */
    index("api_tokens_org_created_idx").on(t.organisationId, t.createdAt, t.id),
  ],
);

/**
 * A browser session of the web UI, opened by signing in with an API token:
 * it acts with that token's role and organisation, and ends when it expires,
 * is signed out, or its token is revoked. Only the secret's hash is stored.
 */
export const webSessions = pgTable(
  "web_sessions",
  {
    id: uuid("id").primaryKey(),
    secretHash: text("secret_hash").notNull(),
    tokenId: uuid("token_id")
      .notNull()
      .references(() => apiTokens.id, { onDelete: "cascade" }),
    /** The session's anti-CSRF token, sent back by every form. */
    csrfToken: text("csrf_token").notNull(),
    createdAt: createdAt(),
    expiresAt: ts("expires_at").notNull(),
    revokedAt: ts("revoked_at"),
  },
  (t) => [
    uniqueIndex("web_sessions_secret_idx").on(t.secretHash),
    index("web_sessions_token_idx").on(t.tokenId),
  ],
);

/** A one-time sign-in link (the demo prints one): used once, then void; only its code's hash is stored. */
export const webSignInLinks = pgTable(
  "web_sign_in_links",
  {
    id: uuid("id").primaryKey(),
    codeHash: text("code_hash").notNull(),
    tokenId: uuid("token_id")
      .notNull()
      .references(() => apiTokens.id, { onDelete: "cascade" }),
    createdAt: createdAt(),
    expiresAt: ts("expires_at").notNull(),
    usedAt: ts("used_at"),
  },
  (t) => [uniqueIndex("web_sign_in_links_code_idx").on(t.codeHash)],
);

/**
 * Which control-plane replica holds each environment's agent work stream, so
 * that any replica can route a task to it (gateway/agent-registry.ts). The
 * epoch grows with every new session of the environment; the lease is
 * renewed by the holder and lapses when it dies.
 */
export const agentSessions = pgTable("agent_sessions", {
  environmentId: uuid("environment_id")
    .primaryKey()
    .references(() => environments.id, { onDelete: "cascade" }),
  agentId: uuid("agent_id").notNull(),
  replicaId: text("replica_id").notNull(),
  epoch: bigint("epoch", { mode: "number" }).notNull(),
  connectedAt: ts("connected_at").notNull(),
  leaseUntil: ts("lease_until").notNull(),
});

/** One database reached only through its agent. */
export const environments = pgTable(
  "environments",
  {
    id: uuid("id").primaryKey(),
    organisationId: uuid("organisation_id")
      .notNull()
      .references(() => organisations.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    platform: text("platform", { enum: ["postgres", "mysql"] }).notNull(),
    /** Free-text application name, searchable. */
    application: text("application"),
    /** Free-text location (URL or host) of the environment, searchable; never a credential. */
    url: text("url"),
    /** Protected environments need confirmation for clean/delete. */
    protected: boolean("protected").notNull().default(false),
    health: text("health", { enum: ["healthy", "unhealthy", "unknown"] })
      .notNull()
      .default("unknown"),
    healthReason: text("health_reason"),
    healthChangedAt: ts("health_changed_at"),
    lastHeartbeatAt: ts("last_heartbeat_at"),
    agentVersion: text("agent_version"),
    databaseReachable: boolean("database_reachable"),
    databaseLatencyMs: integer("database_latency_ms"),
    schemaFingerprint: text("schema_fingerprint"),
    /** Cached entity snapshot (see environments/schema-snapshot.ts); refreshed on demand. */
    schemaSnapshot: jsonb("schema_snapshot"),
    schemaCapturedAt: ts("schema_captured_at"),
    lastTestAt: ts("last_test_at"),
    lastTestLatencyMs: integer("last_test_latency_ms"),
    createdAt: createdAt(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("environments_org_name_idx").on(t.organisationId, t.name),
    index("environments_health_idx").on(t.health, t.lastHeartbeatAt),
  ],
);

/** One-time tokens an agent trades for its credential. Stored hashed. */
export const enrollmentTokens = pgTable(
  "enrollment_tokens",
  {
    id: uuid("id").primaryKey(),
    environmentId: uuid("environment_id")
      .notNull()
      .references(() => environments.id, { onDelete: "cascade" }),
    tokenHash: text("token_hash").notNull(),
    expiresAt: ts("expires_at").notNull(),
    usedAt: ts("used_at"),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex("enrollment_tokens_hash_idx").on(t.tokenHash),
    index("enrollment_tokens_environment_idx").on(t.environmentId),
  ],
);

/** Enrolled agents. One active (not revoked) agent per environment. */
export const agents = pgTable(
  "agents",
  {
    id: uuid("id").primaryKey(),
    environmentId: uuid("environment_id")
      .notNull()
      .references(() => environments.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    hostname: text("hostname"),
    version: text("version").notNull(),
    platform: text("platform").notNull(),
    credentialHash: text("credential_hash").notNull(),
    enrolledAt: ts("enrolled_at").notNull().defaultNow(),
    lastSeenAt: ts("last_seen_at"),
    draining: boolean("draining").notNull().default(false),
    revokedAt: ts("revoked_at"),
  },
  (t) => [
    index("agents_environment_idx").on(t.environmentId),
    uniqueIndex("agents_one_active_idx").on(t.environmentId).where(sql`revoked_at is null`),
  ],
);

/**
 * A saved, repeatable operation: source → target, entities, action, write
 * strategy and options. `entities` is the ordered list of selected `schema.table` names.
 */
export const pipelines = pgTable(
  "pipelines",
  {
    id: uuid("id").primaryKey(),
    organisationId: uuid("organisation_id")
      .notNull()
      .references(() => organisations.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    /**
     * `environment`: rows are read from the source environment's agent;
     * `files`: rows come from uploaded files (`POST /pipeline/upload`), and
     * there is no source environment.
     */
    sourceKind: text("source_kind", { enum: ["environment", "files"] })
      .notNull()
      .default("environment"),
    /** The source environment; null for a `files` pipeline. */
    sourceEnvironmentId: uuid("source_environment_id").references(() => environments.id, {
      onDelete: "restrict",
    }),
    targetEnvironmentId: uuid("target_environment_id")
      .notNull()
      .references(() => environments.id, { onDelete: "restrict" }),
    action: text("action", { enum: ["copy", "transform", "delete"] }).notNull(),
    writeStrategy: text("write_strategy", { enum: ["insert", "merge", "clean"] }).notNull(),
    entities: jsonb("entities").$type<string[]>().notNull(),
    /** Rows per batch. */
    batchSize: integer("batch_size").notNull(),
    /** Byte budget per batch (row data). */
    batchBytes: integer("batch_bytes").notNull(),
    maxRetriesPerBatch: integer("max_retries_per_batch").notNull(),
    stopOnError: boolean("stop_on_error").notNull(),
    /** Entities of one dependency level processed at once. */
    entityConcurrency: integer("entity_concurrency").notNull(),
    /**
     * `off`: loads run with the target's user triggers and rules off, the agent
     * checking foreign keys; `fire`: they fire (pipeline-defaults.ts TARGET_TRIGGERS).
     */
    targetTriggers: text("target_triggers", { enum: ["off", "fire"] })
      .notNull()
      .default("off"),
    /**
     * `dependencies`: an entity loads once the entities it references are loaded;
     * `parallel`: every entity at once, references checked after load
     * (pipeline-defaults.ts LOAD_ORDERS).
     */
    loadOrder: text("load_order", { enum: ["dependencies", "parallel"] })
      .notNull()
      .default("dependencies"),
    /**
     * Field transformations of an `action: "transform"` pipeline, as the user set
     * them (pipelines/transformations.ts); empty for other actions.
     */
    transformations: jsonb("transformations")
      .$type<{ entity: string; field: string; transformer: string; options: Record<string, unknown> }[]>()
      .notNull()
      .default([]),
    /**
     * Data-quality rules the source agent checks on every row read
     * (pipelines/quality-rules.ts); empty when none.
     */
    qualityRules: jsonb("quality_rules")
      .$type<{ entity: string; field: string; rule: string; options: Record<string, unknown> }[]>()
      .notNull()
      .default([]),
    /**
     * `once`: a run copies what is there and ends; `continuous`: one long-lived
     * execution copies batch after batch until stopped (pipelines/continuous-settings.ts).
     */
    mode: text("mode", { enum: ["once", "continuous"] })
      .notNull()
      .default("once"),
    /** Continuous mode: the field whose growth marks new or changed rows; null = the row key. */
    cursorField: text("cursor_field"),
    /** Continuous mode: wait between polls that found nothing new. */
    batchIntervalMs: integer("batch_interval_ms").notNull().default(2500),
    /** Continuous mode: rows newer than now() minus this are left for a later poll. */
    safetyLagMs: integer("safety_lag_ms").notNull().default(5000),
    /** Continuous mode: consecutive failed polls after which the pipeline pauses itself. */
    maxFailedPolls: integer("max_failed_polls").notNull().default(5),
    /** Continuous mode: reconcile deletes every N polls; 0 = only on demand. */
    reconcileEveryPolls: integer("reconcile_every_polls").notNull().default(0),
    /**
     * A `files` pipeline's file format and field mapping (pipelines/file-settings.ts);
     * null for other pipelines.
     */
    fileSettings: jsonb("file_settings").$type<Record<string, unknown> | null>(),
    createdAt: createdAt(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [uniqueIndex("pipelines_org_name_idx").on(t.organisationId, t.name)],
);

/** One run of a pipeline. Status: queued → in_progress → completed | failed | cancelled. */
export const executions = pgTable(
  "executions",
  {
    id: uuid("id").primaryKey(),
    organisationId: uuid("organisation_id")
      .notNull()
      .references(() => organisations.id, { onDelete: "cascade" }),
    pipelineId: uuid("pipeline_id")
      .notNull()
      .references(() => pipelines.id, { onDelete: "cascade" }),
    /** `pt-<uuid>`, the seed's pipeline token. */
    pipelineToken: text("pipeline_token").notNull(),
    /**
     * `run`: a once run; `continuous`: a continuous pipeline's long-lived
     * execution; `file`: the load of one uploaded file.
     */
    kind: text("kind", { enum: ["run", "continuous", "file"] })
      .notNull()
      .default("run"),
    /** A `file` execution's file (SHA-256 of its bytes, hex). */
    fileId: text("file_id"),
    /** The upload batch a `file` execution came in with (the uploader's publisher token). */
    publisherToken: text("publisher_token"),
    /** Continuous: when a stop was asked for (the batch in flight finishes first). */
    stopRequestedAt: ts("stop_requested_at"),
    stoppedBy: jsonb("stopped_by").$type<{ tokenId: string; tokenName: string; role: string }>(),
    /** Continuous: polls of the source so far, and when the last one ran. */
    polls: bigint("polls", { mode: "number" }).notNull().default(0),
    lastPollAt: ts("last_poll_at"),
    /** Continuous: a reconcile asked for on demand, run at the next poll. */
    reconcileRequestedAt: ts("reconcile_requested_at"),
    status: text("status", { enum: ["queued", "in_progress", "completed", "failed", "cancelled"] }).notNull(),
    /** Who started it: `{ tokenId, tokenName, role }`. */
    triggeredBy: jsonb("triggered_by")
      .$type<{ tokenId: string; tokenName: string; role: string }>()
      .notNull(),
    /** Pipeline settings and plan frozen at start (later pipeline edits do not change a run). */
    snapshot: jsonb("snapshot").notNull(),
    /** Machine-readable failure reason, e.g. `monthly_record_limit`, `environment_unhealthy`. */
    reasonCode: text("reason_code"),
    /** Human-readable failure or cancel reason. */
    reason: text("reason"),
    /** Confirmation given for destructive strategies on protected targets. */
    confirmed: boolean("confirmed").notNull().default(false),
    cancelRequestedAt: ts("cancel_requested_at"),
    cancelledBy: jsonb("cancelled_by").$type<{ tokenId: string; tokenName: string; role: string }>(),
    leaseOwner: text("lease_owner"),
    leaseExpiresAt: ts("lease_expires_at"),
    /** Times claimed; > 1 means it was resumed after a lost lease. */
    attempts: integer("attempts").notNull().default(0),
    /** Last event sequence number issued for this execution. */
    eventSeq: bigint("event_seq", { mode: "number" }).notNull().default(0),
    createdAt: createdAt(),
    startedAt: ts("started_at"),
    finishedAt: ts("finished_at"),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("executions_token_idx").on(t.pipelineToken),
    index("executions_pipeline_idx").on(t.pipelineId, t.createdAt),
    index("executions_claim_idx").on(t.status, t.createdAt),
    // One queued or running execution per pipeline: a second start answers 409.
    // File loads are jobs of their own: many may queue for one pipeline (serialised by the target locks).
    uniqueIndex("executions_one_active_idx")
      .on(t.pipelineId)
      .where(sql`status in ('queued', 'in_progress') and kind <> 'file'`),
    index("executions_publisher_idx").on(t.organisationId, t.publisherToken),
  ],
);

/** Per-entity progress and checkpoint of an execution. */
export const executionEntities = pgTable(
  "execution_entities",
  {
    executionId: uuid("execution_id")
      .notNull()
      .references(() => executions.id, { onDelete: "cascade" }),
    entity: text("entity").notNull(),
    /** Dependency level (0 first). */
    level: integer("level").notNull(),
    status: text("status", {
      enum: ["pending", "in_progress", "completed", "failed", "cancelled"],
    }).notNull(),
    /** 1 = load, 2 = back-fill of deferred references. */
    pass: integer("pass").notNull().default(1),
    total: bigint("total", { mode: "number" }).notNull().default(0),
    processed: bigint("processed", { mode: "number" }).notNull().default(0),
    created: bigint("created", { mode: "number" }).notNull().default(0),
    updated: bigint("updated", { mode: "number" }).notNull().default(0),
    skipped: bigint("skipped", { mode: "number" }).notNull().default(0),
    failed: bigint("failed", { mode: "number" }).notNull().default(0),
    /** Keyset position after the last committed batch of the current pass; null = start. */
    checkpoint: jsonb("checkpoint").$type<string[] | null>(),
    batches: integer("batches").notNull().default(0),
    startedAt: ts("started_at"),
    finishedAt: ts("finished_at"),
  },
  (t) => [primaryKey({ columns: [t.executionId, t.entity] })],
);

/** Every batch of an execution: what was read, what committed, how often it was tried. */
export const executionBatches = pgTable(
  "execution_batches",
  {
    id: uuid("id").primaryKey(),
    executionId: uuid("execution_id")
      .notNull()
      .references(() => executions.id, { onDelete: "cascade" }),
    entity: text("entity").notNull(),
    pass: integer("pass").notNull().default(1),
    /** 1-based batch number within entity and pass. */
    seq: integer("seq").notNull(),
    /** Ledger id written to the target with the rows. */
    batchId: text("batch_id").notNull(),
    state: text("state", { enum: ["in_progress", "succeeded", "failed", "cancelled", "skipped"] }).notNull(),
    cursorFrom: jsonb("cursor_from").$type<string[] | null>(),
    cursorTo: jsonb("cursor_to").$type<string[] | null>(),
    rows: integer("rows").notNull().default(0),
    bytes: integer("bytes").notNull().default(0),
    created: integer("created").notNull().default(0),
    updated: integer("updated").notNull().default(0),
    rejected: integer("rejected").notNull().default(0),
    /** Records reserved against the monthly limit while the batch is in flight. */
    reserved: integer("reserved").notNull().default(0),
    /** UTC month (`YYYY-MM`) the reservation and the committed records count in. */
    usageMonth: text("usage_month"),
    attempts: integer("attempts").notNull().default(0),
    durationMs: integer("duration_ms"),
    error: text("error"),
    startedAt: ts("started_at").notNull().defaultNow(),
    finishedAt: ts("finished_at"),
  },
  (t) => [
    uniqueIndex("execution_batches_batch_id_idx").on(t.batchId),
    index("execution_batches_execution_idx").on(t.executionId, t.entity, t.pass, t.seq),
  ],
);

/**
 * The stage log (seed vocabulary): per execution, append-only entries with a
 * process name (StreamNotifier, DataQuality, Transformation, JobRunner,
 * PostgresLoader) and a state begin / processing / end / error.
 */
export const executionLog = pgTable(
  "execution_log",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    executionId: uuid("execution_id")
      .notNull()
      .references(() => executions.id, { onDelete: "cascade" }),
    at: ts("at").notNull().defaultNow(),
    processName: text("process_name").notNull(),
    state: text("state", { enum: ["begin", "processing", "end", "error"] }).notNull(),
    code: text("code").notNull(),
    description: text("description").notNull(),
    entity: text("entity"),
  },
  (t) => [index("execution_log_execution_idx").on(t.executionId, t.id)],
);

/** Errors and warnings of an execution, per record where there is one. */
export const executionErrors = pgTable(
  "execution_errors",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    executionId: uuid("execution_id")
      .notNull()
      .references(() => executions.id, { onDelete: "cascade" }),
    at: ts("at").notNull().defaultNow(),
    severity: text("severity", { enum: ["error", "warning"] }).notNull(),
    entity: text("entity"),
    /** Key values of the record, in key order; null when not about one record. */
    recordKey: jsonb("record_key").$type<string[] | null>(),
    field: text("field"),
    code: text("code"),
    message: text("message").notNull(),
  },
  (t) => [index("execution_errors_execution_idx").on(t.executionId, t.id)],
);

/**
 * Every event of an execution, in order (`seq`), as published on NATS. The SSE
 * endpoint replays from here, so `Last-Event-ID` resumes on any replica.
 */
export const executionEvents = pgTable(
  "execution_events",
  {
    executionId: uuid("execution_id")
      .notNull()
      .references(() => executions.id, { onDelete: "cascade" }),
    seq: bigint("seq", { mode: "number" }).notNull(),
    /** `status` | `progress` | `log` (the NATS subject's last token). */
    channel: text("channel", { enum: ["status", "progress", "log"] }).notNull(),
    payload: jsonb("payload").notNull(),
    at: ts("at").notNull().defaultNow(),
    /**
     * When NATS acknowledged the event; null while it is still to be published
     * (the store is the outbox: see events/event-republisher.ts).
     */
    publishedAt: ts("published_at"),
  },
  (t) => [
    primaryKey({ columns: [t.executionId, t.seq] }),
    index("execution_events_unpublished_idx").on(t.executionId, t.seq).where(sql`published_at is null`),
  ],
);

/** Committed created+updated records per organisation and UTC month (`YYYY-MM`). */
export const usage = pgTable(
  "usage",
  {
    organisationId: uuid("organisation_id")
      .notNull()
      .references(() => organisations.id, { onDelete: "cascade" }),
    month: text("month").notNull(),
    /** Records committed. */
    records: bigint("records", { mode: "number" }).notNull().default(0),
    /** Records reserved by batches in flight (not yet committed). */
    reserved: bigint("reserved", { mode: "number" }).notNull().default(0),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.organisationId, t.month] })],
);

/**
 * Serialises executions writing the same target entity: a row per
 * (target environment, entity) held by the execution writing it.
 */
export const targetEntityLocks = pgTable(
  "target_entity_locks",
  {
    environmentId: uuid("environment_id")
      .notNull()
      .references(() => environments.id, { onDelete: "cascade" }),
    entity: text("entity").notNull(),
    executionId: uuid("execution_id")
      .notNull()
      .references(() => executions.id, { onDelete: "cascade" }),
    acquiredAt: ts("acquired_at").notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.environmentId, t.entity] })],
);

export const schema = {
  organisations,
  apiTokens,
  agentSessions,
  webSessions,
  webSignInLinks,
  environments,
  enrollmentTokens,
  agents,
  pipelines,
  executions,
  executionEntities,
  executionBatches,
  executionLog,
  executionErrors,
  executionEvents,
  usage,
  targetEntityLocks,
};

/**
 * Files uploaded to a `files` pipeline, one row per distinct content (the
 * seed's PIPELINES_FILES): `Unloaded` until its load ends, then `Loaded` or
 * `Skipped` (after every retry failed, with the error). DROP FILE deletes the
 * row, so the same bytes load again when uploaded again.
 */
export const pipelineFiles = pgTable(
  "pipeline_files",
  {
    pipelineId: uuid("pipeline_id")
      .notNull()
      .references(() => pipelines.id, { onDelete: "cascade" }),
    /** SHA-256 of the uploaded bytes, hex. */
    fileId: text("file_id").notNull(),
    organisationId: uuid("organisation_id")
      .notNull()
      .references(() => organisations.id, { onDelete: "cascade" }),
    filename: text("filename").notNull(),
    /** `csv` or `ndjson`. */
    format: text("format").notNull(),
    /** True when the bytes are gzip-compressed. */
    compressed: boolean("compressed").notNull().default(false),
    sizeBytes: bigint("size_bytes", { mode: "number" }).notNull(),
    state: text("state", { enum: ["Unloaded", "Loaded", "Skipped"] }).notNull(),
    /** Why the file was skipped. */
    error: text("error"),
    /** The staged bytes (staged_file_chunks.upload_id); null once purged. */
    uploadId: uuid("upload_id"),
    executionId: uuid("execution_id"),
    pipelineToken: text("pipeline_token").notNull(),
    publisherToken: text("publisher_token"),
    rowsLoaded: bigint("rows_loaded", { mode: "number" }).notNull().default(0),
    rowsRejected: bigint("rows_rejected", { mode: "number" }).notNull().default(0),
    uploadedAt: createdAt(),
    finishedAt: ts("finished_at"),
  },
  (t) => [
    primaryKey({ columns: [t.pipelineId, t.fileId] }),
    index("pipeline_files_uploaded_idx").on(t.uploadedAt),
    index("pipeline_files_publisher_idx").on(t.organisationId, t.publisherToken),
  ],
);

/**
 * Uploaded bytes staged in the store in chunks, so that every replica can load
 * them. Chunks of an upload that no pipeline_files row points to are purged.
 */
export const stagedFileChunks = pgTable(
  "staged_file_chunks",
  {
    uploadId: uuid("upload_id").notNull(),
    /** 0-based chunk number. */
    seq: integer("seq").notNull(),
    data: bytea("data").notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    primaryKey({ columns: [t.uploadId, t.seq] }),
    index("staged_file_chunks_created_idx").on(t.createdAt),
  ],
);
