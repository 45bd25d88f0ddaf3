/**
 * A control-plane process started from a compiled bundle (`pnpm build`,
 * scripts/build-bundles.ts) instead of the TypeScript source: what a container
 * runs. The same shape as the test harness's `startControlPlaneProcess`.
 */
import { spawn } from "node:child_process";
import type { startControlPlaneProcess } from "../../test/support/processes.js";

type ControlPlaneProcess = Awaited<ReturnType<typeof startControlPlaneProcess>>;

/** Starts `node <bundle>` with `env` (plus PATH and HOME) and waits until it says it is ready. */
export async function startBundledControlPlane(
  bundle: string,
  env: Record<string, string> & { DRAY_HTTP_PORT: string; DRAY_GRPC_PORT: string },
): Promise<ControlPlaneProcess> {
  const nodeOptions = env.NODE_OPTIONS ? env.NODE_OPTIONS.split(" ").filter((o) => o !== "") : [];
  const { NODE_OPTIONS: _, ...rest } = env;
  const child = spawn(process.execPath, [...nodeOptions, bundle], {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", DRAY_LOG_LEVEL: "info", ...rest },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let text = "";
  const exited = new Promise<number | string>((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? signal ?? "unknown")),
  );
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${bundle} not ready after 30 s:\n${text.slice(-4000)}`)),
      30_000,
    );
    const onData = (chunk: Buffer) => {
      text += chunk.toString("utf8");
      if (/dray-control-plane ready/.test(text)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${bundle} exited before it was ready:\n${text.slice(-4000)}`));
    });
  });
  await ready;
  return {
    child,
    output: () => text,
    exited,
    waitFor: () => Promise.reject(new Error("waitFor is not available on a bundled control plane")),
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
    httpUrl: `http://127.0.0.1:${env.DRAY_HTTP_PORT}`,
    grpcUrl: `http://127.0.0.1:${env.DRAY_GRPC_PORT}`,
  };
}
