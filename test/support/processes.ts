import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));

/** A Dray process started by a test, with its output kept for assertions and failure reports. */
export interface DrayProcess {
  child: ChildProcess;
  output(): string;
  /** Resolves with the first output line matching `pattern`, or rejects after `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Sends a signal and resolves with the exit code (or signal name). */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
  exited: Promise<number | string>;
}

/** A TCP port free right now on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  server.close();
  await once(server, "close");
  return port;
}

/**
 * Starts `bin` with Node. `nodeArgs` go before it on Node's command line: the
 * place for V8 flags that NODE_OPTIONS refuses (`--initial-old-space-size`).
 */
function start(bin: string, env: Record<string, string>, nodeArgs: readonly string[] = []): DrayProcess {
  const child = spawn(process.execPath, [...nodeArgs, bin], {
    cwd: root,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", DRAY_LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let text = "";
  const listeners = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    text += chunk.toString("utf8");
    for (const l of listeners) l();
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  const exited = new Promise<number | string>((resolve) => {
    child.on("exit", (code, signal) => resolve(code ?? signal ?? "unknown"));
  });
  return {
    child,
    output: () => text,
    exited,
    waitFor(pattern, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = text.match(pattern);
          if (match) {
            cleanup();
            resolve(match);
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out waiting for ${pattern} in output of ${bin}:\n${text.slice(-4000)}`));
        }, timeoutMs);
        const onExit = () => {
          check();
          cleanup();
          reject(new Error(`${bin} exited before printing ${pattern}:\n${text.slice(-4000)}`));
        };
        const cleanup = () => {
          clearTimeout(timer);
          listeners.delete(check);
          child.off("exit", onExit);
        };
        listeners.add(check);
        child.once("exit", onExit);
        check();
      });
    },
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Starts `dray-control-plane` as a real process and waits until it serves. */
export async function startControlPlaneProcess(
  env: Record<string, string>,
  nodeArgs: readonly string[] = [],
) {
  const httpPort = env.DRAY_HTTP_PORT ?? String(await freePort());
  const grpcPort = env.DRAY_GRPC_PORT ?? String(await freePort());
  const proc = start(
    "control-plane/bin/dray-control-plane.js",
    {
      DRAY_HTTP_PORT: httpPort,
      DRAY_GRPC_PORT: grpcPort,
      DRAY_METRICS_TOKEN: TEST_METRICS_TOKEN,
      ...env,
    },
    nodeArgs,
  );
  await proc.waitFor(/dray-control-plane ready/, 30_000);
  return { ...proc, httpUrl: `http://127.0.0.1:${httpPort}`, grpcUrl: `http://127.0.0.1:${grpcPort}` };
}

/** The bearer token of /metrics on the control planes tests start (DRAY_METRICS_TOKEN). */
export const TEST_METRICS_TOKEN = "dray-test-metrics-token-0123456789";

/** Headers that let a test read a control plane's /metrics. */
export const METRICS_HEADERS = { authorization: `Bearer ${TEST_METRICS_TOKEN}` };

/** Starts `dray-agent` as a real process. */
export function startAgentProcess(
  env: Record<string, string>,
  nodeArgs: readonly string[] = [],
): DrayProcess {
  return start("agent/bin/dray-agent.js", env, nodeArgs);
}
