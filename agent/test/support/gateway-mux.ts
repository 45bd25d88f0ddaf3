/**
 * A gRPC stand-in for a faulty load balancer in front of several control-plane
 * replicas, for end-to-end tests of the session-epoch fence (issue 13). The
 * agent dials the mux as its only gateway; the mux forwards the agent's calls
 * to real replicas with the agent's own credential:
 *
 * - the agent's work stream is first opened on upstream 0; {@link GatewayMux.addUpstream}
 *   opens it on another replica too, while the first stays open, and both
 *   replicas' messages reach the agent on its one stream. Each replica then
 *   holds a session of the agent and believes it holds the agent: the second
 *   one is newer (its epoch is the store's next);
 * - CompleteTask goes to the replica that sent the task; heartbeats and drains
 *   to the newest upstream.
 *
 * Every message forwarded to the agent is recorded with the upstream it came from.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  type AgentGatewayDefinition,
  agentGatewayDefinition,
  MAX_GRPC_MESSAGE_BYTES,
  type OpenWorkStreamRequest,
  type OpenWorkStreamResponse,
  type OpenWorkStreamResponseSchema,
} from "@dray/proto";
import {
  type CallContext,
  type Client,
  createChannel,
  createClient,
  createServer,
  Metadata,
  type ServiceImplementation,
} from "nice-grpc";

/** One message the mux passed to the agent. */
export interface MuxedMessage {
  upstream: number;
  kind: string;
  taskId: string;
  sessionEpoch: bigint;
}

/** See the module comment. */
export interface GatewayMux {
  /** `host:port` for the agent's DRAY_CONTROL_PLANE_URL. */
  readonly address: string;
  /** Every message forwarded to the agent, in order. */
  readonly messages: readonly MuxedMessage[];
  /** Upstreams whose work stream has ended (the replica closed its session). */
  readonly ended: ReadonlySet<number>;
  /** Opens the agent's work stream on upstream `index` as well, once the agent's stream is open. */
  addUpstream(index: number): void;
  close(): Promise<void>;
}

type Outgoing = MessageInitShape<typeof OpenWorkStreamResponseSchema>;

/** Starts a mux on a free loopback port in front of `upstreams` (`host:port` each). */
export async function startGatewayMux(upstreams: readonly string[]): Promise<GatewayMux> {
  const options = {
    "grpc.max_receive_message_length": MAX_GRPC_MESSAGE_BYTES,
    "grpc.max_send_message_length": MAX_GRPC_MESSAGE_BYTES,
  };
  const clients: Client<AgentGatewayDefinition>[] = upstreams.map((address) =>
    createClient(agentGatewayDefinition, createChannel(address, undefined, options)),
  );
  const messages: MuxedMessage[] = [];
  const ended = new Set<number>();
  const taskUpstream = new Map<string, number>();
  const active: number[] = [];
  /** The agent's open stream, once it is open. */
  let stream:
    | {
        request: OpenWorkStreamRequest;
        authorization: string;
        push: (message: Outgoing) => void;
        /** Upstreams whose stream is open for it. */
        open: number;
        wake: () => void;
        signal: AbortSignal;
      }
    | undefined;

  const metadataOf = (context: CallContext) =>
    Metadata({ authorization: context.metadata.get("authorization") ?? "" });
  const newest = () => clients[active.at(-1) ?? 0]!;

  function pump(index: number) {
    const s = stream;
    if (!s) throw new Error("the agent has no work stream open through the mux");
    s.open++;
    active.push(index);
    void (async () => {
      try {
        for await (const message of clients[index]!.openWorkStream(s.request, {
          metadata: Metadata({ authorization: s.authorization }),
          signal: s.signal,
        })) {
          record(index, message);
          s.push(message as Outgoing);
        }
      } catch {
        // The replica ended the stream with an error, or the agent's stream closed: same as an end.
      }
      ended.add(index);
      active.splice(active.indexOf(index), 1);
      s.open--;
      s.wake();
    })();
  }

  function record(upstream: number, message: OpenWorkStreamResponse) {
    const kind = message.kind;
    const taskId = kind.case === "task" || kind.case === "cancel" ? kind.value.taskId : "";
    if (kind.case === "task") taskUpstream.set(taskId, upstream);
    messages.push({
      upstream,
      kind: kind.case ?? "",
      taskId,
      sessionEpoch: kind.case === undefined ? 0n : kind.value.sessionEpoch,
    });
  }

  const service: ServiceImplementation<AgentGatewayDefinition> = {
    enroll: (request, context) => clients[0]!.enroll(request, { signal: context.signal }),
    heartbeat: (request, context) =>
      newest().heartbeat(request, { metadata: metadataOf(context), signal: context.signal }),
    completeTask: (request, context) =>
      clients[taskUpstream.get(request.taskId) ?? 0]!.completeTask(request, {
        metadata: metadataOf(context),
        signal: context.signal,
      }),
    drain: (request, context) =>
      newest().drain(request, { metadata: metadataOf(context), signal: context.signal }),
    async *openWorkStream(request, context) {
      const queue: Outgoing[] = [];
      let wake = () => {};
      const own = {
        request,
        authorization: context.metadata.get("authorization") ?? "",
        signal: context.signal,
        open: 0,
        wake: () => wake(),
        push(message: Outgoing) {
          queue.push(message);
          wake();
        },
      };
      stream = own;
      pump(0);
      try {
        while (!context.signal.aborted) {
          const next = queue.shift();
          if (next) {
            yield next;
            continue;
          }
          // Every replica ended its stream: so does the agent's.
          if (own.open === 0) return;
          await new Promise<void>((resolve) => {
            wake = resolve;
            context.signal.addEventListener("abort", () => resolve(), { once: true });
          });
        }
      } finally {
        if (stream === own) stream = undefined;
      }
    },
  };

  const server = createServer({ "grpc.max_receive_message_length": MAX_GRPC_MESSAGE_BYTES });
  server.add(agentGatewayDefinition, service);
  const port = await server.listen("127.0.0.1:0");
  return {
    address: `127.0.0.1:${port}`,
    messages,
    ended,
    addUpstream(index) {
      pump(index);
    },
    async close() {
      await server.shutdown().catch(() => {});
    },
  };
}
