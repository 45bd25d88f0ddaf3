import { DrayError, grpcStatusOf, isDrayError, type Logger } from "@dray/common";
import { type AgentGatewayDefinition, type AgentInfo, Platform } from "@dray/proto";
import { type CallContext, ServerError, type ServiceImplementation, Status } from "nice-grpc";
import type { HealthMonitor } from "../health/health-monitor.js";
import { parseAgentCredential } from "./agent-credentials.js";
import type { AgentDirectory, AuthenticatedAgent } from "./agent-directory.js";
import type { AgentSessions } from "./agent-sessions.js";

/** Dependencies of {@link createGatewayService}. */
export interface GatewayServiceDeps {
  directory: AgentDirectory;
  sessions: AgentSessions;
  health: HealthMonitor;
  logger: Logger;
  heartbeatIntervalMs: number;
}

function platformName(platform: Platform): "postgres" | "mysql" {
  if (platform === Platform.POSTGRES) return "postgres";
  if (platform === Platform.MYSQL) return "mysql";
  throw new DrayError("invalid_argument", "the agent did not say which database platform it serves");
}

/** Converts anything thrown into a gRPC ServerError carrying the DrayError's code. */
function toServerError(error: unknown, logger: Logger): ServerError {
  if (error instanceof ServerError) return error;
  const e = DrayError.from(error);
  if (!isDrayError(error)) logger.error("gateway call failed", { error: e.message });
  return new ServerError(grpcStatusOf(e.code) as Status, e.message);
}

/**
 * The control plane's side of `dray.agent.v1`. Every call except Enroll is
 * authenticated by the agent's credential; errors become gRPC statuses.
 */
export function createGatewayService(
  deps: GatewayServiceDeps,
): ServiceImplementation<AgentGatewayDefinition> {
  const { directory, sessions, health, logger, heartbeatIntervalMs } = deps;

  async function authenticate(context: CallContext): Promise<AuthenticatedAgent> {
    const parsed = parseAgentCredential(context.metadata.get("authorization"));
    if (!parsed) {
      throw new ServerError(
        Status.UNAUTHENTICATED,
        "missing or malformed agent credential (authorization: Bearer <credential>)",
      );
    }
    return directory.authenticate(parsed.agentId, parsed.secret);
  }

  const wrap =
    <Req, Res>(fn: (request: Req, context: CallContext) => Promise<Res>) =>
    async (request: Req, context: CallContext): Promise<Res> => {
      try {
        return await fn(request, context);
      } catch (error) {
        throw toServerError(error, logger);
      }
    };

  return {
    enroll: wrap(async (request) => {
      if (!request.enrollmentToken) {
        throw new DrayError("unauthenticated", "an enrollment token is required (DRAY_ENROLLMENT_TOKEN)");
      }
      const info: AgentInfo | undefined = request.agent;
      const agent = await directory.enroll(request.enrollmentToken, {
        name: info?.name || info?.hostname || "agent",
        hostname: info?.hostname ?? "",
        version: info?.version || "unknown",
        platform: platformName(info?.platform ?? Platform.UNSPECIFIED),
      });
      logger.info("agent enrolled", { agentId: agent.agentId, environmentId: agent.environmentId });
      return {
        agentId: agent.agentId,
        environmentId: agent.environmentId,
        credential: agent.credential,
        heartbeatIntervalMs,
      };
    }),

    heartbeat: wrap(async (request, context) => {
      const agent = await authenticate(context);
      await directory.touch(agent.agentId, {
        version: request.agent?.version ?? "",
        name: request.agent?.name ?? "",
        draining: request.draining,
      });
      await health.recordHeartbeat({
        environmentId: agent.environmentId,
        agentVersion: request.agent?.version || "unknown",
        databaseReachable: request.databaseReachable,
        databaseError: request.databaseError,
        databaseLatencyMs: request.databaseLatencyMs,
        schemaFingerprint: request.schemaFingerprint,
        tasksInFlight: request.tasksInFlight,
        draining: request.draining,
      });
      return { heartbeatIntervalMs };
    }),

    async *openWorkStream(request, context) {
      let agent: AuthenticatedAgent;
      try {
        agent = await authenticate(context);
      } catch (error) {
        throw toServerError(error, logger);
      }
      const session = sessions.open({
        ...agent,
        maxConcurrentTasks: Math.max(1, request.maxConcurrentTasks || 4),
      });
      const onAbort = () => sessions.close(session, "work stream closed");
      context.signal.addEventListener("abort", onAbort, { once: true });
      try {
        for await (const message of session.stream) yield message;
      } finally {
        context.signal.removeEventListener("abort", onAbort);
        sessions.close(session, "work stream ended");
      }
    },

    completeTask: wrap(async (request, context) => {
      const agent = await authenticate(context);
      const outcome = request.outcome;
      const accepted = sessions.complete(agent.agentId, request.taskId, {
        ...(outcome.case === "result" ? { result: outcome.value } : {}),
        ...(outcome.case === "error" ? { error: outcome.value } : {}),
      });
      return { accepted };
    }),

    drain: wrap(async (request, context) => {
      const agent = await authenticate(context);
      sessions.markDraining(agent.agentId);
      await directory.touch(agent.agentId, { version: "", name: "", draining: true });
      await health.recordDrain(agent.environmentId);
      logger.info("agent draining", { agentId: agent.agentId, reason: request.reason });
      return {};
    }),
  };
}
