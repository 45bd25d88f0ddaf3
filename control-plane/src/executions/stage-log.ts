/**
 * Writers of an execution's stage log (seed 02: begin / processing / end /
 * error per stage) and error log, for the API and the executor, plus the
 * bodies of the `log` events that announce them.
 *
 * @example
 * const entry = await appendStageLog(db, {
 *   executionId, processName: STAGES.jobRunner, state: "begin", code: "begin", description: "Process started",
 * });
 * await appendExecutionEvent({ db, bus, logger }, { executionId, organisationId }, "log", stageLogEvent(entry));
 */
import { sql } from "drizzle-orm";
import type { Db } from "../store/db.js";
import { executionErrors, executionLog } from "../store/schema.js";
import type { StageState } from "./execution-vocabulary.js";

/** A stored stage-log entry. */
export type StageLogRow = typeof executionLog.$inferSelect;
/** A stored error-log entry. */
export type ExecutionErrorRow = typeof executionErrors.$inferSelect;

/** A new stage-log entry. `entity` is set for per-entity entries (loaders). */
export interface StageLogEntry {
  executionId: string;
  /** StreamNotifier, DataQuality, Transformation, JobRunner or `<Platform>Loader` (see STAGES). */
  processName: string;
  state: StageState;
  /** Short machine code, e.g. `begin`, `processing`, `end`, `cancelled`, `batch_failed`. */
  code: string;
  description: string;
  entity?: string | null;
  /** @default now (the database clock) */
  at?: Date;
}

/** A new error or warning of an execution, about one record when `recordKey` is set. */
export interface ExecutionErrorEntry {
  executionId: string;
  severity: "error" | "warning";
  message: string;
  entity?: string | null;
  /** Key values of the record, in key order. */
  recordKey?: string[] | null;
  field?: string | null;
  /** Error code (a DrayError code or the database's SQLSTATE). */
  code?: string | null;
  /** @default now (the database clock) */
  at?: Date;
}

/** Appends a stage-log entry and returns it (with its id, which the status API shows). */
export async function appendStageLog(db: Db, entry: StageLogEntry): Promise<StageLogRow> {
  const [row] = await db
    .insert(executionLog)
    .values({
      executionId: entry.executionId,
      processName: entry.processName,
      state: entry.state,
      code: entry.code,
      description: entry.description,
      entity: entry.entity ?? null,
      ...(entry.at ? { at: entry.at } : {}),
    })
    .returning();
  return row!;
}

/** Rows per INSERT of {@link appendStageLogs} (7 parameters a row, far below Postgres' 65,535). */
const STAGE_LOGS_PER_INSERT = 1_000;

/**
 * Appends many stage-log entries in one multi-row INSERT (a few for
 * thousands) and returns them in the order given, ids ascending. An entry
 * without `at` takes the database clock as its row is written
 * (`clock_timestamp()`), so entries written together keep distinct, ordered
 * times as when written one by one.
 */
export async function appendStageLogs(db: Db, entries: readonly StageLogEntry[]): Promise<StageLogRow[]> {
  const rows: StageLogRow[] = [];
  for (let from = 0; from < entries.length; from += STAGE_LOGS_PER_INSERT) {
    const inserted = await db
      .insert(executionLog)
      .values(
        entries.slice(from, from + STAGE_LOGS_PER_INSERT).map((entry) => ({
          executionId: entry.executionId,
          processName: entry.processName,
          state: entry.state,
          code: entry.code,
          description: entry.description,
          entity: entry.entity ?? null,
          at: entry.at ?? sql`clock_timestamp()`,
        })),
      )
      .returning();
    rows.push(...inserted);
  }
  return rows;
}

/** Records an error or warning of an execution and returns it. */
export async function recordExecutionError(db: Db, entry: ExecutionErrorEntry): Promise<ExecutionErrorRow> {
  const [row] = await recordExecutionErrors(db, [entry]);
  return row!;
}

/** Rows per INSERT of {@link recordExecutionErrors}. */
const ERRORS_PER_INSERT = 1_000;

/** Records many errors of an execution in a few multi-row INSERTs; returns them in order. */
export async function recordExecutionErrors(
  db: Db,
  entries: readonly ExecutionErrorEntry[],
): Promise<ExecutionErrorRow[]> {
  const rows: ExecutionErrorRow[] = [];
  for (let at = 0; at < entries.length; at += ERRORS_PER_INSERT) {
    const chunk = entries.slice(at, at + ERRORS_PER_INSERT);
    const inserted = await db
      .insert(executionErrors)
      .values(
        chunk.map((entry) => ({
          executionId: entry.executionId,
          severity: entry.severity,
          message: entry.message,
          entity: entry.entity ?? null,
          recordKey: entry.recordKey ?? null,
          field: entry.field ?? null,
          code: entry.code ?? null,
          ...(entry.at ? { at: entry.at } : {}),
        })),
      )
      .returning();
    rows.push(...inserted);
  }
  return rows;
}

/** Body of the `log` event announcing a stage-log entry (`type: "execution.stage"`). */
export function stageLogEvent(row: StageLogRow): { type: string } & Record<string, unknown> {
  return {
    type: "execution.stage",
    id: row.id,
    dateTime: row.at.toISOString(),
    processName: row.processName,
    state: row.state,
    code: row.code,
    description: row.description,
    entity: row.entity,
  };
}

/** Body of the `log` event announcing an error or warning (`type: "execution.error"`). */
export function executionErrorEvent(row: ExecutionErrorRow): { type: string } & Record<string, unknown> {
  return {
    type: "execution.error",
    id: row.id,
    dateTime: row.at.toISOString(),
    severity: row.severity,
    entity: row.entity,
    recordKey: row.recordKey,
    field: row.field,
    code: row.code,
    message: row.message,
  };
}
