import type { Logger } from "@dray/common";
import type { EventBus } from "../events/event-bus.js";
import { appendExecutionEvent } from "../executions/execution-events.js";
import {
  appendStageLog,
  executionErrorEvent,
  recordExecutionError,
  recordExecutionErrors,
  stageLogEvent,
} from "../executions/stage-log.js";
import type { Db } from "../store/db.js";
import type { Journal } from "./run-context.js";

/** Errors of one {@link Journal.errors} call announced one by one as live events; the rest in one line. */
const ERROR_EVENTS_PER_CALL = 20;

/**
 * The executor's journal of one execution: stage-log entries and errors go to
 * the store and out as `log` events; status and progress go out as events.
 *
 * Entries are written behind the copy, in the order they were made, by one
 * queue: a call returns once its entry is queued, so store and NATS round
 * trips stay off the copy's path; {@link Journal.flush} waits for the queue
 * to drain (the run does before it ends). A failure to write an entry is
 * logged and never fails the run; a process that dies loses what was queued
 * (never rows, counters or checkpoints, which are written in the run's path).
 */
export function createJournal(
  deps: { db: Db; bus: EventBus; logger: Logger },
  target: { executionId: string; organisationId: string },
): Journal {
  let tail: Promise<void> = Promise.resolve();
  const safe = (what: string, fn: () => Promise<unknown>): Promise<void> => {
    tail = tail.then(async () => {
      try {
        await fn();
      } catch (error) {
        deps.logger.warn(`could not record ${what}`, { error: String(error) });
      }
    });
    return Promise.resolve();
  };
  return {
    flush: () => tail,
    stage: (entry) =>
      safe("a stage-log entry", async () => {
        const row = await appendStageLog(deps.db, { executionId: target.executionId, ...entry });
        await appendExecutionEvent(deps, target, "log", stageLogEvent(row));
      }),
    error: (entry) =>
      safe("an execution error", async () => {
        const row = await recordExecutionError(deps.db, { executionId: target.executionId, ...entry });
        await appendExecutionEvent(deps, target, "log", executionErrorEvent(row));
      }),
    errors: (entries) =>
      safe("execution errors", async () => {
        const rows = await recordExecutionErrors(
          deps.db,
          entries.map((entry) => ({ executionId: target.executionId, ...entry })),
        );
        // Every error is stored; the live feed carries the first few and one line for the rest.
        for (const row of rows.slice(0, ERROR_EVENTS_PER_CALL))
          await appendExecutionEvent(deps, target, "log", executionErrorEvent(row));
        const rest = rows.length - ERROR_EVENTS_PER_CALL;
        if (rest > 0) {
          const last = rows.at(-1)!;
          await appendExecutionEvent(deps, target, "log", {
            ...executionErrorEvent(last),
            recordKey: null,
            field: null,
            message: `… and ${rest} more like these${last.entity ? ` in ${last.entity}` : ""}: every one is in the error log`,
          });
        }
      }),
    status: (status, extra) =>
      safe("a status event", () =>
        appendExecutionEvent(deps, target, "status", { type: "execution.status", status, ...extra }),
      ),
    progress: (body) =>
      safe("a progress event", () =>
        appendExecutionEvent(deps, target, "progress", { type: "execution.progress", ...body }),
      ),
  };
}
