/**
 * @module @dray/proto
 * Generated messages of `dray.agent.v1` and the typed gRPC definition built from them.
 */
import { AgentGatewayService } from "./gen/dray/agent/v1/agent_pb.js";
import { niceDefinition } from "./nice-definition.js";

export * from "./gen/dray/agent/v1/agent_pb.js";
export { type NiceServiceDefinition, niceDefinition } from "./nice-definition.js";

/** nice-grpc definition of the agent gateway, shared by the control plane (server) and agent (client). */
export const agentGatewayDefinition = niceDefinition(AgentGatewayService);
export type AgentGatewayDefinition = typeof agentGatewayDefinition;

/** Largest gRPC message either side accepts, in bytes. Read results stay below the task's byte budget. */
export const MAX_GRPC_MESSAGE_BYTES = 64 * 1024 * 1024;
export {
  TASK_ERROR_REASONS,
  type TaskErrorReasonName,
  taskErrorReasonFromWire,
  taskErrorReasonToWire,
} from "./task-error-reasons.js";
