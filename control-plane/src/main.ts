/**
 * dray-control-plane. Only this file reads process.env (through config.ts)
 * and handles signals: the first SIGTERM/SIGINT stops gracefully, a second exits.
 */
import { hostname } from "node:os";
import { createPinoLogger, DRAY_VERSION } from "@dray/common";
import { type ControlPlaneConfig, loadConfig } from "./config.js";
import { startControlPlane } from "./control-plane.js";

async function main(): Promise<number> {
  let config: ControlPlaneConfig;
  try {
    config = loadConfig(process.env, { replicaId: `${hostname()}:${process.pid}` });
  } catch (error) {
    process.stderr.write(`dray-control-plane: ${(error as Error).message}\n`);
    return 2;
  }
  const logger = createPinoLogger({
    name: "dray-control-plane",
    level: config.logLevel,
    ...(config.logFormat ? { format: config.logFormat } : {}),
  }).child({
    replica: config.replicaId,
  });
  logger.info("starting", {
    version: DRAY_VERSION,
    store: config.databaseUrl ? "postgres" : `pglite (${config.dataDir})`,
    events: config.natsUrl ? "nats" : "in-process",
    httpTls: Boolean(config.httpTls),
    grpcTls: config.grpcTls ? (config.grpcTls.clientCaFile ? "mutual" : "server") : "off",
  });
  let controlPlane: Awaited<ReturnType<typeof startControlPlane>>;
  try {
    controlPlane = await startControlPlane(config, logger);
  } catch (error) {
    logger.error("could not start", { error: (error as Error).message });
    process.stderr.write(`dray-control-plane: could not start: ${(error as Error).message}\n`);
    return 1;
  }
  if (controlPlane.generatedAdminToken) {
    process.stdout.write(
      `\nSystem admin token (shown once; store it now, or set DRAY_ADMIN_TOKEN):\n\n  ${controlPlane.generatedAdminToken}\n\n`,
    );
  }
  process.stdout.write(
    `dray-control-plane ready: ${config.httpTls ? "https" : "http"}://${config.bindHost}:${controlPlane.httpPort} (API), ${config.grpcTls ? "https" : "http"}://${config.bindHost}:${controlPlane.grpcPort} (agent gateway${config.grpcTls?.clientCaFile ? ", mutual TLS" : config.grpcTls ? ", TLS" : ""})\n`,
  );

  await new Promise<void>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      if (++signals > 1) process.exit(1);
      logger.info("signal received: stopping", { signal });
      resolve();
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
  await controlPlane.stop();
  return 0;
}

process.exitCode = await main();
