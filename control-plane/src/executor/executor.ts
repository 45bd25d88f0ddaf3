import { DrayError, type Logger } from "@dray/common";
import { and, eq, sql } from "drizzle-orm";
import type { EventBus } from "../events/event-bus.js";
import { subjects } from "../events/subjects.js";
import {
  type ExecutionEventItem,
  publishExecutionEvents,
  type StoredExecutionEvent,
  storeExecutionEvents,
} from "../executions/execution-events.js";
import { sumCounters, throughputOf } from "../executions/execution-math.js";
import { appendStageLog } from "../executions/stage-log.js";
import type { Db } from "../store/db.js";
import { executions } from "../store/schema.js";
import type { AgentPort } from "./agent-port.js";
import {
  type ClaimedExecution,
  cancelRequested,
  claimExecution,
  finishExecution,
  renewLease,
  stopRequested,
} from "./execution-lease.js";
import { compileExecutorOptions, type ExecutorTuning } from "./executor-options.js";
import { createJournal } from "./journal.js";
import { createThrottle, type EntityCounters, etaSeconds } from "./progress-math.js";
import type { PipelineSettings } from "./run-context.js";
import { RunAborted } from "./run-errors.js";
import { runExecution } from "./run-execution.js";
import { releaseTargetLocks } from "./target-locks.js";

/** Options of {@link createExecutor}: its dependencies, and any tunable (executor-options.ts) to change. */
export type ExecutorOptions = ExecutorTuning & {
  db: Db;
  bus: EventBus;
  /** The agents (gateway-agent-port.ts). */
  agents: AgentPort;
  logger: Logger;
  /** Name of this replica, written as lease owner. */
  replicaId: string;
};

/** The executor of one control-plane replica. */
export interface Executor {
  start(): void;
  /** Looks for queued work now (called when an execution is queued). */
  nudge(): void;
  /**
   * Stops claiming, aborts the runs of this replica and gives their leases
   * back, so the next control plane resumes them from their checkpoints.
   */
  stop(): Promise<void>;
}

/**
 * Claims executions (SKIP LOCKED, with a lease it renews), runs them, and
 * records their final status. A cancel request stops a run as soon as its
 * `execution.cancel_requested` event arrives (from any replica's API), and the
 * store is checked every `cancelCheckMs` in case the event never does.
 *
 * @throws DrayError `invalid_argument` when a tunable is not a positive integer.
 */
export function createExecutor(options: ExecutorOptions): Executor {
  const { db, bus, agents, logger, replicaId, ...tuning } = options;
  const tunables = compileExecutorOptions(tuning);
  const { leaseMs, pollMs, maxConcurrent } = tunables;
  const running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  let stopped = false;
  let wake: (() => void) | undefined;
  let loop: Promise<void> | undefined;

  async function run(execution: ClaimedExecution, controller: AbortController) {
    const log = logger.child({ executionId: execution.id, organisationId: execution.organisationId });
    const abort = (reason: RunAborted) => {
      if (!controller.signal.aborted) controller.abort(reason);
    };
    const renew = setInterval(
      async () => {
        try {
          const lease = await renewLease(db, execution.id, replicaId, leaseMs);
          if (!lease.owned) abort(new RunAborted("lost", "the lease was lost"));
        } catch (error) {
          log.warn("lease renewal failed", { error: String(error) });
        }
      },
      Math.max(100, Math.floor(leaseMs / 3)),
    );
    // A continuous run stops at a batch boundary when asked (its batches in flight commit first).
    const stop = new AbortController();
    const checkCancel = async () => {
      try {
        const reason = await cancelRequested(db, execution.id);
        if (reason !== undefined) abort(new RunAborted("cancel", reason));
        if (
          execution.kind === "continuous" &&
          !stop.signal.aborted &&
          (await stopRequested(db, execution.id))
        )
          stop.abort();
      } catch {}
    };
    // The API announces a cancel request on the execution's status subject; the store has the reason.
    const cancelEvents = bus.subscribe(
      subjects.executionStatus(execution.organisationId, execution.id),
      (_subject, event) => {
        if (event.type === "execution.cancel_requested" || event.type === "execution.stop_requested")
          void checkCancel();
      },
    );
    const watchCancel = setInterval(checkCancel, tunables.cancelCheckMs);

    const target = { executionId: execution.id, organisationId: execution.organisationId };
    const journal = createJournal({ db, bus, logger: log }, target);
    const counters = new Map<string, EntityCounters>();
    const throttle = createThrottle(tunables.progressEveryMs);
    const started = Date.now();
    const onProgress = () => {
      if (!throttle.ready()) return;
      const sum = sumCounters([...counters.values()]);
      const rate = throughputOf(sum.processed, Date.now() - started);
      void journal.progress({
        ...sum,
        throughput: rate,
        etaSeconds: etaSeconds(sum.processed, sum.total, rate),
        entities: [...counters.entries()].map(([entity, c]) => ({ entity, ...c })),
      });
    };
    const settings = execution.snapshot as PipelineSettings;
    log.info("execution claimed", { attempt: execution.attempts });
    const outcome = await runExecution(
      {
        db,
        bus,
        agents,
        logger: log,
        executionId: execution.id,
        organisationId: execution.organisationId,
        pipelineToken: execution.pipelineToken,
        settings,
        signal: controller.signal,
        stop: stop.signal,
        counters,
        onProgress,
        options: tunables,
        journal,
      },
      execution,
    ).finally(() => {
      clearInterval(renew);
      clearInterval(watchCancel);
      cancelEvents.unsubscribe();
    });
    // What the run journaled is written before its end is recorded (and before a hand-over).
    await journal.flush();
    if (outcome.status === "lost") {
      log.info("execution handed over", { why: DrayError.from(controller.signal.reason).message });
      return;
    }
    // The final progress and status events are stored in the transaction that ends the run (the
    // store is the outbox), so a process killed right after cannot lose them.
    const sum = sumCounters([...counters.values()]);
    const rate = throughputOf(sum.processed, Date.now() - started);
    const finalEvents: ExecutionEventItem[] = [
      {
        channel: "progress",
        body: {
          type: "execution.progress",
          ...sum,
          throughput: rate,
          etaSeconds: etaSeconds(sum.processed, sum.total, rate),
          final: true,
        },
      },
      {
        channel: "status",
        body: {
          type: "execution.status",
          status: outcome.status,
          ...(outcome.status === "completed" ? {} : { reason: outcome.reason }),
        },
      },
    ];
    let stored: StoredExecutionEvent[] = [];
    const finished = await finishExecution(
      db,
      execution.id,
      replicaId,
      {
        status: outcome.status,
        reasonCode:
          outcome.status === "failed"
            ? outcome.reasonCode
            : outcome.status === "cancelled"
              ? "cancelled_by_user"
              : null,
        reason: outcome.status === "completed" ? null : outcome.reason,
      },
      async (tx) => {
        stored = await storeExecutionEvents(tx, target, finalEvents);
        await outcome.alsoWhenFinished?.(tx);
      },
    );
    if (!finished) return;
    await publishExecutionEvents({ db, bus, logger: log }, target, stored);
    await releaseTargetLocks({ db, executionId: execution.id, settings }).catch((error) =>
      log.warn("could not release the target locks", { error: String(error) }),
    );
    if (outcome.status === "cancelled") {
      await appendStageLog(db, {
        executionId: execution.id,
        processName: "JobRunner",
        state: "end",
        code: "cancelled",
        description: outcome.reason,
      }).catch(() => {});
    }
    log.info("execution finished", { status: outcome.status });
  }

  async function claimLoop() {
    while (!stopped) {
      if (running.size < maxConcurrent) {
        let claimed: ClaimedExecution | undefined;
        try {
          claimed = await claimExecution(db, replicaId, leaseMs);
        } catch (error) {
          logger.warn("could not claim executions", { error: String(error) });
        }
        if (claimed && !stopped) {
          const id = claimed.id;
          const controller = new AbortController();
          const done = run(claimed, controller)
            .catch((error) => logger.error("execution crashed", { executionId: id, error: String(error) }))
            .finally(() => {
              running.delete(id);
              wake?.();
            });
          running.set(id, { controller, done });
          continue;
        }
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pollMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
  }

  return {
    start() {
      loop ??= claimLoop();
    },
    nudge() {
      wake?.();
    },
    async stop() {
      stopped = true;
      wake?.();
      await loop;
      for (const r of running.values()) {
        r.controller.abort(new RunAborted("shutdown", "the control plane is shutting down"));
      }
      await Promise.allSettled([...running.values()].map((r) => r.done));
      // Give leases back at once so the next control plane resumes without waiting.
      await db
        .update(executions)
        .set({ leaseExpiresAt: sql`now()` })
        .where(and(eq(executions.leaseOwner, replicaId), eq(executions.status, "in_progress")))
        .catch(() => {});
    },
  };
}
