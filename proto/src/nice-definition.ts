import {
  create,
  type DescMessage,
  type DescService,
  fromBinary,
  isMessage,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import type { MethodDefinition } from "nice-grpc";

type IsStreaming<K, Kinds> = K extends Kinds ? true : false;

type NiceMethod<M> = M extends {
  methodKind: infer K;
  input: infer I extends DescMessage;
  output: infer O extends DescMessage;
}
  ? MethodDefinition<
      MessageInitShape<I>,
      MessageShape<I>,
      MessageInitShape<O>,
      MessageShape<O>,
      IsStreaming<K, "client_streaming" | "bidi_streaming">,
      IsStreaming<K, "server_streaming" | "bidi_streaming">
    >
  : never;

/** A nice-grpc service definition whose message types come from protobuf-es. */
export type NiceServiceDefinition<T extends GenServiceMethods> = { [K in keyof T]: NiceMethod<T[K]> };

function serializer(schema: DescMessage) {
  return (value: unknown): Uint8Array =>
    toBinary(
      schema,
      isMessage(value, schema) ? value : create(schema, value as MessageInitShape<DescMessage>),
    );
}

function deserializer(schema: DescMessage) {
  return (bytes: Uint8Array) => fromBinary(schema, bytes);
}

/**
 * Turns a protobuf-es service descriptor into a nice-grpc service definition,
 * so servers and clients are typed by the generated messages.
 *
 * @example
 * const server = createServer();
 * server.add(niceDefinition(AgentGatewayService), implementation);
 */
export function niceDefinition<T extends GenServiceMethods>(
  service: GenService<T>,
): NiceServiceDefinition<T> {
  const definition: Record<string, MethodDefinition<unknown, unknown, unknown, unknown>> = {};
  for (const method of (service as DescService).methods) {
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: serializer(method.input),
      requestDeserialize: deserializer(method.input),
      responseSerialize: serializer(method.output),
      responseDeserialize: deserializer(method.output),
      options: {},
    };
  }
  return definition as NiceServiceDefinition<T>;
}
