import { execFile } from "node:child_process";
import { chown, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const BIN = process.env.DRAY_TEST_PG_BIN ?? "/usr/lib/postgresql/15/bin";

/**
 * A PostgreSQL cluster of a test file's own (initdb into a temp dir, on a free
 * port), so the test can stop and start it without touching the shared server.
 * As root the binaries run as the `postgres` user.
 */
export interface OwnCluster {
  port: number;
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  url: string;
  /** Stops the server: `immediate` kills it like a crash. */
  stop(mode?: "immediate" | "fast"): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and removes its directory. */
  destroy(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Runs a PostgreSQL binary, as the `postgres` user when this process is root. */
async function pg(binary: string, args: string[]): Promise<string> {
  const asRoot = process.getuid?.() === 0;
  const [file, argv] = asRoot
    ? ["runuser", ["-u", "postgres", "--", join(BIN, binary), ...args]]
    : [join(BIN, binary), args];
  const { stdout } = await run(file, argv, { timeout: 60_000 });
  return stdout;
}

/** Creates and starts a cluster; `destroy()` it in afterAll. */
export async function startOwnCluster(): Promise<OwnCluster> {
  const dir = await mkdtemp(join(tmpdir(), "dray-own-cluster-"));
  if (process.getuid?.() === 0) {
    const { stdout } = await run("id", ["-u", "postgres"]);
    const { stdout: gid } = await run("id", ["-g", "postgres"]);
    await chown(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  const data = join(dir, "data");
  await pg("initdb", ["-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"]);
  const port = await freePort();
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40`;
  const cluster: OwnCluster = {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async stop(mode = "immediate") {
      await pg("pg_ctl", ["-D", data, "-m", mode, "-w", "stop"]);
    },
    async start() {
      await pg("pg_ctl", ["-D", data, "-o", options, "-l", join(dir, "server.log"), "-w", "start"]);
    },
    async destroy() {
      await cluster.stop("immediate").catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
  await cluster.start();
  return cluster;
}
