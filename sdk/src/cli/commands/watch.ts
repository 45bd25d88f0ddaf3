import type { Execution } from "../../client.js";
import type { ExecutionEvent } from "../../event-stream.js";
import { FINAL_STATUSES } from "../../event-stream.js";
import type { CommandContext } from "../command-context.js";
import { EXIT, UsageError } from "../exit-codes.js";
import { createLiveView } from "../live-view.js";
import { resolveExecution } from "../resolve.js";
import { exitCodeOf, printSummary } from "./summary.js";

/** What `attach` needs to know of the execution it follows. */
interface Followed {
  id: string;
  pipelineToken: string;
  pipelineName?: string;
}

/**
 * Follows an execution until it ends and returns its exit code (0 completed, 1 failed,
 * 3 cancelled). On a terminal it draws live bars, off it plain lines; with `--json` it
 * prints the final execution, or with `stream` every event as one JSON line (NDJSON) and
 * then `{"type":"execution","data":<execution>}`. Ctrl-C detaches: the execution goes on,
 * and one line says how to come back or stop it (exit code 130). `announce` (the line that
 * says Ctrl-C detaches) is printed once Ctrl-C does, so a Ctrl-C right after it detaches too.
 */
export async function attach(
  ctx: CommandContext,
  followed: Followed,
  stream: boolean,
  announce?: string,
): Promise<number> {
  const { client, out } = ctx;
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.on("SIGINT", onSigint);
  if (announce !== undefined) out.line(announce);
  const view = out.json ? undefined : createLiveView(out);
  let execution: Execution;
  try {
    execution = (await client.executions.wait(followed.id, {
      signal: controller.signal,
      onEvent: (event: ExecutionEvent) => {
        if (out.json) {
          if (stream)
            out.stdout.write(`${JSON.stringify({ id: event.id, type: event.type, data: event.data })}\n`);
        } else view?.event(event);
      },
    })) as Execution;
  } catch (error) {
    if (!controller.signal.aborted) {
      view?.stop();
      throw error;
    }
    execution = { status: "in_progress" } as Execution;
  } finally {
    process.off("SIGINT", onSigint);
  }
  if (controller.signal.aborted && !FINAL_STATUSES.has(execution.status)) {
    view?.stop();
    const token = followed.pipelineToken;
    process.stderr.write(
      `\ndetached: ${followed.pipelineName ?? "the execution"} (${token}) is still running; \`dray watch ${token}\` to return, \`dray cancel ${token}\` to stop\n`,
    );
    return EXIT.detached;
  }
  view?.finish(execution);
  if (out.json) {
    if (stream) out.stdout.write(`${JSON.stringify({ type: "execution", data: execution })}\n`);
    else out.data(execution);
  } else {
    printSummary(out, execution);
    if (execution.status === "failed") out.error(`execution failed: ${execution.reason}`);
  }
  return exitCodeOf(execution.status);
}

/** `dray watch <execution|token|pipeline>`: attaches to an execution with live bars. */
export async function watchCommand(ctx: CommandContext, [ref]: string[]): Promise<number> {
  if (!ref)
    throw new UsageError("missing the execution to watch", "dray watch <execution|pt-token|pipeline>");
  const execution = await resolveExecution(ctx.client, ref);
  const state = FINAL_STATUSES.has(execution.status) ? `already ${execution.status}` : execution.status;
  const announce = ctx.out.json
    ? undefined
    : `watching ${ctx.out.color.bold(execution.pipelineName)} (${execution.pipelineToken}), ${state}; Ctrl-C detaches`;
  return attach(ctx, execution, true, announce);
}
