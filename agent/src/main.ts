/**
 * dray-agent: the process installed next to an environment's database.
 * Only this file reads process.env (through config.ts) and handles signals.
 */

import type { Server } from "node:http";
import { createPinoLogger, DRAY_VERSION, isDrayError } from "@dray/common";
import { createAgent } from "./agent.js";
import { loadAgentConfig } from "./config.js";
import { createPostgresConnector } from "./connectors/postgres/index.js";
import { createCredentialStore } from "./credential-store.js";
import { installDriverGuard } from "./driver-guard.js";
import { connectGateway } from "./gateway-client.js";
import { createAgentMetrics, serveAgentMetrics } from "./metrics.js";
import { compileTransformer } from "./transform/index.js";
import { loadTransformKey, type TransformKey } from "./transform/transform-key.js";

/** How long the process may linger after the agent has stopped. */
const EXIT_GRACE_MS = 2_000;

async function main(): Promise<number> {
  let config: ReturnType<typeof loadAgentConfig>;
  try {
    config = loadAgentConfig(process.env);
  } catch (error) {
    process.stderr.write(`dray-agent: ${(error as Error).message}\n`);
    return 2;
  }
  const logger = createPinoLogger({
    name: "dray-agent",
    level: config.logLevel,
    ...(config.logFormat ? { format: config.logFormat } : {}),
  }).child({
    agent: config.name,
  });
  logger.info("starting", {
    version: DRAY_VERSION,
    controlPlane: config.controlPlanes.map((g) => g.address).join(", "),
  });
  installDriverGuard(logger);
  let transformKey: TransformKey;
  try {
    transformKey = await loadTransformKey(config.stateDir, config.transformKey);
  } catch (error) {
    process.stderr.write(`dray-agent: ${(error as Error).message}\n`);
    return 2;
  }
  const metrics = config.metrics ? createAgentMetrics() : undefined;
  const postgres = createPostgresConnector({
    url: config.databaseUrl,
    maxConnections: config.dbPoolSize,
    staging: config.bulkLoad,
    readMethod: config.bulkRead,
    runSnapshots: config.runSnapshots,
    transformKey,
    compileTransform: compileTransformer,
    logger,
  });
  const connector = metrics ? metrics.instrument(postgres) : postgres;
  let metricsServer: Server | undefined;
  if (metrics && config.metrics) {
    try {
      metricsServer = await serveAgentMetrics(metrics.registry, config.metrics.host, config.metrics.port);
    } catch (error) {
      process.stderr.write(`dray-agent: cannot serve metrics: ${(error as Error).message}\n`);
      await connector.close().catch(() => {});
      return 2;
    }
    logger.info("metrics listening", {
      address: `http://${config.metrics.host}:${config.metrics.port}/metrics`,
    });
  }
  const gateway = await connectGateway(config, logger);
  const agent = createAgent({
    config,
    connector,
    gateway,
    credentials: createCredentialStore(config.stateDir),
    logger,
  });

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      logger.warn("second signal: exiting now", { signal });
      process.exit(1);
    }
    logger.info("signal received: draining", { signal });
    void agent.stop(`received ${signal}`);
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);

  try {
    await agent.start();
    await agent.done;
    logger.info("stopped");
    return 0;
  } catch (error) {
    const message = isDrayError(error) ? error.message : String(error);
    logger.error("agent failed", { error: message });
    process.stderr.write(`dray-agent: ${message}\n`);
    await agent.stop().catch(() => {});
    return 1;
  } finally {
    metricsServer?.close();
    metricsServer?.closeAllConnections();
  }
}

process.exitCode = await main();
// Everything is closed by now; should a stray handle keep the event loop alive, exit anyway
// (the timer itself does not keep the process alive).
setTimeout(() => process.exit(), EXIT_GRACE_MS).unref();
