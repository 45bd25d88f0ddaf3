import type { Logger } from "@dray/common";
import type { EventBus } from "../events/event-bus.js";
import { appendExecutionEvent } from "../executions/execution-events.js";
import {
  appendStageLog,
  executionErrorEvent,
  recordExecutionError,
  stageLogEvent,
} from "../executions/stage-log.js";
import type { Db } from "../store/db.js";
import type { Journal } from "./run-context.js";

/**
 * The executor's journal of one execution: stage-log entries and errors go to
 * the store and out as `log` events; status and progress go out as events.
 * A failure to write the journal is logged and never fails the run.
 */
export function createJournal(
  deps: { db: Db; bus: EventBus; logger: Logger },
  target: { executionId: string; organisationId: string },
): Journal {
  const safe = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (error) {
      deps.logger.warn(`could not record ${what}`, { error: String(error) });
    }
  };
  return {
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
