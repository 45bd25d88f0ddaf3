import type { MessageInitShape } from "@bufbuild/protobuf";
import { DrayError, grpcStatusOf, linkedAbortController } from "@dray/common";
import {
  type CompleteTaskRequestSchema,
  ConditionOperator,
  RejectPolicy,
  RowEncoding,
  type Task,
  type TaskResultSchema,
  taskErrorReasonToWire,
  type Condition as WireCondition,
  type RowBatch as WireRowBatch,
  WriteStrategy,
} from "@dray/proto";
import type {
  Condition,
  Connector,
  ContinuousBound,
  EntityName,
  FieldQualityRule,
  FieldTransform,
  ConditionOperator as Operator,
  RowBatch,
  WriteStrategy as WriteStrategyName,
} from "./connector.js";

type TaskResultInit = MessageInitShape<typeof TaskResultSchema>;
type Outcome = MessageInitShape<typeof CompleteTaskRequestSchema>["outcome"];

const OPERATORS: Record<ConditionOperator, Operator | undefined> = {
  [ConditionOperator.UNSPECIFIED]: undefined,
  [ConditionOperator.EQ]: "eq",
  [ConditionOperator.NEQ]: "neq",
  [ConditionOperator.LT]: "lt",
  [ConditionOperator.LTE]: "lte",
  [ConditionOperator.GT]: "gt",
  [ConditionOperator.GTE]: "gte",
  [ConditionOperator.IS_NULL]: "is_null",
  [ConditionOperator.IS_NOT_NULL]: "is_not_null",
  [ConditionOperator.IN]: "in",
};

const STRATEGIES: Record<WriteStrategy, WriteStrategyName | undefined> = {
  [WriteStrategy.UNSPECIFIED]: undefined,
  [WriteStrategy.INSERT]: "insert",
  [WriteStrategy.MERGE]: "merge",
  [WriteStrategy.UPDATE]: "update",
};

function conditions(where: WireCondition[]): Condition[] {
  return where.map((c) => {
    const operator = OPERATORS[c.operator];
    if (!operator) throw new DrayError("invalid_argument", `condition on "${c.field}" has no operator`);
    return { field: c.field, operator, values: [...c.values] };
  });
}

function entityOf(ref: { schema: string; name: string } | undefined): EntityName {
  if (!ref?.name) throw new DrayError("invalid_argument", "the task names no entity");
  return { schema: ref.schema || "public", name: ref.name };
}

function rowsFromWire(rows: WireRowBatch | undefined): RowBatch {
  if (!rows) return { encoding: "copy_text", fields: [], rowCount: 0, data: new Uint8Array() };
  if (rows.encoding !== RowEncoding.COPY_TEXT) {
    throw new DrayError(
      "invalid_argument",
      `unsupported row encoding ${RowEncoding[rows.encoding] ?? rows.encoding}`,
    );
  }
  return { encoding: "copy_text", fields: [...rows.fields], rowCount: rows.rowCount, data: rows.data };
}

/** Bytes kept free in a read result for everything but the row data. */
const RESULT_OVERHEAD_BYTES = 64 * 1024;

/**
 * Runs one task against the connector and returns its wire outcome. The task's
 * deadline and the caller's signal (cancel, drain) both abort it. Never throws:
 * failures become a TaskError with the DrayError's code and retryable flag.
 */
export async function runTask(connector: Connector, task: Task, signal: AbortSignal): Promise<Outcome> {
  const deadlineMs = Number(task.deadlineUnixMs);
  const remaining = deadlineMs > 0 ? deadlineMs - Date.now() : 60_000;
  const { controller, dispose } = linkedAbortController(signal, AbortSignal.timeout(Math.max(1, remaining)));
  try {
    const result = await execute(
      connector,
      task,
      controller.signal,
      Number(task.maxResultBytes) || 32 * 1024 * 1024,
    );
    return { case: "result", value: result };
  } catch (error) {
    let e = DrayError.from(error);
    if (e.code === "cancelled" && Date.now() >= deadlineMs && deadlineMs > 0) {
      e = new DrayError("deadline_exceeded", "the task's deadline passed", { retryable: true });
    }
    const details = e.details as { sqlState?: string; reason?: string } | undefined;
    return {
      case: "error",
      value: {
        code: grpcStatusOf(e.code),
        message: e.message,
        retryable: e.retryable,
        sqlState: typeof details?.sqlState === "string" ? details.sqlState : "",
        reason: typeof details?.reason === "string" ? details.reason : "",
        reasonCode: taskErrorReasonToWire(details?.reason),
      },
    };
  } finally {
    dispose();
  }
}

async function execute(
  connector: Connector,
  task: Task,
  signal: AbortSignal,
  maxResultBytes: number,
): Promise<TaskResultInit> {
  const kind = task.kind;
  switch (kind.case) {
    case "testConnection": {
      const r = await connector.testConnection(signal);
      return {
        kind: { case: "testConnection", value: { ...r, databaseLatencyMs: Math.round(r.databaseLatencyMs) } },
      };
    }
    case "describeSchema": {
      const d = await connector.describeSchema([...kind.value.schemas], signal, {
        estimates: !kind.value.statisticsOnly,
      });
      return {
        kind: {
          case: "describeSchema",
          value: {
            fingerprint: d.fingerprint,
            entities: d.entities.map((e) => ({
              schema: e.schema,
              name: e.name,
              fields: e.fields,
              primaryKey: e.primaryKey,
              references: e.references,
              estimatedRows: BigInt(Math.trunc(e.estimatedRows)),
              estimateSource: e.estimateSource ?? "statistics",
              rowKey: e.rowKey ?? e.primaryKey,
              kind: e.kind ?? "table",
              uniqueKeys: (e.uniqueKeys ?? []).map((fields) => ({ fields })),
            })),
          },
        },
      };
    }
    case "count": {
      const more = kind.value.more ?? [];
      if (more.length > 0 || (kind.value.estimateOverBytes ?? 0n) > 0n) {
        if (kind.value.where.length > 0)
          throw new DrayError("invalid_argument", "a count of several entities takes no conditions");
        const counts = await connector.countMany(
          [entityOf(kind.value.entity), ...more.map(entityOf)],
          signal,
          {
            estimateOverBytes: Number(kind.value.estimateOverBytes ?? 0n),
          },
        );
        return {
          kind: {
            case: "count",
            value: {
              count: BigInt(counts[0]?.count ?? 0),
              counts: counts.map((c) => BigInt(c.count)),
              estimated: counts.map((c) => c.estimated),
              upperBounds: counts.map((c) => BigInt(c.upperBound)),
            },
          },
        };
      }
      const count = await connector.count(entityOf(kind.value.entity), conditions(kind.value.where), signal);
      return { kind: { case: "count", value: { count: BigInt(count) } } };
    }
    case "readBatch": {
      const r = kind.value;
      const budget = Math.max(
        1024,
        Math.min(Number(r.maxBytes) || maxResultBytes, maxResultBytes - RESULT_OVERHEAD_BYTES),
      );
      const result = await connector.readBatch(
        {
          entity: entityOf(r.entity),
          fields: [...r.fields],
          keyFields: [...r.keyFields],
          after: r.after ? [...r.after.values] : null,
          until: r.until ? [...r.until.values] : null,
          maxRows: r.maxRows || 10_000,
          maxBytes: budget,
          where: conditions(r.where),
          nullFields: [...r.nullFields],
          ...(r.transforms.length > 0 ? { transforms: r.transforms.map(transformOf) } : {}),
          ...(r.qualityRules.length > 0 ? { qualityRules: r.qualityRules.map(qualityRuleOf) } : {}),
          ...(r.continuous ? { continuous: continuousOf(r.continuous) } : {}),
          ...(r.snapshotId ? { snapshotId: r.snapshotId } : {}),
        },
        signal,
      );
      return {
        kind: {
          case: "readBatch",
          value: {
            ...(result.transformKeyId ? { transformKeyId: result.transformKeyId } : {}),
            rows: {
              encoding: RowEncoding.COPY_TEXT,
              fields: result.rows.fields,
              rowCount: result.rows.rowCount,
              data: result.rows.data,
            },
            ...(result.last ? { last: { values: result.last } } : {}),
            done: result.done,
            rejectedRecords: (result.rejected ?? []).map((r) => ({
              key: r.key.map((v) => v ?? ""),
              field: r.field,
              message: r.message,
              sqlState: "",
            })),
            transformStats: result.transformStats ?? [],
          },
        },
      };
    }
    case "writeBatch": {
      const w = kind.value;
      if (!w.batchId) throw new DrayError("invalid_argument", "a write batch needs a batch id");
      const strategy = STRATEGIES[w.strategy];
      if (!strategy)
        throw new DrayError("invalid_argument", "a write batch needs the strategy insert, merge or update");
      const result = await connector.writeBatch(
        {
          batchId: w.batchId,
          entity: entityOf(w.entity),
          strategy,
          keyFields: [...w.keyFields],
          rows: rowsFromWire(w.rows),
          rejectPolicy: w.rejectPolicy === RejectPolicy.FAIL ? "fail" : "isolate",
          ...(w.previousBatchId ? { previousBatchId: w.previousBatchId } : {}),
          fireTriggers: w.fireTriggers,
          uncheckedReferences: [...w.uncheckedReferences],
          ...(w.position ? { position: [...w.position.values] } : {}),
          ...(w.moveSequences ? { moveSequences: true } : {}),
        },
        signal,
      );
      return {
        kind: {
          case: "writeBatch",
          value: {
            alreadyCommitted: result.alreadyCommitted,
            created: result.created,
            updated: result.updated,
            rejected: result.rejected,
            rejectedRecords: result.rejectedRecords.map((r) => ({
              key: r.key,
              field: r.field ?? "",
              message: r.message,
              sqlState: r.sqlState ?? "",
            })),
            ...(result.sequences ? { sequencesMoved: true, sequences: result.sequences } : {}),
          },
        },
      };
    }
    case "cleanEntity": {
      const deleted = await connector.cleanEntity(entityOf(kind.value.entity), signal, {
        suspendReferences: kind.value.suspendReferences,
      });
      return { kind: { case: "cleanEntity", value: { deleted: BigInt(deleted) } } };
    }
    case "deleteRecords": {
      const d = kind.value;
      const deleted = await connector.deleteRecords(
        entityOf(d.entity),
        [...d.keyFields],
        d.keys.map((k) => [...k.values]),
        signal,
      );
      return { kind: { case: "deleteRecords", value: { deleted: BigInt(deleted) } } };
    }
    case "finishEntity": {
      const f = kind.value;
      const result = await connector.finishEntity(
        {
          entity: entityOf(f.entity),
          moveSequences: f.moveSequences,
          checkReferences: [...f.checkReferences],
          keyFields: [...f.keyFields],
        },
        signal,
      );
      return {
        kind: {
          case: "finishEntity",
          value: { ...result, violationCount: BigInt(result.violationCount) },
        },
      };
    }
    case "digestKeys": {
      const d = kind.value;
      const result = await connector.digestKeys(
        {
          entity: entityOf(d.entity),
          keyFields: [...d.keyFields],
          after: d.after ? [...d.after.values] : null,
          until: d.until ? [...d.until.values] : null,
          splitEvery: d.splitEvery,
          boundaries: d.boundaries.map((b) => [...b.values]),
        },
        signal,
      );
      return {
        kind: {
          case: "digestKeys",
          value: {
            boundaries: result.boundaries.map((values) => ({ values })),
            ranges: result.ranges.map((r) => ({ count: BigInt(r.count), digest: r.digest })),
          },
        },
      };
    }
    case "exportSnapshot": {
      const snapshotId = await connector.exportSnapshot(signal);
      return { kind: { case: "exportSnapshot", value: { snapshotId } } };
    }
    case "releaseSnapshot": {
      await connector.releaseSnapshot(kind.value.snapshotId);
      return { kind: { case: "releaseSnapshot", value: {} } };
    }
    case undefined:
      throw new DrayError("unimplemented", "the task has no kind this agent knows: upgrade the agent");
  }
}

/**
 * A transformation as the connector takes it; the options travel as JSON.
 *
 * @throws DrayError `invalid_argument` when the options are not a JSON object.
 */
/** The options object of `optionsJson`; throws naming `what` when it is not a JSON object. */
function optionsOf(optionsJson: string, what: string): Record<string, unknown> {
  let options: unknown = {};
  if (optionsJson) {
    try {
      options = JSON.parse(optionsJson);
    } catch {
      options = undefined;
    }
  }
  if (options === null || typeof options !== "object" || Array.isArray(options))
    throw new DrayError("invalid_argument", `the options of ${what} must be a JSON object`);
  return options as Record<string, unknown>;
}

/**
 * The continuous bound as the connector takes it. A lag beyond what a number
 * holds exactly stays out of range, so the connector refuses it
 * (`invalid_argument`, see continuous-bound.ts).
 */
function continuousOf(c: { cursorField: string; safetyLagMs: bigint }): ContinuousBound {
  const lag =
    c.safetyLagMs > BigInt(Number.MAX_SAFE_INTEGER) ? Number.POSITIVE_INFINITY : Number(c.safetyLagMs);
  return { cursorField: c.cursorField, safetyLagMs: lag };
}

function transformOf(t: { field: string; transformer: string; optionsJson: string }): FieldTransform {
  const options = optionsOf(t.optionsJson, `transformation ${t.transformer} on ${JSON.stringify(t.field)}`);
  return { field: t.field, transformer: t.transformer, options };
}

function qualityRuleOf(r: { field: string; rule: string; optionsJson: string }): FieldQualityRule {
  const options = optionsOf(r.optionsJson, `data-quality rule ${r.rule} on ${JSON.stringify(r.field)}`);
  return { field: r.field, rule: r.rule, options };
}
