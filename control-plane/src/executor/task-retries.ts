/**
 * The run's retry policy around one agent task: retryable errors are retried
 * with backoff (retry-policy.ts), and an agent that is away is waited for
 * without counting an attempt, up to the time that marks its environment
 * unhealthy.
 */
import { DrayError, sleep } from "@dray/common";
import { isAgentAway } from "../gateway/agent-sessions.js";
import { retryDecision } from "./retry-policy.js";
import type { RunContext } from "./run-context.js";
import { AgentUnavailable } from "./run-errors.js";

/** The role and name of an environment of the run. */
export function environmentLabel(ctx: RunContext, environmentId: string): string {
  if (environmentId === ctx.settings.sourceEnvironmentId)
    return `source environment "${ctx.plan.sourceName}"`;
  if (environmentId === ctx.settings.targetEnvironmentId)
    return `target environment "${ctx.plan.targetName}"`;
  return `environment ${environmentId}`;
}

/**
 * Waits for the agent of `environmentId` after a task found it away, without
 * counting an attempt. Throws {@link AgentUnavailable} once it has been away
 * for `agentAwayLimitMs` (counted from when it left).
 */
async function waitForAgent(ctx: RunContext, environmentId: string, what: string, signal: AbortSignal) {
  const label = environmentLabel(ctx, environmentId);
  const limitMs = ctx.options.agentAwayLimitMs;
  const absence = ctx.agents.absence(environmentId);
  if (absence) {
    const leftS = Math.max(0, Math.round((absence.since + limitMs - Date.now()) / 1000));
    ctx.logger.warn("waiting for an agent", { what, environmentId, leftS });
    await ctx.journal.error({
      severity: "warning",
      message: `${what}: the agent of ${label} is away; waiting up to ${leftS} s more for it to come back`,
    });
  }
  try {
    await ctx.agents.waitForAgent(environmentId, limitMs, signal);
  } catch (error) {
    const e = DrayError.from(error);
    if (signal.aborted || e.code === "cancelled") throw e;
    const details = e.details as { agentId?: string; awayMs?: number } | undefined;
    const seconds = Math.round((details?.awayMs ?? limitMs) / 1000);
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
      if (isAgentAway(e) && environmentId && waits < ctx.options.maxAgentWaits) {
        // An agent that is away is a condition to wait for, not a failed attempt.
        waits++;
        await waitForAgent(ctx, environmentId, what, signal);
        continue;
      }
      const decision = retryDecision(e, n, ctx.settings.maxRetriesPerBatch, Math.random, {
        firstMs: ctx.options.firstRetryDelayMs,
        maxMs: ctx.options.maxRetryDelayMs,
      });
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
