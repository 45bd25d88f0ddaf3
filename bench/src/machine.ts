/** What the benchmark ran on, for RESULTS.md. */
import { execFileSync } from "node:child_process";
import { availableParallelism, cpus, release, totalmem } from "node:os";
import postgres from "postgres";

export interface Machine {
  nproc: number;
  cpu: string;
  memory: string;
  kernel: string;
  node: string;
  postgres: string;
  postgresSettings: string;
  git: string;
}

function git(args: string[]): string {
  try {
    return execFileSync("git", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return "";
  }
}

export async function describeMachine(baseUrl: string): Promise<Machine> {
  const sql = postgres(baseUrl, { max: 1, onnotice: () => {} });
  try {
    const [v] = await sql<{ v: string }[]>`select version() as v`;
    const settings = await sql<{ name: string; setting: string; unit: string | null }[]>`
      select name, setting, unit from pg_settings
      where name in ('shared_buffers', 'max_wal_size', 'synchronous_commit', 'fsync', 'wal_level', 'work_mem')
      order by name`;
    const commit = git(["rev-parse", "--short", "HEAD"]);
    const dirty = git(["status", "--porcelain", "--untracked-files=no"]).split("\n").filter(Boolean).length;
    return {
      nproc: availableParallelism(),
      cpu: cpus()[0]?.model ?? "unknown",
      memory: `${(totalmem() / 1024 ** 3).toFixed(1)} GiB`,
      kernel: `Linux ${release()}`,
      node: process.version,
      postgres: v!.v.split(" on ")[0] ?? v!.v,
      postgresSettings: settings
        .map((s) => `${s.name}=${s.setting}${s.unit && s.unit !== "" ? ` (${s.unit})` : ""}`)
        .join(", "),
      git: commit
        ? `${commit}${dirty > 0 ? ` + uncommitted changes in ${dirty} tracked files` : ""}`
        : "unknown",
    };
  } finally {
    await sql.end();
  }
}
