import { DrayError, grpcStatusOf, HIDDEN_ERROR_CODES, isDrayError, type Logger } from "@dray/common";
import { type AgentGatewayDefinition, type AgentInfo, Platform } from "@dray/proto";
import { type CallContext, ServerError, type ServiceImplementation, Status } from "nice-grpc";
import { type FailedAuthLimiter, peerAddress, sharedFailedAuthLimiter } from "../auth/failed-auth-limiter.js";
import { credentialFingerprint } from "../auth/tokens.js";
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
  /** Failed credential and enrollment checks per peer address. @default the process's shared limiter (also the HTTP API's) */
  failedAuthLimiter?: FailedAuthLimiter;
}

/** Longest enrollment token looked at (they are 52 characters). */
const MAX_ENROLLMENT_TOKEN_LENGTH = 256;

function platformName(platform: Platform): "postgres" | "mysql" {
  if (platform === Platform.POSTGRES) return "postgres";
  if (platform === Platform.MYSQL) return "mysql";
  throw new DrayError("invalid_argument", "the agent did not say which database platform it serves");
}

/**
 * Converts anything thrown into a gRPC ServerError carrying the DrayError's
 * code. Anything that is not a DrayError, and internal codes, are logged and
 * answered with a generic message: driver or SQL text never reaches the caller.
 */
export function toServerError(error: unknown, logger: Logger): ServerError {
  if (error instanceof ServerError) return error;
  const e = DrayError.from(error);
  if (!isDrayError(error) || HIDDEN_ERROR_CODES.has(e.code)) {
    logger.error("gateway call failed", { code: e.code, error: e.message });
    return new ServerError(
      grpcStatusOf(e.code) as Status,
      "internal error in the control plane; the details are in its log",
    );
  }
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
  const limiter = deps.failedAuthLimiter ?? sharedFailedAuthLimiter();

  /**
   * Refuses a peer with too many failed checks (RESOURCE_EXHAUSTED) before any
   * lookup, unless `fingerprint` already succeeded from it.
   */
  function checkNotLimited(address: string | undefined, fingerprint?: string): void {
    const retryAfter =
      address === undefined ? 0 : limiter.retryAfterSeconds(address, Date.now(), fingerprint);
    if (retryAfter > 0) {
      throw new ServerError(
        Status.RESOURCE_EXHAUSTED,
        `too many failed authentications from this address: retry in ${retryAfter} s`,
      );
    }
  }

  /** Counts a failed check of the peer and logs it once, at debug level, without the credential. */
  function failed(address: string | undefined, reason: string, method: string): void {
    if (address !== undefined) limiter.recordFailure(address, Date.now());
    logger.debug("agent authentication refused", { peer: address ?? "unknown", method, reason });
  }

  async function authenticate(context: CallContext, method: string): Promise<AuthenticatedAgent> {
    const address = peerAddress(context.peer);
    const parsed = parseAgentCredential(context.metadata.get("authorization"));
    const fingerprint = parsed ? credentialFingerprint(parsed.secret) : undefined;
    checkNotLimited(address, fingerprint);
    if (!parsed) {
      failed(address, "missing or malformed credential", method);
      throw new ServerError(
        Status.UNAUTHENTICATED,
        "missing or malformed agent credential (authorization: Bearer <agent id>.<secret>)",
      );
    }
    try {
      const agent = await directory.authenticate(parsed.agentId, parsed.secret);
      if (address !== undefined && fingerprint !== undefined) limiter.recordSuccess(address, fingerprint);
      return agent;
    } catch (error) {
      if (isDrayError(error) && error.code === "unauthenticated")
        failed(address, "unknown or revoked credential", method);
      throw error;
    }
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
    enroll: wrap(async (request, context) => {
      const address = peerAddress(context.peer);
      checkNotLimited(address);
      if (!request.enrollmentToken || request.enrollmentToken.length > MAX_ENROLLMENT_TOKEN_LENGTH) {
        failed(address, "missing or malformed enrollment token", "enroll");
        throw new DrayError("unauthenticated", "an enrollment token is required (DRAY_ENROLLMENT_TOKEN)");
      }
      const info: AgentInfo | undefined = request.agent;
      let agent: Awaited<ReturnType<AgentDirectory["enroll"]>>;
      try {
        agent = await directory.enroll(request.enrollmentToken, {
          name: info?.name || info?.hostname || "agent",
          hostname: info?.hostname ?? "",
          version: info?.version || "unknown",
          platform: platformName(info?.platform ?? Platform.UNSPECIFIED),
        });
      } catch (error) {
        if (isDrayError(error) && error.code === "unauthenticated")
          failed(address, "invalid enrollment token", "enroll");
        throw error;
      }
      logger.info("agent enrolled", { agentId: agent.agentId, environmentId: agent.environmentId });
      return {
        agentId: agent.agentId,
        environmentId: agent.environmentId,
        credential: agent.credential,
        heartbeatIntervalMs,
      };
    }),

    heartbeat: wrap(async (request, context) => {
      const agent = await authenticate(context, "heartbeat");
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
        agent = await authenticate(context, "openWorkStream");
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
      const agent = await authenticate(context, "completeTask");
      const outcome = request.outcome;
      const accepted = sessions.complete(agent.agentId, request.taskId, {
        ...(outcome.case === "result" ? { result: outcome.value } : {}),
        ...(outcome.case === "error" ? { error: outcome.value } : {}),
      });
      return { accepted };
    }),

    drain: wrap(async (request, context) => {
      const agent = await authenticate(context, "drain");
      sessions.markDraining(agent.agentId);
      await directory.touch(agent.agentId, { version: "", name: "", draining: true });
      await health.recordDrain(agent.environmentId);
      logger.info("agent draining", { agentId: agent.agentId, reason: request.reason });
      return {};
    }),
  };
}
