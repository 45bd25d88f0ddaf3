/**
 * A process-level guard for one known defect of the Postgres driver: postgres.js
 * 3.4.x can write to a connection whose socket has already closed, from a
 * setImmediate callback or a socket event, where no caller can catch it
 * (porsager/postgres#1066, #1154, #1208). The connector never writes to a lost
 * connection itself (see connectors/postgres/pool-keeper.ts and session.ts);
 * this guard keeps a stray driver write from taking the agent down. Any other
 * uncaught error still ends the process, as Node would.
 */
import type { Logger } from "@dray/common";
import { isDriverLostSocketError, isDriverTypeFetchFailure } from "./connectors/postgres/error-mapping.js";

/**
 * What the guard does with an uncaught error: `ignore` the driver's lost-socket
 * write and its unawaited array-type lookup on a connection that died, else `exit`.
 */
export function triage(error: unknown): "ignore" | "exit" {
  return isDriverLostSocketError(error) || isDriverTypeFetchFailure(error) ? "ignore" : "exit";
}

/**
 * Installs the guard on `process` for uncaught exceptions and unhandled
 * rejections; returns a function that removes it. `exit` is called for
 * everything else, after the error was logged.
 */
export function installDriverGuard(
  logger: Logger,
  exit: (code: number) => void = (code) => process.exit(code),
): () => void {
  const onError = (kind: string) => (error: unknown) => {
    if (triage(error) === "ignore") {
      logger.warn("ignored an error of the Postgres driver on a connection already closed", {
        error: String(error),
      });
      return;
    }
    logger.error(`${kind}: exiting`, {
      error: error instanceof Error ? (error.stack ?? error.message) : String(error),
    });
    process.stderr.write(
      `dray-agent: ${kind}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    exit(1);
  };
  const onException = onError("uncaught exception");
  const onRejection = onError("unhandled rejection");
  process.on("uncaughtException", onException);
  process.on("unhandledRejection", onRejection);
  return () => {
    process.off("uncaughtException", onException);
    process.off("unhandledRejection", onRejection);
  };
}
