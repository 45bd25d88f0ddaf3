import { createInterface } from "node:readline/promises";
import { UsageError } from "./exit-codes.js";

/** Where a confirmation is asked. */
export interface ConfirmIo {
  stdin: NodeJS.ReadStream;
  stderr: NodeJS.WriteStream;
}

/**
 * Asks before an action that cannot be undone. `--yes` skips the question; on a terminal the
 * user answers y/N (anything but y or yes declines); off a terminal, without `--yes`, it fails
 * with a hint, so that a script never hangs on a question.
 *
 * @param what  what will happen, said before the question
 * @param retry the command line that does it without asking (with `--yes`)
 * @returns true to go on, false when the user declined
 */
export async function confirm(
  options: { yes: boolean; what: string; question: string; retry: string },
  io: ConfirmIo = { stdin: process.stdin, stderr: process.stderr },
): Promise<boolean> {
  if (options.yes) return true;
  if (!io.stdin.isTTY) {
    throw new UsageError(`${options.what}; this needs confirmation`, `run \`${options.retry}\` to go ahead`);
  }
  const rl = createInterface({ input: io.stdin, output: io.stderr });
  // Ctrl-C at the question declines.
  const interrupted = new AbortController();
  rl.on("SIGINT", () => interrupted.abort());
  try {
    io.stderr.write(`${options.what}.\n`);
    const answer = await rl.question(`${options.question} [y/N] `, { signal: interrupted.signal });
    return /^y(es)?$/i.test(answer.trim());
  } catch (error) {
    if (interrupted.signal.aborted) {
      io.stderr.write("\n");
      return false;
    }
    throw error;
  } finally {
    rl.close();
  }
}
