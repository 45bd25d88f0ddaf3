/** The practical limit: `psql \copy … to pstdout | psql \copy … from pstdin`, table by table. */
import { spawn } from "node:child_process";
import { TABLES } from "./dataset.js";

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function run(command: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-o", "pipefail", "-c", command], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
    });
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${command}\nexited with ${code ?? signal}: ${stderr.trim()}`));
    });
  });
}

/** The shell pipeline copying one table, as it is run (and shown in the report). */
export function pipeCommand(sourceUrl: string, targetUrl: string, table: string): string {
  const psql = (url: string, meta: string) =>
    `psql -X -q -v ON_ERROR_STOP=1 -d ${quote(url)} -c ${quote(meta)}`;
  return `${psql(sourceUrl, `\\copy ${table} to pstdout`)} | ${psql(targetUrl, `\\copy ${table} from pstdin`)}`;
}

/** Copies the tables in load order into the (truncated) target; resolves with the elapsed ms. */
export async function runBaseline(sourceUrl: string, targetUrl: string): Promise<number> {
  const started = performance.now();
  for (const table of TABLES) await run(pipeCommand(sourceUrl, targetUrl, table));
  return performance.now() - started;
}
