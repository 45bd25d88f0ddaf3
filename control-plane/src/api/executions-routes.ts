/**
 * /api/v1 executions: start and cancel runs, read one with its errors and
 * batches, a pipeline's run history, and the live event stream (SSE).
 */
import { DrayError } from "@dray/common";
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import { streamSSE } from "hono/streaming";
import { authenticateRequest } from "../auth/auth-middleware.js";
import { bearerTokenOf } from "../auth/authenticate.js";
import { requireOrganisationRole } from "../auth/roles.js";
import { cancelExecution } from "../executions/cancel-execution.js";
import { requestReconcile, startContinuous, stopContinuous } from "../executions/continuous-control.js";
import { followExecutionEvents } from "../executions/event-stream.js";
import { ExecutionEventHub, type ExecutionEventHubOptions } from "../executions/execution-event-hub.js";
import {
  listExecutionBatches,
  listExecutionErrors,
  listPipelineExecutions,
} from "../executions/execution-lists.js";
import { actorOf, requireExecution } from "../executions/execution-records.js";
import { executionView } from "../executions/execution-view.js";
import { parseCreatedRange, parseStatusFilter } from "../executions/history-filter.js";
import { startExecution } from "../executions/start-execution.js";
import { type StreamSlotLimits, StreamSlots } from "../executions/stream-slots.js";
import { SESSION_COOKIE, sessionOf } from "../web/web-sessions.js";
import type { ApiEnv, RouteDeps } from "./api-env.js";
import * as s from "./execution-schemas.js";
import { nextField, pageQuery } from "./pagination.js";
import { createRouter } from "./router.js";
import { bearerSecurity, errorResponses, IdParams, jsonResponse } from "./schemas.js";
import { tooManyRequestsResponse, withRetryAfter } from "./too-many-requests.js";

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
  description:
    "Pages of `pageSize` by `page`, or by cursor: pass the answer's `next` as `cursor` (with the same filters) " +
    "for the page after it; `next` is null on the last page.",
  tags,
  security: bearerSecurity,
  request: { params: IdParams, query: s.ErrorsQuery.extend({ cursor: pageQuery.cursor }) },
  responses: {
    200: jsonResponse(s.ExecutionErrors.extend(nextField).openapi("ExecutionErrorsPage"), "A page of errors"),
    ...errorResponses(400, 401, 403, 404),
  },
});

const batchesRoute = createRoute({
  method: "get",
  path: "/executions/{id}/batches",
  operationId: "listExecutionBatches",
  summary: "An execution's batches by entity, pass and sequence",
  description:
    "Pages of `pageSize` by `page`, or by cursor: pass the answer's `next` as `cursor` (with the same filter) " +
    "for the page after it; `next` is null on the last page.",
  tags,
  security: bearerSecurity,
  request: { params: IdParams, query: s.BatchesQuery.extend({ cursor: pageQuery.cursor }) },
  responses: {
    200: jsonResponse(
      s.ExecutionBatches.extend(nextField).openapi("ExecutionBatchesPage"),
      "A page of batches",
    ),
    ...errorResponses(400, 401, 403, 404),
  },
});

const historyRoute = createRoute({
  method: "get",
  path: "/pipelines/{id}/executions",
  operationId: "listPipelineExecutions",
  summary: "A pipeline's run history, newest first, by status and createdAt range",
  description:
    "Pages of `pageSize` runs (default 20, at most 100) by `page`, or by cursor: pass the answer's `next` as " +
    "`cursor` (with the same filters) for the page after it; `next` is null on the last page.",
  tags,
  security: bearerSecurity,
  request: { params: IdParams, query: s.HistoryQuery.extend({ cursor: pageQuery.cursor }) },
  responses: {
    200: jsonResponse(s.ExecutionHistory.extend(nextField).openapi("ExecutionHistoryPage"), "A page of runs"),
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
    "ping is sent every 15 s. The token may be given as `?token=` for browsers' EventSource. A token may hold " +
    "20 streams at once and an organisation 100 (per control-plane replica); past that the answer is 429 " +
    "`resource_exhausted` with `Retry-After`.",
  tags,
  security: bearerSecurity,
  request: { params: IdParams, query: s.EventsQuery },
  responses: {
    200: {
      description: "The event stream",
      content: { "text/event-stream": { schema: { type: "string" } } },
    },
    ...errorResponses(400, 401, 403, 404),
    ...tooManyRequestsResponse,
  },
});

const startContinuousRoute = createRoute({
  method: "post",
  path: "/pipelines/{id}/start",
  operationId: "startPipeline",
  summary: "Start a continuous pipeline (seed 03's START PIPELINE)",
  description:
    "Queues the pipeline's long-lived execution: it copies new and changed rows batch after batch, polling every " +
    "batchIntervalMs when idle, until stopped. A restart continues from the positions the last one reached. " +
    "409 `failed_precondition` for a once pipeline or while it already runs.",
  tags,
  security: bearerSecurity,
  request: { params: IdParams },
  responses: {
    202: jsonResponse(s.StartedExecution, "Queued; follow it with GET /executions/{id} or its events"),
    ...errorResponses(401, 403, 404, 409),
  },
});

const stopContinuousRoute = createRoute({
  method: "post",
  path: "/pipelines/{id}/stop",
  operationId: "stopPipeline",
  summary: "Stop a continuous pipeline at its next batch boundary (seed 03's STOP PIPELINE)",
  description:
    "The batches in flight commit first; then the execution ends `completed`. Answers at once with the " +
    "execution (continuous.stopRequested true); follow its status to see it end. 409 when it does not run.",
  tags,
  security: bearerSecurity,
  request: { params: IdParams },
  responses: {
    202: jsonResponse(s.Execution, "Stop requested (or done, for a start still queued)"),
    ...errorResponses(401, 403, 404, 409),
  },
});

const reconcileRoute = createRoute({
  method: "post",
  path: "/pipelines/{id}/reconcile",
  operationId: "reconcilePipeline",
  summary: "Remove target rows deleted at the source (continuous pipelines)",
  description:
    "At its next poll, the running continuous execution compares the keys of each entity range by range and " +
    "deletes the target rows whose key the source no longer has (target rows that never came from the source " +
    "are deleted too). 409 when it does not run.",
  tags,
  security: bearerSecurity,
  request: { params: IdParams },
  responses: {
    202: jsonResponse(s.Execution, "Reconcile requested"),
    ...errorResponses(401, 403, 404, 409),
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

  app.openapi(startContinuousRoute, async (c) => {
    const principal = c.get("principal");
    const organisationId = requireOrganisationRole(principal, "operator");
    const actor = await actorOf(deps.db, principal);
    const started = await startContinuous(deps, organisationId, c.req.valid("param").id, actor, deps.now());
    deps.onExecutionQueued?.(started.id);
    return c.json(started, 202);
  });

  app.openapi(stopContinuousRoute, async (c) => {
    const principal = c.get("principal");
    const organisationId = requireOrganisationRole(principal, "operator");
    const actor = await actorOf(deps.db, principal);
    const row = await stopContinuous(deps, organisationId, c.req.valid("param").id, actor, deps.now());
    return c.json(await executionView(deps.db, organisationId, row.id, deps.now()), 202);
  });

  app.openapi(reconcileRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "operator");
    const row = await requestReconcile(deps, organisationId, c.req.valid("param").id, deps.now());
    return c.json(await executionView(deps.db, organisationId, row.id, deps.now()), 202);
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
    const { page, pageSize, cursor, ...filter } = c.req.valid("query");
    const id = c.req.valid("param").id;
    return c.json(
      await listExecutionErrors(deps.db, organisationId, id, filter, { page, pageSize, cursor }),
      200,
    );
  });

  app.openapi(batchesRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "viewer");
    const { page, pageSize, entity, cursor } = c.req.valid("query");
    const id = c.req.valid("param").id;
    return c.json(
      await listExecutionBatches(deps.db, organisationId, id, { entity }, { page, pageSize, cursor }),
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
    const paging = { page: query.page, pageSize: query.pageSize, cursor: query.cursor };
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
    // The web UI's monitor (EventSource, same origin) authenticates with its session cookie.
    const session = token ? undefined : await sessionOf(deps.db, getCookie(c, SESSION_COOKIE), deps.now());
    const principal =
      session?.principal ?? (await authenticateRequest(c, token, { db: deps.db, now: deps.now() }));
    c.set("principal", principal);
    await next();
  };
}

/** Options of {@link executionEventsRoutes}, for tests; production uses the defaults. */
export interface ExecutionEventsRouteOptions {
  /** Caps on concurrent streams. @default 20 per token, 100 per organisation */
  limits?: StreamSlotLimits;
  /** Poll interval, final grace and a store-read hook of the shared feeds. */
  feed?: Omit<ExecutionEventHubOptions, "db" | "bus">;
  /** Keep-alive ping interval. @default 15000 */
  pingMs?: number;
}

/**
 * The SSE route. It authenticates itself (header or `?token=`), so mount it
 * under /api/v1 BEFORE the app-wide bearer middleware, which it then never reaches.
 * All streams of one execution share one store poll ({@link ExecutionEventHub}),
 * and open streams are capped per token and per organisation ({@link StreamSlots}).
 */
export function executionEventsRoutes(
  deps: RouteDeps,
  options: ExecutionEventsRouteOptions = {},
): OpenAPIHono<ApiEnv> {
  const app = createRouter();
  const hub = new ExecutionEventHub({ ...options.feed, db: deps.db, bus: deps.bus });
  const slots = new StreamSlots(options.limits);
  app.use("/executions/:id/events", bearerOrQueryToken(deps));
  app.openapi(eventsRoute, async (c) => {
    const principal = c.get("principal");
    const organisationId = requireOrganisationRole(principal, "viewer");
    const { id } = c.req.valid("param");
    const execution = await requireExecution(deps.db, organisationId, id);
    // A Last-Event-ID beyond the events that exist means "from now": clamped, so it cannot
    // start the shared feed past events the other streams of this execution still need.
    const afterSeq = Math.min(
      parseLastEventId(c.req.header("last-event-id") ?? c.req.valid("query").lastEventId),
      execution.eventSeq,
    );
    let slot: ReturnType<StreamSlots["take"]>;
    try {
      slot = slots.take(principal.tokenId, organisationId);
    } catch (error) {
      throw withRetryAfter(c, DrayError.from(error));
    }
    return streamSSE(c, async (stream) => {
      const abort = new AbortController();
      stream.onAbort(() => abort.abort());
      const events = followExecutionEvents({
        hub,
        organisationId,
        executionId: id,
        afterSeq,
        signal: abort.signal,
        ...(options.pingMs === undefined ? {} : { pingMs: options.pingMs }),
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
        slot.release();
      }
    });
  });
  return app;
}
