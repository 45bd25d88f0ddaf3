/** Exit codes of the `dray` CLI. */
export const EXIT = {
  ok: 0,
  /** The execution failed, or the API refused the request. */
  failed: 1,
  /** The command line is wrong (unknown command or flag, missing argument, bad file, no confirmation). */
  usage: 2,
  /** The execution was cancelled. */
  cancelled: 3,
  /** The control plane could not be reached. */
  unreachable: 4,
  /** Ctrl-C while watching: the CLI detached and the execution goes on. */
  detached: 130,
} as const;

/** A command-line mistake: printed on one line with its hint, exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
  /** What to do instead, printed after the message. */
  readonly hint: string | undefined;

  constructor(message: string, hint?: string) {
    super(message);
    this.hint = hint;
  }
}
