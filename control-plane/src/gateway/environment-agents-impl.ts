import { formatEntityName } from "@dray/common";
import type { Entity } from "@dray/proto";
import {
  ENTITY_KINDS,
  type EntityKind,
  type EntitySnapshot,
  type SchemaSnapshot,
} from "../environments/schema-snapshot.js";
import type { AgentSessions } from "./agent-sessions.js";
import type { EnvironmentAgents } from "./environment-agents.js";

/**
 * Converts a described entity from the wire into the stored snapshot shape;
 * `entity` and `referencedEntity` are canonical names (see formatEntityName).
 * `rowKey` is the agent's row key; an agent that does not send one (empty
 * while the primary key is not: agents before row keys) gets its primary key.
 * `kind` is left out when the agent does not say (read as `table`).
 */
export function entitySnapshotOf(entity: Entity): EntitySnapshot {
  return {
    entity: formatEntityName({ schema: entity.schema, table: entity.name }),
    schema: entity.schema,
    name: entity.name,
    fields: entity.fields.map((f) => ({
      name: f.name,
      type: f.type,
      nullable: f.nullable,
      hasDefault: f.hasDefault,
      generated: f.generated,
    })),
    primaryKey: [...entity.primaryKey],
    rowKey: entity.rowKey?.length ? [...entity.rowKey] : [...entity.primaryKey],
    ...(entity.uniqueKeys?.length ? { uniqueKeys: entity.uniqueKeys.map((k) => [...k.fields]) } : {}),
    ...(isEntityKind(entity.kind) ? { kind: entity.kind } : {}),
    references: entity.references.map((r) => ({
      name: r.name,
      fields: [...r.fields],
      referencedEntity: formatEntityName({
        schema: r.referencedEntity?.schema ?? "",
        table: r.referencedEntity?.name ?? "",
      }),
      referencedFields: [...r.referencedFields],
      ...(r.validated ? { validated: true } : {}),
    })),
    estimatedRows: Number(entity.estimatedRows),
    ...(isLabelledEstimate(entity.estimateSource) ? { estimateSource: entity.estimateSource } : {}),
  };
}

/** A `kind` label of the wire this control plane knows ("" from agents that do not send it). */
function isEntityKind(label: string): label is EntityKind {
  return (ENTITY_KINDS as readonly string[]).includes(label);
}

/** A non-default `estimate_source` label of the wire (empty means statistics). */
function isLabelledEstimate(label: string): label is "exact" | "sampled" {
  return label === "exact" || label === "sampled";
}

/** {@link EnvironmentAgents} over the agent gateway's sessions. */
export function createEnvironmentAgents(sessions: AgentSessions): EnvironmentAgents {
  return {
    isConnected: (environmentId) => sessions.isConnected(environmentId),

    async testConnection(environmentId, signal) {
      const started = performance.now();
      const result = await sessions.dispatch(
        environmentId,
        "testConnection",
        {},
        { timeoutMs: 10_000, signal },
      );
      return {
        roundTripMs: Math.round(performance.now() - started),
        databaseLatencyMs: result.databaseLatencyMs,
        serverVersion: result.serverVersion,
        databaseName: result.databaseName,
      };
    },

    readBatch: (environmentId, task, signal) =>
      sessions.dispatch(environmentId, "readBatch", task, {
        timeoutMs: 60_000,
        signal,
        maxResultBytes: Number(task.maxBytes ?? 0n) + 1024 * 1024,
      }),

    async describeSchema(environmentId, signal, options = {}): Promise<SchemaSnapshot> {
      const result = await sessions.dispatch(
        environmentId,
        "describeSchema",
        { schemas: [], statisticsOnly: options.statisticsOnly === true },
        { timeoutMs: 60_000, signal },
      );
      return {
        capturedAt: new Date().toISOString(),
        fingerprint: result.fingerprint,
        entities: result.entities.map(entitySnapshotOf),
      };
    },
  };
}
