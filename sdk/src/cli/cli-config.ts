import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { UsageError } from "./exit-codes.js";

/** Where the CLI talks to, and with which token. */
export interface CliConfig {
  url: string;
  token: string;
}

/** The config file: `$DRAY_CONFIG_DIR/config.json`, default `~/.config/dray/config.json` (mode 0600). */
export function configPath(env: NodeJS.ProcessEnv): string {
  return join(
    env.DRAY_CONFIG_DIR ?? join(env.XDG_CONFIG_HOME ?? join(homedir(), ".config"), "dray"),
    "config.json",
  );
}

/** DRAY_URL and DRAY_TOKEN win over the file written by `dray login`. */
export async function loadCliConfig(env: NodeJS.ProcessEnv): Promise<CliConfig> {
  let file: Partial<CliConfig> = {};
  try {
    file = JSON.parse(await readFile(configPath(env), "utf8")) as Partial<CliConfig>;
  } catch {}
  const url = env.DRAY_URL ?? file.url;
  const token = env.DRAY_TOKEN ?? file.token;
  if (!url || !token) {
    throw new UsageError(
      "not logged in: run `dray login --url http://127.0.0.1:8080 --token <token>`, or set DRAY_URL and DRAY_TOKEN",
    );
  }
  return { url, token };
}

/** Writes the config file with owner-only permissions. */
export async function saveCliConfig(env: NodeJS.ProcessEnv, config: CliConfig): Promise<string> {
  const path = configPath(env);
  await mkdir(join(path, ".."), { recursive: true, mode: 0o700 });
  await writeFile(path, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  await chmod(path, 0o600);
  return path;
}
