import { create } from "@bufbuild/protobuf";
import { DrayError } from "@dray/common";
import type { ReadBatchResult, RejectedRecord, RowBatch, WriteBatchResult } from "@dray/proto";
import { RejectPolicy, RowBatchSchema, RowEncoding, WriteStrategy } from "@dray/proto";
import type { AgentSessions } from "../gateway/agent-sessions.js";
import { createEnvironmentAgents } from "../gateway/environment-agents-impl.js";
import type {
  AgentPort,
  CallOptions,
  DigestKeysRequest,
  ReadRequest,
  ReadResult,
  RejectedRow,
  RowPayload,
  WriteMode,
  WriteRequest,
  WriteResult,
} from "./agent-port.js";
import { decodeCopyRows } from "./copy-text-rows.js";

/**
 * Rows as the source agent encoded them: handed to the target agent as they
 * are, never decoded by the control plane.
 */
export class WireRows implements RowPayload {
  constructor(readonly batch: RowBatch) {}
  get rowCount(): number {
    return this.batch.rowCount;
  }
  get byteLength(): number {
    return this.batch.data.byteLength;
  }
}

const STRATEGY: Record<WriteMode, WriteStrategy> = {
  insert: WriteStrategy.INSERT,
  merge: WriteStrategy.MERGE,
  update: WriteStrategy.UPDATE,
};

const rejectedRows = (records: readonly RejectedRecord[]): RejectedRow[] =>
  records.map((r) => ({ key: r.key, field: r.field, message: r.message, sqlState: r.sqlState }));

const withJson = <T extends { options: Record<string, unknown> }>(specs: readonly T[]) =>
  specs.map(({ options, ...rest }) => ({ ...rest, optionsJson: JSON.stringify(options) }));

/** The wire task of a read. */
export function readTask(request: ReadRequest) {
  return {
    entity: request.entity,
    fields: [...request.fields],
    keyFields: [...request.keyFields],
    ...(request.after ? { after: { values: [...request.after] } } : {}),
    ...(request.until ? { until: { values: [...request.until] } } : {}),
    maxRows: request.maxRows,
    maxBytes: BigInt(request.maxBytes),
    nullFields: [],
    transforms: withJson(request.transforms),
    qualityRules: withJson(request.qualityRules),
    ...(request.snapshotId ? { snapshotId: request.snapshotId } : {}),
    ...(request.continuous
      ? {
          continuous: {
            cursorField: request.continuous.cursorField,
            safetyLagMs: BigInt(request.continuous.safetyLagMs),
          },
        }
      : {}),
  };
}

const NO_ROWS = { rowCount: 0, fields: [], data: new Uint8Array() } as unknown as RowBatch;

/** The port's view of a read's wire result. */
export function readResult(result: ReadBatchResult): ReadResult {
  return {
    rows: new WireRows(result.rows ?? NO_ROWS),
    last: result.last?.values ? [...result.last.values] : null,
    done: result.done,
    qualityRejected: rejectedRows(result.rejectedRecords ?? []),
    transformKeyId: result.transformKeyId,
  };
}

function wireRows(rows: RowPayload, fence: boolean): RowBatch {
  if (!(rows instanceof WireRows))
    throw new DrayError("internal", "rows handed to the gateway agent port were not read through it");
  return fence ? ({ ...rows.batch, rowCount: 0, data: new Uint8Array() } as RowBatch) : rows.batch;
}

/** The wire task of a write; a fence carries the batch's shape and no row. */
export function writeTask(request: WriteRequest) {
  return {
    batchId: request.batchId,
    entity: request.entity,
    strategy: STRATEGY[request.mode],
    keyFields: [...request.keyFields],
    rows: wireRows(request.rows, request.fence),
    rejectPolicy: request.onRowError === "fail" ? RejectPolicy.FAIL : RejectPolicy.ISOLATE,
    previousBatchId: request.previousBatchId,
    fireTriggers: request.fireTriggers,
    uncheckedReferences: [...request.uncheckedReferences],
    ...(request.position ? { position: { values: [...request.position] } } : {}),
    moveSequences: request.moveSequences === true,
  };
}

function writeResult(result: WriteBatchResult): WriteResult {
  return {
    alreadyCommitted: result.alreadyCommitted,
    created: result.created,
    updated: result.updated,
    rejected: result.rejected,
    rejectedRows: rejectedRows(result.rejectedRecords),
    ...(result.sequencesMoved ? { sequences: result.sequences.map((q) => ({ ...q })) } : {}),
  };
}

/** The wire task of a key digest. */
export function digestKeysTask(request: DigestKeysRequest) {
  return {
    entity: request.entity,
    keyFields: [...request.keyFields],
    ...(request.after ? { after: { values: [...request.after] } } : {}),
    ...(request.until ? { until: { values: [...request.until] } } : {}),
    splitEvery: request.splitEvery,
    boundaries: request.boundaries.map((values) => ({ values: [...values] })),
  };
}

const dispatchOptions = (o: CallOptions) => ({
  ...(o.signal ? { signal: o.signal } : {}),
  timeoutMs: o.timeoutMs,
  ...(o.maxResultBytes ? { maxResultBytes: o.maxResultBytes } : {}),
});

/**
 * The executor's agent port over the agent gateway. `sessions` is this
 * replica's {@link AgentSessions} (agents connected here) or, with several
 * replicas, a `ReplicaAgentSessions`, which relays a task over NATS to the
 * replica holding the agent (control-plane README, "Several replicas").
 */
export function gatewayAgentPort(sessions: AgentSessions): AgentPort {
  const environments = createEnvironmentAgents(sessions);
  return {
    describe: (environmentId, options) =>
      environments.describeSchema(environmentId, options.signal, {
        statisticsOnly: options.statisticsOnly === true,
      }),
    async readBatch(environmentId, request, options) {
      const r = await sessions.dispatch(
        environmentId,
        "readBatch",
        readTask(request),
        dispatchOptions(options),
      );
      return readResult(r);
    },
    async writeBatch(environmentId, request, options) {
      const r = await sessions.dispatch(
        environmentId,
        "writeBatch",
        writeTask(request),
        dispatchOptions(options),
      );
      return writeResult(r);
    },
    async count(environmentId, entity, options) {
      const r = await sessions.dispatch(
        environmentId,
        "count",
        { entity, where: [] },
        dispatchOptions(options),
      );
      return Number(r.count);
    },
    async countMany(environmentId, entities, options) {
      const [entity, ...more] = entities;
      if (!entity) return [];
      const r = await sessions.dispatch(
        environmentId,
        "count",
        { entity, where: [], more: [...more], estimateOverBytes: BigInt(options.estimateOverBytes ?? 0) },
        dispatchOptions(options),
      );
      // An agent that predates CountTask.more counted the first entity only.
      if (r.counts.length !== entities.length) return undefined;
      return r.counts.map((count, i) => ({
        count: Number(count),
        estimated: r.estimated[i] === true,
        upperBound: Number(r.upperBounds[i] ?? 0n),
      }));
    },
    async clean(environmentId, request, options) {
      const r = await sessions.dispatch(environmentId, "cleanEntity", request, dispatchOptions(options));
      return { deleted: Number(r.deleted) };
    },
    copyTextRows(fields, data, rowCount) {
      return new WireRows(
        create(RowBatchSchema, { encoding: RowEncoding.COPY_TEXT, fields: [...fields], rowCount, data }),
      );
    },
    rowValues(rows) {
      return decodeCopyRows((rows as WireRows).batch.data);
    },
    async deleteKeys(environmentId, request, options) {
      const r = await sessions.dispatch(
        environmentId,
        "deleteRecords",
        {
          entity: request.entity,
          keyFields: [...request.keyFields],
          keys: request.keys.map((values) => ({ values: [...values] })),
        },
        dispatchOptions(options),
      );
      return { deleted: Number(r.deleted) };
    },
    async finish(environmentId, request, options) {
      const r = await sessions.dispatch(
        environmentId,
        "finishEntity",
        {
          entity: request.entity,
          moveSequences: request.moveSequences,
          checkReferences: [...request.checkReferences],
          keyFields: [...request.keyFields],
        },
        dispatchOptions(options),
      );
      return {
        sequences: r.sequences.map(({ sequence, field, before, after, moved }) => ({
          sequence,
          field,
          before,
          after,
          moved,
        })),
        violations: r.violations.map(({ reference, key, message }) => ({ reference, key, message })),
        violationCount: Number(r.violationCount),
      };
    },
    async digestKeys(environmentId, request, options) {
      const r = await sessions.dispatch(
        environmentId,
        "digestKeys",
        digestKeysTask(request),
        dispatchOptions(options),
      );
      return {
        boundaries: r.boundaries.map((b) => [...b.values]),
        ranges: r.ranges.map((x) => ({ count: Number(x.count), digest: x.digest })),
      };
    },
    async exportSnapshot(environmentId, options) {
      const r = await sessions.dispatch(environmentId, "exportSnapshot", {}, dispatchOptions(options));
      return r.snapshotId;
    },
    async releaseSnapshot(environmentId, snapshotId, options) {
      await sessions.dispatch(environmentId, "releaseSnapshot", { snapshotId }, dispatchOptions(options));
    },
    isConnected: (environmentId) => sessions.isConnected(environmentId),
    connectedSince: (environmentId) => sessions.get(environmentId)?.openedAt,
    absence(environmentId) {
      const a = sessions.absence(environmentId);
      return a ? { since: a.since, agentId: a.agentId } : undefined;
    },
    async waitForAgent(environmentId, limitMs, signal) {
      await sessions.waitForAgent(environmentId, limitMs, signal);
    },
  };
}
