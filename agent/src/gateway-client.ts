import { readFile } from "node:fs/promises";
import { type AgentGatewayDefinition, agentGatewayDefinition, MAX_GRPC_MESSAGE_BYTES } from "@dray/proto";
import { ChannelCredentials } from "@grpc/grpc-js";
import { type Channel, type Client, createChannel, createClientFactory, Metadata } from "nice-grpc";
import type { AgentConfig } from "./config.js";

/** A typed client of the agent gateway plus its channel. */
/** HTTP/2 receive window asked of the control plane (the default is 64 KiB). */
const FLOW_CONTROL_WINDOW_BYTES = 16 * 1024 * 1024;

export interface GatewayConnection {
  client: Client<AgentGatewayDefinition>;
  channel: Channel;
  /** Sets the credential sent on every call from now on. */
  setCredential(credential: string | undefined): void;
  close(): void;
}

/** Opens a channel to the control plane with keepalive, size limits and optional (m)TLS. */
export async function connectGateway(
  config: Pick<AgentConfig, "controlPlane" | "tls">,
): Promise<GatewayConnection> {
  const credentials = config.controlPlane.tls
    ? ChannelCredentials.createSsl(
        config.tls.caFile ? await readFile(config.tls.caFile) : null,
        config.tls.keyFile ? await readFile(config.tls.keyFile) : null,
        config.tls.certFile ? await readFile(config.tls.certFile) : null,
      )
    : ChannelCredentials.createInsecure();
  const channel = createChannel(config.controlPlane.address, credentials, {
    "grpc.max_receive_message_length": MAX_GRPC_MESSAGE_BYTES,
    "grpc.max_send_message_length": MAX_GRPC_MESSAGE_BYTES,
    "grpc.keepalive_time_ms": 20_000,
    "grpc.keepalive_timeout_ms": 10_000,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.initial_reconnect_backoff_ms": 250,
    "grpc.max_reconnect_backoff_ms": 5_000,
    // Receive window (stream and connection): a whole write batch arrives without waiting for window updates.
    "grpc-node.flow_control_window": FLOW_CONTROL_WINDOW_BYTES,
  });
  let credential: string | undefined;
  const client = createClientFactory()
    .use(async function* auth(call, options) {
      const metadata = Metadata(options.metadata);
      if (credential) metadata.set("authorization", `Bearer ${credential}`);
      return yield* call.next(call.request, { ...options, metadata });
    })
    .create(agentGatewayDefinition, channel);
  return {
    client,
    channel,
    setCredential(value) {
      credential = value;
    },
    close: () => channel.close(),
  };
}
