import { DrayError } from "@dray/common";
import { TASK_ERROR_REASONS } from "@dray/proto";
import type { RejectedRecord, WriteBatchRequest, WriteBatchResult } from "../../connector.js";
import { CatalogCache } from "./catalog-cache.js";
import { awaitPreviousBatch, lockOwnBatch } from "./commit-order.js";
import { checkCopyText, parseCopyLine } from "./copy-text.js";
import { tryDirectCopy } from "./direct-copy.js";
import type { EntityInfo, FieldInfo } from "./entity-catalog.js";
import { errorDetails, isDataError, sqlStateOf } from "./error-mapping.js";
import { displayName, validateEntityName, validateFieldList } from "./identifiers.js";
import { bisectWrite, type RangeCounts } from "./isolation.js";
import {
  claimOutcome,
  claimStatement,
  recordStatement,
  validateBatchId,
  validatePosition,
} from "./ledger.js";
import {
  type ForeignKeyInfo,
  keysToCheck,
  type OrdinalRecord,
  rejectBrokenReferences,
} from "./reference-checks.js";
import { moveSequencesNow, type SequenceUse } from "./sequence-moves.js";
import type { Session, Statement } from "./session.js";
import { type StagingMode, stageRows } from "./stage-rows.js";
import { rejectKeyConflicts } from "./unique-checks.js";
import { planWrite, STAGE, stageColumn, type WritePlan } from "./write-plan.js";

/** Rejected rows whose guilty field is looked for by test casts (each probe is one statement per field). */
const MAX_PROBED_REJECTS = 20;

/** Checks the parts of a write request that need no catalog. */
export function validateWriteRequest(request: WriteBatchRequest): void {
  validateBatchId(request.batchId);
  if (request.previousBatchId !== undefined) validateBatchId(request.previousBatchId);
  validateEntityName(request.entity);
  if (request.strategy !== "insert" && request.strategy !== "merge" && request.strategy !== "update")
    throw new DrayError("invalid_argument", "strategy must be insert, merge or update");
  if (request.rejectPolicy !== "isolate" && request.rejectPolicy !== "fail")
    throw new DrayError("invalid_argument", "rejectPolicy must be isolate or fail");
  const rows = request.rows;
  if (rows?.encoding !== "copy_text") throw new DrayError("invalid_argument", "rows must be copy_text");
  if (!(rows.data instanceof Uint8Array)) throw new DrayError("invalid_argument", "rows.data must be bytes");
  if (!Number.isSafeInteger(rows.rowCount) || rows.rowCount < 0)
    throw new DrayError("invalid_argument", "rows.rowCount must be a non-negative integer");
  if (validateFieldList("rows.fields", rows.fields).length === 0)
    throw new DrayError("invalid_argument", "rows.fields must name at least one field");
  validateFieldList("keyFields", request.keyFields ?? []);
  validateFieldList("uncheckedReferences", request.uncheckedReferences ?? []);
  validatePosition(request.position);
}

/**
 * The statement turning the target's triggers and rules off for the rest of
 * the transaction (as pg_restore --disable-triggers does); foreign keys are
 * then checked by the agent ({@link rejectBrokenReferences}).
 *
 * Its error, when the target's user may not, is DrayError `permission_denied`.
 */
const TRIGGERS_OFF: Statement = {
  text: "set local session_replication_role = replica",
  params: [],
  mapError: (error) => {
    if (sqlStateOf(error) !== "42501") return error;
    return new DrayError(
      "permission_denied",
      "the target's database user may not turn triggers off during loads (session_replication_role): " +
        "connect the target agent as a superuser, run GRANT SET ON PARAMETER session_replication_role TO <user>, " +
        'or set the pipeline\'s targetTriggers to "fire"',
      { retryable: false, cause: error },
    );
  },
};

/** A line COPY would refuse, found before sending. */
export interface MalformedLine {
  /** 0-based line index in the batch. */
  index: number;
  line: Uint8Array;
  problem: string;
}

/** The batch split into the lines to load and the malformed ones. */
export interface PreparedRows {
  /** Well-formed lines, each `\n`-terminated, ready for COPY. */
  data: Uint8Array;
  loadCount: number;
  malformed: MalformedLine[];
}

/**
 * Checks every line before the server sees it, so the COPY into the staging
 * table cannot fail on data (postgres.js loses such errors) and the staged
 * ordinals match the lines one to one. One scan over the buffer
 * ({@link checkCopyText}); clean data ending with a newline (the common case)
 * is passed through as is, otherwise the good lines are copied out,
 * `\n`-terminated.
 *
 * @throws DrayError `invalid_argument` when `rowCount` disagrees with the data.
 */
export function prepareRows(data: Uint8Array, fieldCount: number, rowCount: number): PreparedRows {
  const { lineCount, malformed: problems } = checkCopyText(data, fieldCount);
  if (lineCount !== rowCount)
    throw new DrayError(
      "invalid_argument",
      `rows.rowCount is ${rowCount} but rows.data holds ${lineCount} lines`,
    );
  const loadCount = lineCount - problems.length;
  const endsWithNewline = data.length === 0 || data[data.length - 1] === 0x0a;
  if (problems.length === 0 && endsWithNewline) return { data, loadCount, malformed: [] };
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const malformed: MalformedLine[] = problems.map(({ index, start, end, problem }) => ({
    index,
    line: bytes.subarray(start, end),
    problem,
  }));
  // The good lines are the runs between malformed ones, newlines included.
  const parts: Uint8Array[] = [];
  let from = 0;
  for (const { start, end } of problems) {
    if (start > from) parts.push(bytes.subarray(from, start));
    from = end + 1;
  }
  if (from < bytes.length) parts.push(bytes.subarray(from));
  const last = parts[parts.length - 1];
  if (last !== undefined && last[last.length - 1] !== 0x0a) parts.push(Buffer.from("\n"));
  return { data: Buffer.concat(parts), loadCount, malformed };
}

/** The field a server error blames: its column, or the columns in a `Key (…)=` detail. */
export function blamedField(error: unknown): string | undefined {
  const details = errorDetails(error);
  if (details.column) return details.column;
  const match = /^Key \((.+?)\)=/.exec(details.detail ?? "");
  return match?.[1];
}

async function writeRange(
  session: Session,
  plan: WritePlan,
  first: number,
  last: number,
): Promise<RangeCounts> {
  const rows = await session.query<{ created: string; updated: string }>(plan.writeSql, [first, last]);
  return { created: Number(rows[0]?.created ?? 0), updated: Number(rows[0]?.updated ?? 0) };
}

/** Runs `fn` under a savepoint: released on success, rolled back (and released) on failure. */
async function underSavepoint<T>(session: Session, name: string, fn: () => Promise<T>): Promise<T> {
  await session.control(`savepoint ${name}`);
  try {
    const result = await fn();
    await session.control(`release savepoint ${name}`);
    return result;
  } catch (error) {
    if (!session.signal.aborted)
      await session.control(`rollback to savepoint ${name}; release savepoint ${name}`);
    throw error;
  }
}

/** Finds the field whose cast fails for one staged row, trying each field in turn. */
async function probeCasts(session: Session, plan: WritePlan, ordinal: number): Promise<string | undefined> {
  for (const [i, field] of plan.fields.entries()) {
    try {
      await underSavepoint(session, "dray_probe", () =>
        session.query(`select ${stageColumn(i)}::${field.castType} from ${STAGE} where dray_ord = $1::int8`, [
          ordinal,
        ]),
      );
    } catch (error) {
      if (!isDataError(sqlStateOf(error))) throw error;
      return field.name;
    }
  }
  return undefined;
}

/**
 * For data errors raised by a column's type modifier (e.g. "value too long for
 * type character varying(3)"): the one field of exactly that type, if unique.
 */
export function fieldByTypeInMessage(fields: readonly FieldInfo[], error: unknown): string | undefined {
  const message = error instanceof Error ? error.message : String(error);
  const matching = fields.filter((f) => message.includes(`type ${f.type}`));
  return matching.length === 1 ? matching[0]!.name : undefined;
}

async function describeRejected(
  session: Session,
  plan: WritePlan,
  ordinal: number,
  error: unknown,
  probe: boolean,
): Promise<RejectedRecord> {
  const columns = plan.keyPositions.map(stageColumn);
  const rows =
    columns.length > 0
      ? await session.query<Record<string, string | null>>(
          `select ${columns.join(", ")} from ${STAGE} where dray_ord = $1::int8`,
          [ordinal],
        )
      : [{}];
  const row = rows[0] ?? {};
  const sqlState = sqlStateOf(error);
  let field = blamedField(error);
  if (field === undefined && probe && sqlState?.startsWith("22"))
    field = await probeCasts(session, plan, ordinal);
  if (field === undefined && sqlState?.startsWith("22")) field = fieldByTypeInMessage(plan.fields, error);
  return {
    key: columns.map((c) => row[c] ?? "\\N"),
    ...(field === undefined ? {} : { field }),
    message: error instanceof Error ? error.message : String(error),
    ...(sqlState === undefined ? {} : { sqlState }),
  };
}

function rejectMalformed(plan: WritePlan, malformed: MalformedLine): RejectedRecord {
  const values = parseCopyLine(malformed.line);
  return {
    key: plan.keyPositions.map((at) => values[at] ?? "\\N"),
    message: `line ${malformed.index + 1} is not valid COPY text: ${malformed.problem}`,
    sqlState: "22P04",
  };
}

/**
 * Writes one batch in one transaction: ledger row first (a replay stops
 * there), COPY into a text staging table, then one INSERT … SELECT (with ON
 * CONFLICT … DO UPDATE for merge) casting each field to its catalog type. With
 * `isolate`, a data error bisects the staged rows under savepoints so good rows
 * commit and bad ones are reported; with `fail` it rolls everything back.
 *
 * With `copy` staging, a batch that cannot meet existing rows is first tried
 * as a plain COPY into the target ({@link tryDirectCopy}); if that is not
 * possible or fails, it is undone and the staged path above runs as usual, so
 * the outcome is the same either way. `directCopy: false` skips that attempt.
 *
 * The entity's catalog comes from `catalog` (the connector's cache; without
 * one it is read for this call): a batch planned from a cached entry that
 * fails the way a changed catalog explains is rolled back and written once
 * more from a fresh reading ({@link CatalogCache.use}).
 */
export async function writeStagedBatch(
  session: Session,
  request: WriteBatchRequest,
  prepared: PreparedRows,
  staging: StagingMode = "copy",
  directCopy = true,
  catalog: CatalogCache = new CatalogCache({ ttlMs: 0 }),
): Promise<WriteBatchResult> {
  return catalog.use(
    session,
    request.entity,
    ({ info, foreignKeys }) => planBatch(request, prepared, info, foreignKeys),
    ({ plan, references }, { info, sequences }) =>
      writePlanned(session, request, prepared, staging, directCopy, info, plan, references, sequences),
  );
}

/** The write plan and the foreign keys the agent checks; the refusals that need no statement. */
async function planBatch(
  request: WriteBatchRequest,
  prepared: PreparedRows,
  info: EntityInfo,
  foreignKeys: () => Promise<ForeignKeyInfo[]>,
): Promise<{ plan: WritePlan; references: ForeignKeyInfo[] }> {
  const plan = planWrite(info, request);
  const fireTriggers = request.fireTriggers === true;
  if (fireTriggers && info.hasRules)
    throw new DrayError(
      "failed_precondition",
      `${displayName(request.entity)} has rewrite rules, and Dray never writes through rules (they would send ` +
        'rows elsewhere): set the pipeline\'s targetTriggers to "off" (the default), which loads with rules off',
      { retryable: false },
    );
  const references = fireTriggers
    ? []
    : keysToCheck(await foreignKeys(), plan, request.uncheckedReferences ?? []);
  if (request.rejectPolicy === "fail" && prepared.malformed.length > 0) {
    const first = prepared.malformed[0]!;
    throw new DrayError(
      "invalid_argument",
      `line ${first.index + 1} is not valid COPY text: ${first.problem}`,
      {
        details: { sqlState: "22P04", malformedLines: prepared.malformed.length },
      },
    );
  }
  return { plan, references };
}

/** Writes a planned batch in its one transaction (see {@link writeStagedBatch}). */
async function writePlanned(
  session: Session,
  request: WriteBatchRequest,
  prepared: PreparedRows,
  staging: StagingMode,
  directCopy: boolean,
  info: EntityInfo,
  plan: WritePlan,
  references: ForeignKeyInfo[],
  sequences: () => Promise<SequenceUse[]>,
): Promise<WriteBatchResult> {
  const fireTriggers = request.fireTriggers === true;
  const rowCount = prepared.loadCount + prepared.malformed.length;
  // Sent with BEGIN, in one round trip: the lock on the batch's id, the ledger claim and, unless the
  // target's triggers fire, turning them off.
  const setup = [
    lockOwnBatch(request.batchId),
    claimStatement(request.batchId, displayName(request.entity), rowCount, request.position),
    ...(fireTriggers ? [] : [TRIGGERS_OFF]),
  ];
  return session.transaction(
    async ([, claimed]) => {
      const recorded = await claimOutcome(session, claimed ?? [], request.batchId);
      // A replay writes nothing and answers with what the first commit recorded (rejected records are not kept).
      if (recorded) {
        // A cancel fence seals an id with no rows: rows sent under it now were never written.
        if (recorded.rowCount === 0 && rowCount > 0)
          throw new DrayError(
            "failed_precondition",
            `batch ${request.batchId} was sealed by a cancel before it committed; send its rows under a new batch id`,
            { details: { reason: TASK_ERROR_REASONS.batchSealed } },
          );
        const { created, updated, rejected } = recorded;
        return { alreadyCommitted: true, created, updated, rejected, rejectedRecords: [] };
      }
      const rejectedRecords = prepared.malformed.map((m) => rejectMalformed(plan, m));
      // Rows rejected by checks and by bisection, reported in batch order.
      const checked: OrdinalRecord[] = [];
      let counts: RangeCounts = { created: 0, updated: 0 };
      const direct =
        staging === "copy" && directCopy
          ? await tryDirectCopy(session, info, plan, request, prepared, {
              triggersOff: !fireTriggers,
              references,
            })
          : null;
      if (direct !== null) {
        counts = direct;
      } else if (prepared.loadCount > 0) {
        await session.query(plan.createStageSql);
        await stageRows(session, plan, prepared.data, prepared.loadCount, staging);
        if (request.rejectPolicy === "fail") {
          const range = { first: 1, last: prepared.loadCount };
          const broken = await rejectBrokenReferences(session, info, plan, references, range);
          if (broken.length > 0) {
            const first = broken[0]!;
            throw new DrayError("failed_precondition", first.message, {
              details: { sqlState: first.sqlState, rejected: broken.length },
              retryable: false,
            });
          }
          counts = await writeRange(session, plan, 1, prepared.loadCount);
        } else {
          // Deferred constraints are checked per statement here, so a bad row fails its own range, not COMMIT.
          await session.query("set constraints all immediate");
          let probed = 0;
          let conflictsChecked = false;
          const outcome = await bisectWrite(1, prepared.loadCount, {
            write: async (first, last) => {
              // The reference check and the write of a range stand or fall together: a value that does not
              // cast fails both, and bisection narrows it down like any other data error.
              const writeChecked = () =>
                underSavepoint(session, "dray_range", async () => {
                  const broken = await rejectBrokenReferences(session, info, plan, references, {
                    first,
                    last,
                  });
                  const written = await writeRange(session, plan, first, last);
                  return { written, broken };
                });
              let outcome: Awaited<ReturnType<typeof writeChecked>>;
              try {
                outcome = await writeChecked();
              } catch (error) {
                if (conflictsChecked || session.signal.aborted || !isDataError(sqlStateOf(error)))
                  throw error;
                // The first data error: take every unique-key conflict out in a few set-based statements,
                // then try again; bisection is left for other data errors (and for a value that does not
                // cast, which fails the set-based check too).
                conflictsChecked = true;
                const conflicts = await underSavepoint(session, "dray_conflicts", () =>
                  rejectKeyConflicts(session, info, plan, request.strategy),
                ).catch((checkError) => {
                  if (session.signal.aborted || !isDataError(sqlStateOf(checkError))) throw checkError;
                  return [];
                });
                if (conflicts.length === 0) throw error;
                checked.push(...conflicts);
                outcome = await writeChecked();
              }
              checked.push(...outcome.broken);
              return outcome.written;
            },
            reject: async (ordinal, error) => {
              const record = await describeRejected(
                session,
                plan,
                ordinal,
                error,
                probed++ < MAX_PROBED_REJECTS,
              );
              // Out of the staging table, so no later row of the batch counts it as its referenced row.
              if (references.length > 0)
                await session.execute(`delete from ${STAGE} where dray_ord = $1::int8`, [ordinal]);
              return { ordinal, ...record };
            },
            isDataError: (error) => !session.signal.aborted && isDataError(sqlStateOf(error)),
          });
          counts = outcome;
          checked.push(...outcome.rejected);
        }
      }
      checked.sort((a, b) => a.ordinal - b.ordinal);
      rejectedRecords.push(...checked.map(({ ordinal: _ordinal, ...record }) => record));
      const result = {
        alreadyCommitted: false,
        created: counts.created,
        updated: counts.updated,
        rejected: rejectedRecords.length,
        rejectedRecords,
      };
      // With a predecessor in flight, commit only after it has (committed batches stay in key order).
      if (request.previousBatchId) await awaitPreviousBatch(session, request.previousBatchId);
      // The entity's last batch: every earlier one has committed, so the maxima are the entity's. A
      // sequence the role may not read or set is left to a finish task, whose error names it, rather
      // than failing the batch's rows with it.
      if (request.moveSequences) {
        const uses = await sequences();
        if (uses.every((u) => u.allowed))
          return { ...result, sequences: await moveSequencesNow(session, info, uses) };
      }
      return result;
    },
    setup,
    // The outcome goes into the ledger row together with COMMIT (a replay records nothing).
    (result) => (result.alreadyCommitted ? null : recordStatement(request.batchId, result)),
  );
}
