import { readFile } from "node:fs/promises";
import { type Logger, sleep } from "@dray/common";
import { type AgentGatewayDefinition, agentGatewayDefinition, MAX_GRPC_MESSAGE_BYTES } from "@dray/proto";
import { ChannelCredentials } from "@grpc/grpc-js";
import { type Channel, type Client, createChannel, createClientFactory, Metadata } from "nice-grpc";
import type { AgentConfig } from "./config.js";
import { createGatewayRotation, type GatewayAddress, type GatewayRotation } from "./gateway-addresses.js";

/** HTTP/2 receive window asked of the control plane (the default is 64 KiB). */
const FLOW_CONTROL_WINDOW_BYTES = 16 * 1024 * 1024;

/** A typed client of the agent gateway plus its channel. */
export interface GatewayConnection {
  /** The client of the gateway in use (another one after a failover). */
  readonly client: Client<AgentGatewayDefinition>;
  readonly channel: Channel;
  /** Sets the credential sent on every call from now on, to every gateway. */
  setCredential(credential: string | undefined): void;
  close(): void;
  /** Moving between gateways. Absent on a fixed connection (test doubles): the agent then only backs off. */
  readonly failover?: GatewayFailover;
}

/** How the agent moves to the next gateway when the one in use fails. */
export interface GatewayFailover {
  /** Number of the connection in use; it grows by one at every switch. */
  readonly generation: number;
  /** The gateway in use, `host:port` (never a secret). */
  readonly address: string;
  /** Aborted when the connection of the current generation is given up. */
  readonly signal: AbortSignal;
  /**
   * The connection `generation` failed: gives it up and dials the next gateway
   * (round-robin, after a backoff once every gateway has failed in a row).
   * Resolves when the next connection is in use. A caller with an older
   * generation waits for the switch already made or under way.
   */
  switchFrom(generation: number, reason: string, stop: AbortSignal): Promise<void>;
  /** A call on connection `generation` was answered. True the first time for that connection. */
  answered(generation: number): boolean;
}

interface OpenConnection {
  gateway: GatewayAddress;
  channel: Channel;
  client: Client<AgentGatewayDefinition>;
  controller: AbortController;
  answered: boolean;
}

/**
 * A failover that never switches, for a connection to one fixed gateway: a
 * failure only waits (the rotation's backoff) before the caller retries.
 */
export function fixedGatewayFailover(): GatewayFailover {
  const rotation = createGatewayRotation([""]);
  const signal = new AbortController().signal;
  return {
    generation: 0,
    address: "",
    signal,
    async switchFrom(_generation, _reason, stop) {
      await sleep(rotation.failed().delayMs, stop).catch(() => {});
    },
    answered() {
      rotation.answered();
      return false;
    },
  };
}

/**
 * Opens a channel to the first of `config.controlPlanes` with keepalive, size
 * limits and optional (m)TLS, and moves to the next gateway on
 * {@link GatewayFailover.switchFrom}. Each switch opens a fresh channel with
 * its own subchannels, so a gateway that failed before is dialled at once.
 */
export async function connectGateway(
  config: Pick<AgentConfig, "controlPlanes" | "tls">,
  logger?: Logger,
): Promise<GatewayConnection> {
  const anyTls = config.controlPlanes.some((g) => g.tls);
  const files = anyTls
    ? {
        ca: config.tls.caFile ? await readFile(config.tls.caFile) : null,
        key: config.tls.keyFile ? await readFile(config.tls.keyFile) : null,
        cert: config.tls.certFile ? await readFile(config.tls.certFile) : null,
      }
    : undefined;
  let credential: string | undefined;

  function open(gateway: GatewayAddress): OpenConnection {
    const credentials =
      gateway.tls && files
        ? ChannelCredentials.createSsl(files.ca, files.key, files.cert)
        : ChannelCredentials.createInsecure();
    const channel = createChannel(gateway.address, credentials, {
      "grpc.max_receive_message_length": MAX_GRPC_MESSAGE_BYTES,
      "grpc.max_send_message_length": MAX_GRPC_MESSAGE_BYTES,
      "grpc.keepalive_time_ms": 20_000,
      "grpc.keepalive_timeout_ms": 10_000,
      "grpc.keepalive_permit_without_calls": 1,
      "grpc.initial_reconnect_backoff_ms": 250,
      "grpc.max_reconnect_backoff_ms": 5_000,
      // Not shared with earlier channels to the same gateway: their reconnect backoff is not inherited.
      "grpc.use_local_subchannel_pool": 1,
      // Receive window (stream and connection): a whole write batch arrives without waiting for window updates.
      "grpc-node.flow_control_window": FLOW_CONTROL_WINDOW_BYTES,
    });
    const client = createClientFactory()
      .use(async function* auth(call, options) {
        const metadata = Metadata(options.metadata);
        if (credential) metadata.set("authorization", `Bearer ${credential}`);
        return yield* call.next(call.request, { ...options, metadata });
      })
      .create(agentGatewayDefinition, channel);
    return { gateway, channel, client, controller: new AbortController(), answered: false };
  }

  const rotation: GatewayRotation<GatewayAddress> = createGatewayRotation(config.controlPlanes);
  let current = open(rotation.current);
  let generation = 0;
  let switching: Promise<void> | undefined;
  let closed = false;

  function giveUp(connection: OpenConnection) {
    connection.controller.abort();
    connection.channel.close();
  }

  const failover: GatewayFailover = {
    get generation() {
      return generation;
    },
    get address() {
      return current.gateway.address;
    },
    get signal() {
      return current.controller.signal;
    },
    async switchFrom(failed, reason, stop) {
      if (failed === generation && !switching && !closed) {
        const from = current;
        const step = rotation.failed();
        logger?.warn("control plane gateway lost, trying the next", {
          from: from.gateway.address,
          to: step.address.address,
          inMs: step.delayMs,
          error: reason,
        });
        giveUp(from);
        switching = (async () => {
          await sleep(step.delayMs, stop).catch(() => {});
          if (closed) return;
          current = open(step.address);
          generation++;
        })().finally(() => {
          switching = undefined;
        });
      }
      await switching;
    },
    answered(at) {
      if (at !== generation || current.answered) return false;
      current.answered = true;
      rotation.answered();
      logger?.info("connected to the control plane gateway", {
        gateway: current.gateway.address,
        tls: current.gateway.tls,
      });
      return true;
    },
  };

  return {
    get client() {
      return current.client;
    },
    get channel() {
      return current.channel;
    },
    setCredential(value) {
      credential = value;
    },
    close() {
      closed = true;
      giveUp(current);
    },
    failover,
  };
}
