import { randomUUID } from "node:crypto";
import { DrayError, sleep } from "@dray/common";
import type { ReadBatchResult, RejectedRecord, RowBatch, WriteBatchResult } from "@dray/proto";
import { RejectPolicy, WriteStrategy } from "@dray/proto";
import { and, desc, eq } from "drizzle-orm";
import { REASON_CODES, STAGES } from "../executions/execution-vocabulary.js";
import { isAgentAway } from "../gateway/agent-sessions.js";
import { raiseLimitHint, utcMonth } from "../pipelines/record-limit.js";
import { executionBatches, executionEntities } from "../store/schema.js";
import { type BatchOutcome, cancelBatch, finalizeBatch, reserveBatch } from "./batch-bookkeeping.js";
import { chainOrder } from "./batch-chain.js";
import { retryDecision } from "./retry-policy.js";
import type { EntityRunPlan, RunContext } from "./run-context.js";
import { abortKindOf } from "./run-errors.js";

/** Thrown when the monthly record limit stops the run at a batch boundary. */
export class RecordLimitReached extends DrayError {
  readonly reasonCode: string = REASON_CODES.monthlyRecordLimit;
  constructor(message: string, details: unknown) {
    super("resource_exhausted", message, { details, retryable: false });
  }
}

/** Thrown when a batch failed for good and `stopOnError` is set. */
export class BatchFailed extends DrayError {
  readonly reasonCode: string = REASON_CODES.batchFailed;
}

type Pass = 1 | 2;

/**
 * Fields of one pass over an entity. Pass 1 leaves deferred references out
 * altogether: a new row gets them NULL (their default), an existing row keeps
 * its value, so a re-run never blanks a good reference. Pass 2 writes them.
 */
export function passShape(
  entity: Pick<EntityRunPlan, "fields" | "keyFields" | "deferredFields">,
  pass: Pass,
) {
  if (pass === 1) {
    const deferred = new Set(entity.deferredFields);
    return { fields: entity.fields.filter((f) => !deferred.has(f)), nullFields: [] as string[] };
  }
  return { fields: [...entity.keyFields, ...entity.deferredFields], nullFields: [] as string[] };
}

/**
 * Thrown when the agent of an environment stayed away (disconnected, draining
 * or never connected) for longer than the time that marks its environment
 * unhealthy: the run fails with reason `agent_unavailable`, naming it.
 */
export class AgentUnavailable extends BatchFailed {
  override readonly reasonCode: string = REASON_CODES.agentUnavailable;
}

/** Uncounted waits for an agent in one call of {@link withRetries}, so a flapping agent cannot loop forever. */
const MAX_AGENT_WAITS = 20;

/** The role and name of an environment of the run. */
function environmentLabel(ctx: RunContext, environmentId: string): string {
  if (environmentId === ctx.settings.sourceEnvironmentId)
    return `source environment "${ctx.plan.sourceName}"`;
  if (environmentId === ctx.settings.targetEnvironmentId)
    return `target environment "${ctx.plan.targetName}"`;
  return `environment ${environmentId}`;
}

/**
 * Waits for the agent of `environmentId` after a task found it away, without
 * counting an attempt. Throws {@link AgentUnavailable} once it has been away
 * for `ctx.agentAwayLimitMs` (counted from when it left).
 */
async function waitForAgent(ctx: RunContext, environmentId: string, what: string, signal: AbortSignal) {
  const label = environmentLabel(ctx, environmentId);
  const absence = ctx.sessions.absence(environmentId);
  if (absence) {
    const leftS = Math.max(0, Math.round((absence.since + ctx.agentAwayLimitMs - Date.now()) / 1000));
    ctx.logger.warn("waiting for an agent", { what, environmentId, leftS });
    await ctx.journal.error({
      severity: "warning",
      message: `${what}: the agent of ${label} is away; waiting up to ${leftS} s more for it to come back`,
    });
  }
  try {
    await ctx.sessions.waitForAgent(environmentId, ctx.agentAwayLimitMs, signal);
  } catch (error) {
    const e = DrayError.from(error);
    if (signal.aborted || e.code === "cancelled") throw e;
    const details = e.details as { agentId?: string; awayMs?: number } | undefined;
    const seconds = Math.round((details?.awayMs ?? ctx.agentAwayLimitMs) / 1000);
    const agent = details?.agentId ? ` (agent ${details.agentId})` : "";
    throw new AgentUnavailable(
      "unavailable",
      `the agent of ${label}${agent} has been away for ${seconds} s, which marks its environment unhealthy: ` +
        "start it again (dray-agent with the same state directory) and re-run the pipeline",
      { details: { ...(e.details as object), environmentId }, cause: e, retryable: false },
    );
  }
}

/**
 * Runs one agent task with the run's retry policy: retryable errors are
 * retried with backoff, an agent that is away is waited for (uncounted) up to
 * the away limit ({@link AgentUnavailable} after it). Rejects with the last
 * error, its `attempts` set.
 */
export async function withRetries<T>(
  ctx: RunContext,
  what: string,
  attempt: (n: number) => Promise<T>,
  signal: AbortSignal = ctx.signal,
): Promise<{ value: T; attempts: number }> {
  let waits = 0;
  for (let n = 0; ; ) {
    try {
      return { value: await attempt(n), attempts: n + 1 };
    } catch (error) {
      const e = DrayError.from(error);
      if (signal.aborted || e instanceof AgentUnavailable) throw Object.assign(e, { attempts: n + 1 });
      const environmentId = (e.details as { environmentId?: string } | undefined)?.environmentId;
      if (isAgentAway(e) && environmentId && waits < MAX_AGENT_WAITS) {
        // An agent that is away is a condition to wait for, not a failed attempt.
        waits++;
        await waitForAgent(ctx, environmentId, what, signal);
        continue;
      }
      const decision = retryDecision(e, n, ctx.settings.maxRetriesPerBatch);
      if (!decision.retry) throw Object.assign(e, { attempts: n + 1 });
      ctx.logger.warn("retrying", { what, attempt: n + 1, inMs: decision.delayMs, error: e.message });
      await ctx.journal.error({
        severity: "warning",
        message: `${what} failed (attempt ${n + 1}), retrying: ${e.message}`,
      });
      await sleep(decision.delayMs, signal);
      n++;
    }
  }
}

/**
 * The transformations of a read (action "transform"): those of the fields it
 * reads, with their options as JSON. The source agent applies them before the
 * rows leave it.
 */
export function readTransforms(entity: EntityRunPlan, fields: readonly string[]) {
  const planned = (entity.transforms ?? []).filter((t) => fields.includes(t.field));
  if (planned.length === 0) return {};
  return {
    transforms: planned.map((t) => ({
      field: t.field,
      transformer: t.transformer,
      optionsJson: JSON.stringify(t.options ?? {}),
    })),
  };
}

/**
 * The data-quality rules of a read: those of the fields it reads, with their
 * options as JSON. The source agent checks them on the raw values.
 */
export function readQualityRules(entity: EntityRunPlan, fields: readonly string[]) {
  const planned = (entity.qualityRules ?? []).filter((r) => fields.includes(r.field));
  if (planned.length === 0) return {};
  return {
    qualityRules: planned.map((r) => ({
      field: r.field,
      rule: r.rule,
      optionsJson: JSON.stringify(r.options ?? {}),
    })),
  };
}

/** Runs whose transform key id has been logged (once per run). */
const keyLogged = new WeakSet<RunContext>();

/** Logs, once per run, the id of the source agent's transform key (never the key). */
function noteTransformKey(ctx: RunContext, keyId: string) {
  if (!keyId || keyLogged.has(ctx)) return;
  keyLogged.add(ctx);
  void ctx.journal.stage({
    processName: "Transformation",
    state: "processing",
    code: "key",
    description: `Fields transformed on the source agent with its transform key ${keyId}`,
  });
}

/**
 * Reads the batch after `after`, with retries. A read that fails for good
 * fails the run (`BatchFailed`): without it the batch's range is unknown, so
 * it cannot be skipped.
 */
function read(
  ctx: RunContext,
  entity: EntityRunPlan,
  pass: Pass,
  after: string[] | null,
  until: string[] | null = null,
  resuming = false,
): Promise<ReadBatchResult> {
  const shape = passShape(entity, pass);
  // A resumed batch is re-read in one piece when it can be: twice the usual row budget.
  const maxRows = resuming ? ctx.settings.batchSize * 2 : ctx.settings.batchSize;
  return withRetries(ctx, `reading ${entity.entity}`, () =>
    ctx.sessions.dispatch(
      ctx.settings.sourceEnvironmentId,
      "readBatch",
      {
        entity: { schema: entity.schema, name: entity.name },
        fields: shape.fields,
        keyFields: entity.keyFields,
        ...(after ? { after: { values: after } } : {}),
        ...(until ? { until: { values: until } } : {}),
        maxRows,
        maxBytes: BigInt(ctx.settings.batchBytes),
        nullFields: shape.nullFields,
        ...readTransforms(entity, shape.fields),
        // Rows that fail a rule are left out on the first pass; the back-fill pass finds nothing to update for them.
        ...(pass === 1 ? readQualityRules(entity, shape.fields) : {}),
      },
      {
        signal: ctx.signal,
        timeoutMs: ctx.taskTimeoutMs,
        maxResultBytes: ctx.settings.batchBytes + 1024 * 1024,
      },
    ),
  ).then(
    (r) => {
      noteTransformKey(ctx, r.value.transformKeyId);
      return r.value;
    },
    (error) => {
      const e = DrayError.from(error);
      if (ctx.signal.aborted || e instanceof AgentUnavailable) throw e;
      const attempts = (e as { attempts?: number }).attempts ?? 1;
      throw new BatchFailed(
        e.code,
        `reading ${entity.entity} from source environment "${ctx.plan.sourceName}" failed after ${attempts} attempt(s): ${e.message}`,
        { details: e.details, cause: e },
      );
    },
  );
}

function writeTask(
  ctx: RunContext,
  entity: EntityRunPlan,
  pass: Pass,
  batchId: string,
  rows: RowBatch,
  previousBatchId = "",
) {
  const strategy =
    pass === 2
      ? WriteStrategy.UPDATE
      : ctx.settings.writeStrategy === "merge"
        ? WriteStrategy.MERGE
        : WriteStrategy.INSERT;
  return {
    batchId,
    entity: { schema: entity.schema, name: entity.name },
    strategy,
    keyFields: entity.keyFields,
    rows,
    rejectPolicy: ctx.settings.stopOnError ? RejectPolicy.FAIL : RejectPolicy.ISOLATE,
    previousBatchId,
    fireTriggers: ctx.settings.targetTriggers === "fire",
    uncheckedReferences: entity.uncheckedReferences ?? [],
  };
}

/**
 * Thrown by {@link write} when a write was interrupted and its fence got no
 * answer: the write may still commit (e.g. it was in COMMIT), so the batch id
 * must be finished, not given up.
 */
class WriteOutcomeUnknown extends DrayError {}

/** True for the agent's answer that a write's `previousBatchId` had not committed (see proto/README.md §6). */
function previousNotCommitted(error: unknown): boolean {
  const e = DrayError.from(error);
  return (
    e.code === "aborted" &&
    (e.details as { reason?: string } | undefined)?.reason === "previous_batch_not_committed"
  );
}

/** True for the agent's answer that a batch id was sealed by a cancel fence before its rows committed. */
function batchSealed(error: unknown): boolean {
  return (DrayError.from(error).details as { reason?: string } | undefined)?.reason === "batch_sealed";
}

/** The batch written just before, still in flight when the next one starts. */
interface Predecessor {
  batchId: string;
  seq: number;
  outcome: Promise<WriteOutcome>;
}

/**
 * Writes a batch with retries. With a `previous` batch in flight, the agent
 * commits this one only after that one has committed; if it answers `aborted`
 * (the predecessor had not committed), this waits for the predecessor's
 * outcome and tries once more without it, uncounted — unless the predecessor
 * failed and `stopOnError` is set, when this batch is not written at all.
 *
 * When the run is cancelled mid-write, a fence (the same batch id with no rows)
 * tells whether it had committed: the ledger answers with the first commit's
 * counts, or seals the id. Without an answer, {@link WriteOutcomeUnknown} is
 * thrown. When the run is handed over, the batch is left in progress
 * ({@link WriteOutcomeUnknown}) for the next owner, which finishes it under the
 * same ledger id.
 */
async function write(
  ctx: RunContext,
  entity: EntityRunPlan,
  pass: Pass,
  batch: { batchId: string; rows: RowBatch },
  signal: AbortSignal,
  previous?: Predecessor,
): Promise<{ result: WriteBatchResult; attempts: number }> {
  let waitFor = previous;
  const send = () =>
    ctx.sessions.dispatch(
      ctx.settings.targetEnvironmentId,
      "writeBatch",
      writeTask(ctx, entity, pass, batch.batchId, batch.rows, waitFor?.batchId),
      { signal, timeoutMs: ctx.taskTimeoutMs },
    );
  const attempt = async () => {
    try {
      return await send();
    } catch (error) {
      if (!waitFor || signal.aborted || !previousNotCommitted(error)) throw error;
      const before = await waitFor.outcome;
      if (!before.ok && ctx.settings.stopOnError)
        throw new DrayError("cancelled", `not written: batch ${waitFor.seq} before it failed`, {
          retryable: false,
        });
      waitFor = undefined;
      return send();
    }
  };
  try {
    const { value, attempts } = await withRetries(ctx, `writing ${entity.entity}`, attempt, signal);
    return { result: value, attempts };
  } catch (error) {
    if (!signal.aborted) throw error;
    const e = DrayError.from(error);
    // Handed over (shutdown, lost lease): no fence; the next owner finishes the batch under its id.
    if (handedOver(ctx))
      throw new WriteOutcomeUnknown(e.code, `${e.message} (left to the next owner of the run)`, {
        details: e.details,
        cause: e,
      });
    const empty: RowBatch = { ...batch.rows, rowCount: 0, data: new Uint8Array() } as RowBatch;
    const fence = await ctx.sessions
      .dispatch(
        ctx.settings.targetEnvironmentId,
        "writeBatch",
        writeTask(ctx, entity, pass, batch.batchId, empty),
        { timeoutMs: 5_000 },
      )
      .catch(() => undefined);
    if (fence?.alreadyCommitted) return { result: fence, attempts: 1 };
    if (fence) throw error;
    throw new WriteOutcomeUnknown(e.code, `${e.message} (whether the write committed is unknown)`, {
      details: e.details,
      cause: e,
    });
  }
}

async function recordRejected(
  ctx: RunContext,
  entity: EntityRunPlan,
  records: readonly RejectedRecord[],
  code?: string,
) {
  if (records.length === 0) return;
  await ctx.journal.errors(
    records.map((r) => ({
      severity: "error" as const,
      entity: entity.entity,
      recordKey: [...r.key],
      field: r.field || null,
      code: r.sqlState || code || null,
      message: r.message,
    })),
  );
}

function bump(
  ctx: RunContext,
  entity: string,
  d: { created: number; updated: number; rejected: number; failed: number },
) {
  const c = ctx.counters.get(entity);
  if (!c) return;
  c.created += d.created;
  c.updated += d.updated;
  c.skipped += d.rejected;
  c.failed += d.failed;
  c.processed += d.created + d.updated + d.rejected + d.failed;
  ctx.onProgress();
}

/** True when the run is being handed over to another owner (shutdown, lost lease), not ended. */
function handedOver(ctx: RunContext): boolean {
  const kind = abortKindOf(ctx.signal);
  return kind === "shutdown" || kind === "lost";
}

/** A reserved batch to write. */
interface PendingBatch {
  /** Its execution_batches row. */
  rowId: string;
  /** Its ledger id in the target. */
  batchId: string;
  seq: number;
  rows: RowBatch;
  /** Attempts recorded by earlier owners of the run. */
  priorAttempts: number;
  /** What a re-read of a resumed batch found, recorded when it is written now. */
  reread?: { cursorTo: string[] | null; rows: number; bytes: number };
  /** Rows of the batch's range the source left out for failing a data-quality rule (skipped). */
  qualityRejected?: readonly RejectedRecord[];
}

/** How a write ended: its result, or the error it failed with for good. */
type WriteOutcome =
  | { ok: true; result: WriteBatchResult; attempts: number; durationMs: number }
  | { ok: false; error: unknown; durationMs: number };

/** Starts writing a batch; the promise never rejects (the outcome says how it went). */
function startWrite(
  ctx: RunContext,
  entity: EntityRunPlan,
  pass: Pass,
  batch: PendingBatch,
  signal: AbortSignal = ctx.signal,
  previous?: Predecessor,
): Promise<WriteOutcome> {
  const started = performance.now();
  const took = () => Math.round(performance.now() - started);
  return write(ctx, entity, pass, batch, signal, previous).then(
    ({ result, attempts }): WriteOutcome => ({ ok: true, result, attempts, durationMs: took() }),
    (error): WriteOutcome => ({ ok: false, error, durationMs: took() }),
  );
}

/**
 * Settles a written batch in the store, once: succeeded (counters, checkpoint,
 * usage), skipped (stopOnError=false: the run goes on after it), failed or
 * cancelled. Returns the write's result, or undefined when skipped; throws
 * when the entity must stop. A write whose outcome is unknown while the run is
 * handed over stays in progress: the next owner finishes it under the same
 * ledger id.
 */
async function settleWrite(
  ctx: RunContext,
  entity: EntityRunPlan,
  pass: Pass,
  batch: PendingBatch,
  outcome: WriteOutcome,
  signal: AbortSignal = ctx.signal,
): Promise<WriteBatchResult | undefined> {
  const countRecords = pass === 1;
  const settle = (o: Omit<BatchOutcome, "batchRowId" | "executionId" | "organisationId" | "entity">) =>
    finalizeBatch(ctx.db, {
      batchRowId: batch.rowId,
      executionId: ctx.executionId,
      organisationId: ctx.organisationId,
      entity: entity.entity,
      ...o,
    });
  const quality = batch.qualityRejected ?? [];
  if (outcome.ok) {
    const { result, attempts } = outcome;
    await settle({
      ...(batch.reread && !result.alreadyCommitted ? { reread: batch.reread } : {}),
      state: "succeeded",
      created: result.created,
      updated: result.updated,
      rejected: result.rejected + quality.length,
      failedRecords: 0,
      attempts: batch.priorAttempts + attempts,
      durationMs: outcome.durationMs,
      advance: true,
      countRecords,
    });
    await recordQualityRejected(ctx, entity, batch);
    await recordRejected(ctx, entity, result.rejectedRecords);
    if (countRecords)
      bump(ctx, entity.entity, { ...result, rejected: result.rejected + quality.length, failed: 0 });
    return result;
  }
  const e = DrayError.from(outcome.error);
  // Handed over: whatever happened to the write, the next owner finishes the batch under its id.
  if (handedOver(ctx)) throw e;
  const attempts = batch.priorAttempts + ((e as { attempts?: number }).attempts ?? 1);
  const cancelled = signal.aborted;
  // An agent that stayed away stops the run: skipping would give up every batch after it too.
  const away = e instanceof AgentUnavailable;
  const skip = !cancelled && !away && !ctx.settings.stopOnError;
  await settle({
    state: cancelled ? "cancelled" : skip ? "skipped" : "failed",
    created: 0,
    updated: 0,
    // The rows a rule left out are skipped whatever became of the others.
    rejected: skip ? quality.length : 0,
    failedRecords: skip && countRecords ? batch.rows.rowCount : 0,
    attempts,
    durationMs: outcome.durationMs,
    error: away ? `${e.message} (whether this batch committed is unknown)` : e.message,
    advance: skip,
    countRecords,
  });
  if (cancelled) throw e;
  const message = `batch ${batch.seq} of ${entity.entity} failed after ${attempts} attempt(s): ${e.message}`;
  await ctx.journal.error({ severity: "error", entity: entity.entity, code: e.code, message });
  if (away) throw e;
  if (!skip) throw new BatchFailed(e.code, message, { details: e.details, cause: e });
  await recordQualityRejected(ctx, entity, batch);
  if (countRecords)
    bump(ctx, entity.entity, {
      created: 0,
      updated: 0,
      rejected: quality.length,
      failed: batch.rows.rowCount,
    });
  return undefined;
}

/**
 * Journals the rows of a settled batch that failed a data-quality rule (code
 * `data_quality`, the transformed key and the rule), and says so in the stage
 * log under DataQuality.
 */
async function recordQualityRejected(ctx: RunContext, entity: EntityRunPlan, batch: PendingBatch) {
  const quality = batch.qualityRejected ?? [];
  if (quality.length === 0) return;
  // The agent's message names the rule, its options and the field: count the rows by it.
  const byRule = new Map<string, number>();
  for (const r of quality) byRule.set(r.message, (byRule.get(r.message) ?? 0) + 1);
  await recordRejected(ctx, entity, quality, "data_quality");
  await ctx.journal.stage({
    processName: STAGES.dataQuality,
    state: "processing",
    code: "rows_skipped",
    entity: entity.entity,
    description:
      `batch ${batch.seq} of ${entity.entity}: ${quality.length} row(s) skipped, ` +
      [...byRule].map(([message, n]) => `${n} ${message}`).join("; "),
  });
}

/**
 * The writes of one entity in flight, settled strictly in the order they were
 * started, so the entity's checkpoint only ever moves over a contiguous run of
 * finished batches. After the first batch that stops the entity, later ones
 * are still settled by their own outcome (a write that committed is counted),
 * except on a hand-over, where they stay in progress for the next owner.
 */
class WriteWindow {
  private readonly queue: { batch: PendingBatch; outcome: Promise<WriteOutcome> }[] = [];
  private last: (Predecessor & { ok?: boolean }) | undefined;
  /** Aborts the writes still in flight once a batch fails for good. */
  private readonly abort = new AbortController();
  private readonly signal: AbortSignal;
  /** The first error that stopped the entity. */
  stopped: DrayError | undefined;
  /** A batch could not be settled (e.g. the store failed): settle nothing after it. */
  private unsettled = false;

  constructor(
    private readonly ctx: RunContext,
    private readonly entity: EntityRunPlan,
    private readonly pass: Pass,
  ) {
    this.signal = AbortSignal.any([ctx.signal, this.abort.signal]);
  }

  /** Starts writing `batch` after the previous one; call {@link settleUntil} first to bound the window. */
  start(batch: PendingBatch): void {
    // A predecessor that committed needs no waiting for; nor one given up on when the run goes on after it.
    const settled = this.last?.ok === true || (this.last?.ok === false && !this.ctx.settings.stopOnError);
    const previous = settled ? undefined : this.last;
    const outcome = startWrite(this.ctx, this.entity, this.pass, batch, this.signal, previous);
    const started: Predecessor & { ok?: boolean } = { batchId: batch.batchId, seq: batch.seq, outcome };
    outcome.then((o) => {
      started.ok = o.ok;
    });
    this.last = started;
    this.queue.push({ batch, outcome });
  }

  /** Settles the oldest writes until at most `inFlight` remain. Never throws; see {@link stopped}. */
  async settleUntil(inFlight: number): Promise<void> {
    while (this.queue.length > inFlight) {
      const { batch, outcome } = this.queue.shift()!;
      const done = await outcome;
      // After a hand-over, or a batch that could not be settled, later batches stay in progress: settling
      // them would move the checkpoint past an unsettled one. The next owner, or the run's end, settles them.
      if (this.stopped && (handedOver(this.ctx) || this.unsettled)) continue;
      try {
        await settleWrite(this.ctx, this.entity, this.pass, batch, done, this.signal);
      } catch (error) {
        if (error instanceof BatchFailed)
          this.abort.abort(new DrayError("cancelled", `an earlier batch of ${this.entity.entity} failed`));
        else if (!this.signal.aborted) this.unsettled = true;
        this.stop(error);
      }
    }
  }

  /** Records why the entity stops (the first reason wins). */
  stop(error: unknown): void {
    this.stopped ??= DrayError.from(error);
  }
}

/** Where copying one range of an entity stands. */
interface RangeState {
  seq: number;
  cursor: string[] | null;
}

/**
 * Copies the keyset range (`state.cursor`, `until`] of one entity (to the end
 * when `until` is null) in batches: each batch is reserved against the monthly
 * limit, written as one target transaction with its ledger id, and settled in
 * order. The next read is in flight while writes commit, and up to
 * `ctx.writesInFlight` writes run at once. When `halt` fires (another entity of
 * the run failed), it stops at the next batch boundary.
 */
async function copyRange(
  ctx: RunContext,
  entity: EntityRunPlan,
  pass: Pass,
  state: RangeState,
  until: string[] | null,
  halt?: AbortSignal,
): Promise<void> {
  const countRecords = pass === 1;
  const window = new WriteWindow(ctx, entity, pass);
  const inFlight = Math.max(1, ctx.writesInFlight);
  let next: Promise<ReadBatchResult> | undefined = read(ctx, entity, pass, state.cursor, until);
  next.catch(() => {});
  try {
    while (next && !window.stopped) {
      if (halt?.aborted) {
        throw new DrayError("aborted", `${entity.entity} stopped at a batch boundary: the run failed`);
      }
      const batch = await next;
      next = undefined;
      const rows = batch.rows;
      const qualityRejected = batch.rejectedRecords ?? [];
      // A page whose every row failed a data-quality rule is still a batch: it moves the checkpoint over them.
      if (!rows || (rows.rowCount === 0 && qualityRejected.length === 0)) break;
      const cursorTo = batch.last?.values ? [...batch.last.values] : null;
      // The next page is read while this one is reserved and waits for room in the window: the source
      // never idles on the store or the target (a read is side-effect free; one left unused is dropped).
      if (!batch.done) {
        next = read(ctx, entity, pass, cursorTo, until);
        next.catch(() => {});
      }
      // Make room in the window before reserving, so a batch is never reserved after the entity stopped.
      await window.settleUntil(inFlight - 1);
      if (window.stopped) break;
      state.seq += 1;
      const seq = state.seq;
      const batchRowId = randomUUID();
      const batchId = `${ctx.executionId}:${entity.entity}:${pass}:${seq}`;
      const reserved = await reserveBatch(ctx.db, {
        id: batchRowId,
        executionId: ctx.executionId,
        organisationId: ctx.organisationId,
        entity: entity.entity,
        pass,
        seq,
        batchId,
        cursorFrom: state.cursor,
        cursorTo,
        rows: rows.rowCount,
        bytes: rows.data.byteLength,
        reserve: countRecords ? rows.rowCount : 0,
        month: utcMonth(new Date()),
      });
      if (!reserved.ok) {
        throw new RecordLimitReached(
          `monthly record limit reached: ${reserved.used} of ${reserved.limit} records used this month` +
            `${reserved.reserved ? ` (${reserved.reserved} reserved by runs in flight)` : ""}, and the next batch of ` +
            `${entity.entity} needs ${reserved.needed}. Committed batches stay in the target; ` +
            `${raiseLimitHint(ctx.organisationId)}, then run again to continue.`,
          { ...reserved, entity: entity.entity },
        );
      }
      state.cursor = cursorTo;
      window.start({ rowId: batchRowId, batchId, seq, rows, priorAttempts: 0, qualityRejected });
    }
  } catch (error) {
    window.stop(error);
  }
  await window.settleUntil(0);
  if (window.stopped) throw window.stopped;
}

/**
 * Copies one entity (one pass) from its checkpoint to the end. Batches left
 * in progress by a dead control plane are finished first, in key order and
 * exactly once thanks to the target ledger: each one's range is re-read
 * (bounded by its recorded end) and written under its ledger id; a range that
 * no longer fits one batch is completed by extra batches before going on.
 * `fresh`: the entity was pending (never started), so there is nothing to
 * look up first.
 */
export async function copyEntity(
  ctx: RunContext,
  entity: EntityRunPlan,
  pass: Pass,
  halt?: AbortSignal,
  fresh = false,
): Promise<void> {
  if (fresh) {
    // Never started before (it was pending): no checkpoint and no batch to finish.
    await copyRange(ctx, entity, pass, { seq: 0, cursor: null }, null, halt);
    return;
  }
  const where = and(
    eq(executionEntities.executionId, ctx.executionId),
    eq(executionEntities.entity, entity.entity),
  );
  const [entityRow] = await ctx.db.select().from(executionEntities).where(where);
  const checkpoint = entityRow?.pass === pass ? (entityRow.checkpoint ?? null) : null;
  const ofPass = and(
    eq(executionBatches.executionId, ctx.executionId),
    eq(executionBatches.entity, entity.entity),
    eq(executionBatches.pass, pass),
  );
  const [last] = await ctx.db
    .select({ seq: executionBatches.seq })
    .from(executionBatches)
    .where(ofPass)
    .orderBy(desc(executionBatches.seq))
    .limit(1);
  const state: RangeState = { seq: last?.seq ?? 0, cursor: checkpoint };
  const unfinished = await ctx.db
    .select()
    .from(executionBatches)
    .where(and(ofPass, eq(executionBatches.state, "in_progress")));

  const at = (cursor: string[] | null) => JSON.stringify(cursor);
  for (const left of chainOrder(unfinished, checkpoint)) {
    if (left.cursorFrom && at(left.cursorFrom) !== at(state.cursor)) {
      // A gap before this batch (an earlier batch settled without being written): copy it first.
      await copyRange(ctx, entity, pass, state, left.cursorFrom, halt);
      state.cursor = left.cursorFrom;
    }
    const again = await read(ctx, entity, pass, left.cursorFrom ?? null, left.cursorTo ?? null, true);
    const rows = again.rows!;
    // A complete re-read covers the batch's whole recorded range, so its end stays the recorded one.
    const rereadTo = again.done || !again.last ? (left.cursorTo ?? null) : [...again.last.values];
    const pending: PendingBatch = {
      rowId: left.id,
      batchId: left.batchId,
      seq: left.seq,
      rows,
      priorAttempts: left.attempts,
      reread: { cursorTo: rereadTo, rows: rows.rowCount, bytes: rows.data.byteLength },
      qualityRejected: again.rejectedRecords ?? [],
    };
    const outcome = await startWrite(ctx, entity, pass, pending);
    if (!outcome.ok && batchSealed(outcome.error)) {
      // A cancel fence sealed this id before the write committed: its rows go in under new ids.
      await cancelBatch(
        ctx.db,
        { ...left, batchRowId: left.id, organisationId: ctx.organisationId, entity: entity.entity },
        "sealed before it committed; its range was written again as new batches",
      );
      if (left.cursorTo) await copyRange(ctx, entity, pass, state, left.cursorTo, halt);
      state.cursor = left.cursorTo ?? state.cursor;
      continue;
    }
    const result = await settleWrite(ctx, entity, pass, pending, outcome);
    const rewritten = result !== undefined && !result.alreadyCommitted;
    state.cursor = rewritten ? rereadTo : (left.cursorTo ?? null);
    if (rewritten && !again.done && left.cursorTo) {
      // The range grew since it was first read: copy the rest of it before going on.
      await copyRange(ctx, entity, pass, state, left.cursorTo, halt);
    }
    state.cursor = left.cursorTo ?? state.cursor;
  }
  await copyRange(ctx, entity, pass, state, null, halt);
}
