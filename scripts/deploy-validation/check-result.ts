/** The outcome of one deploy check: passed, failed (with the problems), or not run (and why). */
export interface CheckResult {
  name: string;
  status: "ok" | "failed" | "not-run";
  /** Problems when failed, the reason when not run, a summary when ok. */
  details: string[];
}

/** A check from its problems: ok when there are none. */
export function fromProblems(name: string, problems: string[], summary?: string): CheckResult {
  return problems.length === 0
    ? { name, status: "ok", details: summary ? [summary] : [] }
    : { name, status: "failed", details: problems };
}

/** A check that could not run here, with the reason. */
export function notRun(name: string, reason: string): CheckResult {
  return { name, status: "not-run", details: [reason] };
}

/** One line per check and one per detail, for a terminal or a test failure. */
export function formatResults(results: readonly CheckResult[]): string {
  const mark = { ok: "ok     ", failed: "FAILED ", "not-run": "NOT RUN" } as const;
  return results
    .flatMap((r) => [`${mark[r.status]} ${r.name}`, ...r.details.map((d) => `          ${d}`)])
    .join("\n");
}
