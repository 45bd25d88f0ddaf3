import type { Logger } from "@dray/common";
import type { EventBus } from "../events/event-bus.js";
import {
  type ExecutionEventItem,
  publishExecutionEvents,
  type StoredExecutionEvent,
  storeExecutionEvents,
} from "../executions/execution-events.js";
import {
  appendStageLogs,
  type ExecutionErrorEntry,
  type ExecutionErrorRow,
  executionErrorEvent,
  recordExecutionErrors,
  type StageLogEntry,
  stageLogEvent,
} from "../executions/stage-log.js";
import type { Db } from "../store/db.js";
import { sqlStateOf } from "../store/raw-sql.js";
import type { ErrorEntry, Journal, StageEntry } from "./run-context.js";

/** Errors of one {@link Journal.errors} call announced one by one as live events; the rest in one line. */
const ERROR_EVENTS_PER_CALL = 20;

/** One call to the journal, waiting in its queue. `what` names it in the warning if it cannot be written. */
type Entry =
  /** `at`: when the entry was made (the row's time, however late it is written). */
  | { what: string; kind: "stage"; entry: StageEntry; at: Date }
  /** `error()` (one) or `errors()` (many, announced up to {@link ERROR_EVENTS_PER_CALL} and a summary line). */
  | { what: string; kind: "errors"; entries: readonly ErrorEntry[]; at: Date }
  | { what: string; kind: "event"; item: ExecutionEventItem };

type Deps = { db: Db; bus: EventBus; logger: Logger };

/** Options of {@link createJournal}. */
export interface JournalOptions {
  /** How long the writer waits, after the first entry queued since it last ran, for more entries to write together. @default 15 ms */
  gatherMs?: number;
  /**
   * The least time from the start of one write to the start of the next: while a
   * run makes entries all the time, they are written at most this often. @default 60 ms
   */
  minIntervalMs?: number;
}

/** Default of {@link JournalOptions.gatherMs}. */
export const DEFAULT_GATHER_MS = 15;

/** Default of {@link JournalOptions.minIntervalMs}. */
export const DEFAULT_MIN_INTERVAL_MS = 60;
type Target = { executionId: string; organisationId: string };

/**
 * The executor's journal of one execution: stage-log entries and errors go to
 * the store and out as `log` events; status and progress go out as events.
 *
 * Entries are written behind the copy, in the order they were made, by one
 * queue: a call returns once its entry is queued, so store and NATS round
 * trips stay off the copy's path; {@link Journal.flush} waits for the queue
 * to drain (the run does before it ends, and it does not wait for a gathering
 * window). The writer starts `gatherMs` after the first entry queued since it
 * last ran, and no sooner than `minIntervalMs` after its previous start (a busy
 * run's entries are written a few times a second, not one moment at a time),
 * then takes every entry queued so far and writes them together
 * ({@link writeEntries}: one store transaction, then the events published in
 * order): the entries of one moment of a run (an entity's end, the next ones'
 * begin, a progress event) share one transaction. A stage-log or error row
 * carries the time its entry was made, not the time it was written. A failure to
 * write an entry is logged and never fails the run; a process that dies
 * loses what was queued (never rows, counters or checkpoints, which are
 * written in the run's path).
 */
export function createJournal(deps: Deps, target: Target, options: JournalOptions = {}): Journal {
  const gatherMs = options.gatherMs ?? DEFAULT_GATHER_MS;
  const minIntervalMs = options.minIntervalMs ?? DEFAULT_MIN_INTERVAL_MS;
  /** When the writer last started (performance.now()). */
  let lastStart = Number.NEGATIVE_INFINITY;
  let tail: Promise<void> = Promise.resolve();
  let queued: Entry[] = [];
  /** Set while flush() waits: the writer does not wait for more entries. */
  let urgent = false;
  let hurry: (() => void) | undefined;
  const gather = (): Promise<void> => {
    const waitMs = Math.max(gatherMs, lastStart + minIntervalMs - performance.now());
    return urgent || waitMs <= 0
      ? Promise.resolve()
      : new Promise((resolve) => {
          const done = () => {
            clearTimeout(timer);
            hurry = undefined;
            resolve();
          };
          const timer = setTimeout(done, waitMs);
          hurry = done;
        });
  };
  const writeQueued = async (): Promise<void> => {
    const batch = queued;
    queued = [];
    if (batch.length === 0) return;
    lastStart = performance.now();
    try {
      await writeEntries(deps, target, batch);
    } catch (error) {
      // The store refused a statement, so nothing of the batch was stored (one
      // transaction): write each entry alone, so that one entry it refuses
      // does not take the others with it. Without an answer from the store
      // (connection lost) whether the batch committed is unknown: it is not
      // written again, as a single entry was not.
      if (batch.length === 1 || sqlStateOf(error) === undefined) {
        for (const entry of batch)
          deps.logger.warn(`could not record ${entry.what}`, { error: String(error) });
        return;
      }
      for (const entry of batch)
        await writeEntries(deps, target, [entry]).catch((error) =>
          deps.logger.warn(`could not record ${entry.what}`, { error: String(error) }),
        );
    }
  };
  const enqueue = (entry: Entry): Promise<void> => {
    queued.push(entry);
    // The first entry since the writer last took the queue schedules the next write.
    if (queued.length === 1) tail = tail.then(gather).then(writeQueued);
    return Promise.resolve();
  };
  return {
    flush: async () => {
      urgent = true;
      hurry?.();
      try {
        await tail;
      } finally {
        urgent = false;
      }
    },
    stage: (entry) => enqueue({ what: "a stage-log entry", kind: "stage", entry, at: new Date() }),
    error: (entry) =>
      enqueue({ what: "an execution error", kind: "errors", entries: [entry], at: new Date() }),
    errors: (entries) =>
      enqueue({ what: "execution errors", kind: "errors", entries: [...entries], at: new Date() }),
    status: (status, extra) =>
      enqueue({
        what: "a status event",
        kind: "event",
        item: { channel: "status", body: { type: "execution.status", status, ...extra } },
      }),
    progress: (body) =>
      enqueue({
        what: "a progress event",
        kind: "event",
        item: { channel: "progress", body: { type: "execution.progress", ...body } },
      }),
  };
}

/**
 * Writes entries of the journal in one store transaction: their stage-log
 * rows in one multi-row INSERT, their error rows in another, then their
 * events with consecutive `seq`s in the order the entries were made (one
 * `UPDATE … RETURNING` and one INSERT); after the commit, publishes the events
 * in order and marks the published ones in one UPDATE. Throws only when the
 * transaction failed, in which case nothing was stored.
 */
async function writeEntries(deps: Deps, target: Target, entries: readonly Entry[]): Promise<void> {
  const { executionId } = target;
  const stored = await deps.db.transaction(async (tx): Promise<StoredExecutionEvent[]> => {
    const stageRows = await appendStageLogs(
      tx,
      entries.flatMap((e): StageLogEntry[] =>
        e.kind === "stage" ? [{ executionId, ...e.entry, at: e.at }] : [],
      ),
    );
    const errorRows = await recordExecutionErrors(
      tx,
      entries.flatMap((e): ExecutionErrorEntry[] =>
        e.kind === "errors" ? e.entries.map((entry) => ({ executionId, ...entry, at: e.at })) : [],
      ),
    );
    // The events in the order the entries were made, built from the rows as stored.
    const items: ExecutionEventItem[] = [];
    let nextStage = 0;
    let nextError = 0;
    for (const e of entries) {
      if (e.kind === "stage") items.push({ channel: "log", body: stageLogEvent(stageRows[nextStage++]!) });
      else if (e.kind === "errors") {
        items.push(...errorEvents(errorRows.slice(nextError, nextError + e.entries.length)));
        nextError += e.entries.length;
      } else items.push(e.item);
    }
    return storeExecutionEvents(tx, target, items);
  });
  await publishExecutionEvents(deps, target, stored);
}

/** The `log` events of one error call: every error of the first few, then one line for the rest. */
function errorEvents(rows: readonly ExecutionErrorRow[]): ExecutionEventItem[] {
  // Every error is stored; the live feed carries the first few and one line for the rest.
  const items = rows
    .slice(0, ERROR_EVENTS_PER_CALL)
    .map((row): ExecutionEventItem => ({ channel: "log", body: executionErrorEvent(row) }));
  const rest = rows.length - ERROR_EVENTS_PER_CALL;
  if (rest > 0) {
    const last = rows.at(-1)!;
    items.push({
      channel: "log",
      body: {
        ...executionErrorEvent(last),
        recordKey: null,
        field: null,
        message: `… and ${rest} more like these${last.entity ? ` in ${last.entity}` : ""}: every one is in the error log`,
      },
    });
  }
  return items;
}
