/** /api/v1/pipelines: the organisation's pipelines (create, list, read, update, delete) and their plans. */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { requireOrganisationRole } from "../auth/roles.js";
import { getPipelinePlan } from "../pipelines/pipeline-plan.js";
import { getPipelinePreview } from "../pipelines/pipeline-preview.js";
import { toPipelineViews } from "../pipelines/pipeline-view.js";
import { listPipelinesPage } from "../pipelines/pipelines-list.js";
import {
  createPipeline,
  deletePipeline,
  getPipeline,
  updatePipeline,
} from "../pipelines/pipelines-service.js";
import type { ApiEnv, RouteDeps } from "./api-env.js";
import { nextField, pageQuery } from "./pagination.js";
import {
  CreatePipeline,
  ListPipelinesQuery,
  Pipeline,
  PipelinePlan,
  PipelinePreview,
  UpdatePipeline,
} from "./pipeline-schemas.js";
import { createRouter } from "./router.js";
import { bearerSecurity, errorResponses, IdParams, jsonBody, jsonResponse } from "./schemas.js";

const tags = ["pipelines"];

const createPipelineRoute = createRoute({
  method: "post",
  path: "/pipelines",
  operationId: "createPipeline",
  summary: "Create a pipeline (operator)",
  description:
    "Both environments must belong to the organisation and share a platform; every entity must be in the " +
    "source's entity snapshot. A missing snapshot is fetched from the source's connected agent; 409 " +
    "`failed_precondition` only when there is none and no agent of the source is connected.",
  tags,
  security: bearerSecurity,
  request: { body: jsonBody(CreatePipeline) },
  responses: {
    201: jsonResponse(Pipeline, "The pipeline"),
    ...errorResponses(400, 401, 403, 409),
  },
});

const listPipelinesRoute = createRoute({
  method: "get",
  path: "/pipelines",
  operationId: "listPipelines",
  summary: "List the organisation's pipelines by name, optionally searched, a page at a time",
  description:
    "Pages of `limit` pipelines (default 50, at most 200). When `next` is not null, pass it as `cursor` " +
    "(with the same `search`) to get the next page.",
  tags,
  security: bearerSecurity,
  request: { query: ListPipelinesQuery.extend(pageQuery) },
  responses: {
    200: jsonResponse(
      z.object({ pipelines: z.array(Pipeline), ...nextField }).openapi("PipelinePage"),
      "A page of pipelines",
    ),
    ...errorResponses(400, 401, 403),
  },
});

const getPipelineRoute = createRoute({
  method: "get",
  path: "/pipelines/{id}",
  operationId: "getPipeline",
  summary: "Read a pipeline",
  tags,
  security: bearerSecurity,
  request: { params: IdParams },
  responses: { 200: jsonResponse(Pipeline, "The pipeline"), ...errorResponses(401, 403, 404) },
});

const updatePipelineRoute = createRoute({
  method: "patch",
  path: "/pipelines/{id}",
  operationId: "updatePipeline",
  summary: "Update a pipeline (operator)",
  description:
    "Any subset of the fields of POST; the merged result is validated like a new pipeline. " +
    "409 `failed_precondition` while an execution is queued or in progress.",
  tags,
  security: bearerSecurity,
  request: { params: IdParams, body: jsonBody(UpdatePipeline) },
  responses: {
    200: jsonResponse(Pipeline, "The updated pipeline"),
    ...errorResponses(400, 401, 403, 404, 409),
  },
});

const deletePipelineRoute = createRoute({
  method: "delete",
  path: "/pipelines/{id}",
  operationId: "deletePipeline",
  summary: "Delete a pipeline and its run history (admin)",
  description:
    "Deleting a pipeline also deletes every execution of it (run history, stage and error logs). " +
    "409 `failed_precondition` while an execution is queued or in progress.",
  tags,
  security: bearerSecurity,
  request: { params: IdParams },
  responses: { 204: { description: "Deleted" }, ...errorResponses(401, 403, 404, 409) },
});

const planRoute = createRoute({
  method: "get",
  path: "/pipelines/{id}/plan",
  operationId: "getPipelinePlan",
  summary: "The plan of a run, computed from the entity snapshots without running anything",
  description:
    "Dependency levels, deferred references, warnings and per-entity details. Whatever would stop a run " +
    "(unresolvable cycle, missing primary key, entities or fields missing in the target, monthly record limit) " +
    "is listed in `blocking`; the answer is still 200. A missing snapshot is fetched from the connected agent; " +
    "when the target has none and no agent, compatibility is a warning.",
  tags,
  security: bearerSecurity,
  request: { params: IdParams },
  responses: {
    200: jsonResponse(PipelinePlan, "The plan"),
    ...errorResponses(401, 403, 404, 409),
  },
});

const previewRoute = createRoute({
  method: "post",
  path: "/pipelines/{id}/preview",
  operationId: "previewPipeline",
  summary: "Up to 20 transformed rows per transformed entity, computed by the source agent",
  description:
    "For each selected entity with transformations, the source agent reads up to 20 rows of the transformed " +
    "fields only (by the row key) and transforms them, exactly as a run would; untransformed values are never " +
    "read into the answer. Nothing is written. 409 `failed_precondition` when the pipeline's action is not " +
    "transform, 503 `unavailable` when no agent of the source is connected.",
  tags,
  security: bearerSecurity,
  request: { params: IdParams },
  responses: {
    200: jsonResponse(PipelinePreview, "The preview"),
    ...errorResponses(401, 403, 404, 409, 503),
  },
});

/** CRUD, plan and preview routes of pipelines. */
export function pipelinesRoutes(deps: RouteDeps): OpenAPIHono<ApiEnv> {
  const app = createRouter();
  const view = async (row: Parameters<typeof toPipelineViews>[1][number]) =>
    (await toPipelineViews(deps.db, [row]))[0]!;

  app.openapi(createPipelineRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "operator");
    const row = await createPipeline(deps.db, organisationId, c.req.valid("json"), deps.now(), deps.agents);
    deps.logger.info("pipeline created", { organisationId, pipelineId: row.id, name: row.name });
    return c.json(await view(row), 201);
  });

  app.openapi(listPipelinesRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "viewer");
    const { limit, cursor, ...query } = c.req.valid("query");
    const page = await listPipelinesPage(deps.db, organisationId, query, { limit, cursor });
    return c.json({ pipelines: await toPipelineViews(deps.db, page.pipelines), next: page.next }, 200);
  });

  app.openapi(getPipelineRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "viewer");
    return c.json(await view(await getPipeline(deps.db, organisationId, c.req.valid("param").id)), 200);
  });

  app.openapi(updatePipelineRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "operator");
    const row = await updatePipeline(
      deps.db,
      organisationId,
      c.req.valid("param").id,
      c.req.valid("json"),
      deps.now(),
      deps.agents,
    );
    deps.logger.info("pipeline updated", { organisationId, pipelineId: row.id });
    return c.json(await view(row), 200);
  });

  app.openapi(deletePipelineRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "admin");
    const id = c.req.valid("param").id;
    await deletePipeline(deps.db, organisationId, id);
    deps.logger.info("pipeline deleted", { organisationId, pipelineId: id });
    return c.body(null, 204);
  });

  app.openapi(planRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "viewer");
    return c.json(
      await getPipelinePlan(deps.db, organisationId, c.req.valid("param").id, deps.now(), deps.agents),
      200,
    );
  });

  app.openapi(previewRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "viewer");
    return c.json(
      await getPipelinePreview(
        deps.db,
        organisationId,
        c.req.valid("param").id,
        deps.now(),
        deps.agents,
        c.req.raw.signal,
      ),
      200,
    );
  });

  return app;
}
