/**
 * Runs the `dray` CLI inside the test process against an in-process API:
 * `fetch` goes to `appFetch`, and stdout and stderr are captured.
 */
import { vi } from "vitest";
import { runCli } from "../src/cli/main.js";

/** What one CLI call printed and its exit code. */
export interface CliRun {
  code: number;
  out: string;
  err: string;
}

/** Runs `dray <args>` with `env` (DRAY_URL, DRAY_TOKEN …), answering its requests with `appFetch`. */
export async function runCliInProcess(
  appFetch: typeof fetch,
  args: string[],
  env: Record<string, string>,
): Promise<CliRun> {
  vi.stubGlobal("fetch", appFetch);
  let out = "";
  let err = "";
  const capture = (into: (s: string) => void) => (chunk: string | Uint8Array) => {
    into(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString());
    return true;
  };
  const stdout = vi.spyOn(process.stdout, "write").mockImplementation(capture((s) => (out += s)));
  const stderr = vi.spyOn(process.stderr, "write").mockImplementation(capture((s) => (err += s)));
  try {
    const code = await runCli(args, { DRAY_CONFIG_DIR: "/nonexistent-dray", NO_COLOR: "1", ...env });
    return { code, out, err };
  } finally {
    stdout.mockRestore();
    stderr.mockRestore();
    vi.unstubAllGlobals();
  }
}
