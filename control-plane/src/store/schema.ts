/**
 * The control plane's tables (drizzle). Migrations in control-plane/drizzle are
 * generated from this file with `pnpm --filter @dray/control-plane db:generate`
 * and run at start-up on Postgres and on PGlite alike.
 */
import { sql } from "drizzle-orm";
import {
  bigint,
  boolean,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";

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
    /** First characters of the token, safe to show so users can tell tokens apart. */
    tokenPrefix: text("token_prefix").notNull(),
    createdAt: createdAt(),
    lastUsedAt: ts("last_used_at"),
    revokedAt: ts("revoked_at"),
  },
  (t) => [
    uniqueIndex("api_tokens_hash_idx").on(t.tokenHash),
    index("api_tokens_org_idx").on(t.organisationId),
  ],
);

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

export const schema = { organisations, apiTokens, environments, enrollmentTokens, agents };
