/**
 * /api/v1 executions: start and cancel runs, read one with its errors and
 * batches, a pipeline's run history, and the live event stream (SSE).
 */
import { DrayError } from "@dray/common";
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { streamSSE } from "hono/streaming";
import { authenticateToken, bearerTokenOf, unauthenticated } from "../auth/authenticate.js";
import { requireOrganisationRole } from "../auth/roles.js";
import { cancelExecution } from "../executions/cancel-execution.js";
import { followExecutionEvents } from "../executions/event-stream.js";
import {
  listExecutionBatches,
  listExecutionErrors,
  listPipelineExecutions,
} from "../executions/execution-lists.js";
import { actorOf, requireExecution } from "../executions/execution-records.js";
import { executionView } from "../executions/execution-view.js";
import { parseCreatedRange, parseStatusFilter } from "../executions/history-filter.js";
import { startExecution } from "../executions/start-execution.js";
import type { ApiEnv, RouteDeps } from "./api-env.js";
import * as s from "./execution-schemas.js";
import { createRouter } from "./router.js";
import { bearerSecurity, errorResponses, IdParams, jsonResponse } from "./schemas.js";

const tags = ["executions"];
const optionalBody = <T extends typeof s.StartExecution | typeof s.CancelExecution>(schema: T) => ({
  required: false,
  content: { "application/json": { schema } },
});

const startRoute = createRoute({
  method: "post",
  path: "/pipelines/{id}/executions",
  operationId: "startExecution",
  summary: "Start a run of the pipeline (operator); 409 while one is queued or in progress",
  tags,
  security: bearerSecurity,
  request: { params: IdParams, body: optionalBody(s.StartExecution) },
  responses: {
    202: jsonResponse(s.StartedExecution, "Queued; follow it with GET /executions/{id} or its events"),
    ...errorResponses(400, 401, 403, 404, 409),
  },
});

const cancelRoute = createRoute({
  method: "post",
  path: "/executions/{id}/cancel",
  operationId: "cancelExecution",
  summary: "Cancel an execution (operator); a running one stops at once, committed records stay",
  tags,
  security: bearerSecurity,
  request: { params: IdParams, body: optionalBody(s.CancelExecution) },
  responses: {
    202: jsonResponse(s.Execution, "Cancelled, or `cancelRequested` while the executor stops it"),
    ...errorResponses(400, 401, 403, 404, 409),
  },
});

const getRoute = createRoute({
  method: "get",
  path: "/executions/{id}",
  operationId: "getExecution",
  summary: "Read an execution: status, per-entity progress, totals, duration, throughput",
  tags,
  security: bearerSecurity,
  request: { params: IdParams },
  responses: { 200: jsonResponse(s.Execution, "The execution"), ...errorResponses(401, 403, 404) },
});

const errorsRoute = createRoute({
  method: "get",
  path: "/executions/{id}/errors",
  operationId: "listExecutionErrors",
  summary: "An execution's errors and warnings, oldest first",
  tags,
  security: bearerSecurity,
  request: { params: IdParams, query: s.ErrorsQuery },
  responses: {
    200: jsonResponse(s.ExecutionErrors, "A page of errors"),
    ...errorResponses(400, 401, 403, 404),
  },
});

const batchesRoute = createRoute({
  method: "get",
  path: "/executions/{id}/batches",
  operationId: "listExecutionBatches",
  summary: "An execution's batches by entity, pass and sequence",
  tags,
  security: bearerSecurity,
  request: { params: IdParams, query: s.BatchesQuery },
  responses: {
    200: jsonResponse(s.ExecutionBatches, "A page of batches"),
    ...errorResponses(400, 401, 403, 404),
  },
});

const historyRoute = createRoute({
  method: "get",
  path: "/pipelines/{id}/executions",
  operationId: "listPipelineExecutions",
  summary: "A pipeline's run history, newest first, by status and createdAt range",
  tags,
  security: bearerSecurity,
  request: { params: IdParams, query: s.HistoryQuery },
  responses: {
    200: jsonResponse(s.ExecutionHistory, "A page of runs"),
    ...errorResponses(400, 401, 403, 404),
  },
});

const eventsRoute = createRoute({
  method: "get",
  path: "/executions/{id}/events",
  operationId: "streamExecutionEvents",
  summary: "Server-sent events of an execution: replay after Last-Event-ID, then live until it ends",
  description:
    "Each message has `id` = seq, `event` = the payload's `type` and `data` = the JSON payload. A comment " +
    "ping is sent every 15 s. The token may be given as `?token=` for browsers' EventSource.",
  tags,
  security: bearerSecurity,
  request: { params: IdParams, query: s.EventsQuery },
  responses: {
    200: {
      description: "The event stream",
      content: { "text/event-stream": { schema: { type: "string" } } },
    },
    ...errorResponses(400, 401, 403, 404),
  },
});

/** Routes of executions (mount under /api/v1 behind the auth middleware). */
export function executionsRoutes(deps: RouteDeps): OpenAPIHono<ApiEnv> {
  const app = createRouter();

  app.openapi(startRoute, async (c) => {
    const principal = c.get("principal");
    const organisationId = requireOrganisationRole(principal, "operator");
    const started = await startExecution(
      deps,
      organisationId,
      c.req.valid("param").id,
      { confirm: c.req.valid("json").confirm, actor: await actorOf(deps.db, principal) },
      deps.now(),
    );
    deps.onExecutionQueued?.(started.id);
    return c.json(started, 202);
  });

  app.openapi(cancelRoute, async (c) => {
    const principal = c.get("principal");
    const organisationId = requireOrganisationRole(principal, "operator");
    const { id } = c.req.valid("param");
    const actor = await actorOf(deps.db, principal);
    await cancelExecution(
      deps,
      organisationId,
      id,
      { reason: c.req.valid("json").reason, actor },
      deps.now(),
    );
    return c.json(await executionView(deps.db, organisationId, id, deps.now()), 202);
  });

  app.openapi(getRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "viewer");
    return c.json(await executionView(deps.db, organisationId, c.req.valid("param").id, deps.now()), 200);
  });

  app.openapi(errorsRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "viewer");
    const { page, pageSize, ...filter } = c.req.valid("query");
    const id = c.req.valid("param").id;
    return c.json(await listExecutionErrors(deps.db, organisationId, id, filter, { page, pageSize }), 200);
  });

  app.openapi(batchesRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "viewer");
    const { page, pageSize, entity } = c.req.valid("query");
    const id = c.req.valid("param").id;
    return c.json(
      await listExecutionBatches(deps.db, organisationId, id, { entity }, { page, pageSize }),
      200,
    );
  });

  app.openapi(historyRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "viewer");
    const query = c.req.valid("query");
    const filter = {
      statuses: parseStatusFilter(query.status),
      range: parseCreatedRange(query.from, query.to),
    };
    const paging = { page: query.page, pageSize: query.pageSize };
    const id = c.req.valid("param").id;
    return c.json(await listPipelineExecutions(deps.db, organisationId, id, filter, paging, deps.now()), 200);
  });

  return app;
}

/** `Last-Event-ID` (or `?lastEventId=`) as a seq; absent means replay everything. */
export function parseLastEventId(value: string | undefined): number {
  if (value === undefined || value.trim() === "") return 0;
  if (!/^\d{1,15}$/.test(value.trim())) {
    throw new DrayError("invalid_argument", `Last-Event-ID "${value}" is not an event seq (a whole number)`);
  }
  return Number(value.trim());
}

/** Authenticates by `Authorization: Bearer` or, for EventSource, by `?token=`. */
function bearerOrQueryToken(deps: RouteDeps): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const token = bearerTokenOf(c.req.header("authorization")) ?? c.req.query("token");
    if (!token) throw unauthenticated("missing");
    const principal = await authenticateToken(deps.db, token, deps.now());
    if (!principal) throw unauthenticated("invalid");
    c.set("principal", principal);
    await next();
  };
}

/**
 * The SSE route. It authenticates itself (header or `?token=`), so mount it
 * under /api/v1 BEFORE the app-wide bearer middleware, which it then never reaches.
 */
export function executionEventsRoutes(deps: RouteDeps): OpenAPIHono<ApiEnv> {
  const app = createRouter();
  app.use("/executions/:id/events", bearerOrQueryToken(deps));
  app.openapi(eventsRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "viewer");
    const { id } = c.req.valid("param");
    await requireExecution(deps.db, organisationId, id);
    const afterSeq = parseLastEventId(c.req.header("last-event-id") ?? c.req.valid("query").lastEventId);
    return streamSSE(c, async (stream) => {
      const abort = new AbortController();
      stream.onAbort(() => abort.abort());
      const events = followExecutionEvents({
        ...{ db: deps.db, bus: deps.bus, organisationId, executionId: id, afterSeq, signal: abort.signal },
      });
      try {
        for await (const item of events) {
          if (item.kind === "ping") await stream.write(": ping\n\n");
          else
            await stream.writeSSE({
              id: String(item.seq),
              event: item.type,
              data: JSON.stringify(item.payload),
            });
        }
      } catch (error) {
        deps.logger.warn("execution event stream failed", { executionId: id, error: String(error) });
        await stream.writeSSE({
          event: "error",
          data: JSON.stringify({ message: "stream failed: reconnect to resume" }),
        });
      } finally {
        abort.abort();
      }
    });
  });
  return app;
}
