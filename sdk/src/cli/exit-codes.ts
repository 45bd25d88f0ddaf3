/** Exit codes of the `dray` CLI. */
export const EXIT = {
  ok: 0,
  /** The execution failed, or the API refused the request. */
  failed: 1,
  /** The command line is wrong (unknown command, missing argument, bad file). */
  usage: 2,
  /** The execution was cancelled. */
  cancelled: 3,
  /** The control plane could not be reached. */
  unreachable: 4,
} as const;

/** A command-line mistake: printed with the usage hint, exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}
