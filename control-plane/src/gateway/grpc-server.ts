import { readFile } from "node:fs/promises";
import type { Logger } from "@dray/common";
import type { AgentGatewayDefinition } from "@dray/proto";
import { agentGatewayDefinition, MAX_GRPC_MESSAGE_BYTES } from "@dray/proto";
import { ServerCredentials } from "@grpc/grpc-js";
import { createServer, type Server, type ServiceImplementation } from "nice-grpc";

/** Options of {@link startGrpcServer}. */
export interface GrpcServerOptions {
  host: string;
  port: number;
  /** TLS; with `clientCaFile`, clients must present a certificate chaining to that CA (mutual TLS). */
  tls?: { certFile: string; keyFile: string; clientCaFile?: string | undefined };
  logger: Logger;
}

/** A listening gRPC server and the port it bound. */
export interface RunningGrpcServer {
  port: number;
  server: Server;
  /** Stops accepting calls, waits up to `graceMs` for calls to end, then forces. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts the agent gateway. Keepalive pings detect dead agents within about
 * 30 s at the transport level; health uses heartbeats (see health-rules.ts).
 */
export async function startGrpcServer(
  service: ServiceImplementation<AgentGatewayDefinition>,
  options: GrpcServerOptions,
): Promise<RunningGrpcServer> {
  const server = createServer({
    "grpc.max_receive_message_length": MAX_GRPC_MESSAGE_BYTES,
    "grpc.max_send_message_length": MAX_GRPC_MESSAGE_BYTES,
    "grpc.keepalive_time_ms": 20_000,
    "grpc.keepalive_timeout_ms": 10_000,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.http2.min_ping_interval_without_data_ms": 5_000,
    // Channelz keeps ordered maps of every session for introspection nobody reads here: memory and
    // about 2 % of a replica's CPU with many agents (pnpm bench -- --routing).
    "grpc.enable_channelz": 0,
  });
  server.add(agentGatewayDefinition, service);
  const credentials = options.tls ? await serverCredentials(options.tls) : ServerCredentials.createInsecure();
  const port = await server.listen(`${options.host}:${options.port}`, credentials);
  options.logger.info("agent gateway listening", {
    address: `${options.host}:${port}`,
    tls: Boolean(options.tls),
    mutualTls: Boolean(options.tls?.clientCaFile),
  });
  return {
    port,
    server,
    async stop(graceMs = 5_000) {
      const forced = setTimeout(() => server.forceShutdown(), graceMs);
      try {
        await server.shutdown();
      } finally {
        clearTimeout(forced);
      }
    },
  };
}

/**
 * TLS credentials of the gateway. With a client CA, a client certificate is
 * required and must chain to it: the handshake of any other client fails.
 */
export async function serverCredentials(
  tls: NonNullable<GrpcServerOptions["tls"]>,
): Promise<ServerCredentials> {
  const keyCertPairs = [
    { cert_chain: await readFile(tls.certFile), private_key: await readFile(tls.keyFile) },
  ];
  if (!tls.clientCaFile) return ServerCredentials.createSsl(null, keyCertPairs);
  return ServerCredentials.createSsl(await readFile(tls.clientCaFile), keyCertPairs, true);
}
