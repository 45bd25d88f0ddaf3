/**
 * GET /api/v1/pipeline/status: the seed-compatible job status (seed 02), by
 * pipeline token (stage entries) or by pipeline name (job summaries, 20 per page).
 */
import { DrayError } from "@dray/common";
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { requireOrganisationRole } from "../auth/roles.js";
import { jobSummariesByName, stageStatusByToken } from "../executions/pipeline-status.js";
import type { ApiEnv, RouteDeps } from "./api-env.js";
import { JobSummary, PipelineStatusQuery, StageStatusEntry } from "./execution-schemas.js";
import { createRouter } from "./router.js";
import { bearerSecurity, errorResponses, jsonResponse } from "./schemas.js";

const statusRoute = createRoute({
  method: "get",
  path: "/pipeline/status",
  operationId: "getPipelineStatus",
  summary: "Job status: stage entries by `pipelinetoken`, or job summaries by `pipelinename` (20 per page)",
  description:
    "Give exactly one of `pipelinetoken` and `pipelinename`. An unknown token answers 404; an unknown " +
    "pipeline name answers an empty array.",
  tags: ["executions"],
  security: bearerSecurity,
  request: { query: PipelineStatusQuery },
  responses: {
    200: jsonResponse(
      z.union([z.array(StageStatusEntry), z.array(JobSummary)]),
      "Stage entries (by token, oldest first) or job summaries (by name, newest first)",
    ),
    ...errorResponses(400, 401, 403, 404),
  },
});

/** The seed-compatible status route. */
export function statusRoutes(deps: RouteDeps): OpenAPIHono<ApiEnv> {
  const app = createRouter();
  app.openapi(statusRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "viewer");
    const { pipelinetoken, pipelinename, page } = c.req.valid("query");
    if ((pipelinetoken === undefined) === (pipelinename === undefined)) {
      throw new DrayError(
        "invalid_argument",
        "give exactly one of the query parameters pipelinetoken (a job's stage entries) and pipelinename (its jobs)",
      );
    }
    if (pipelinetoken !== undefined) {
      return c.json(await stageStatusByToken(deps.db, organisationId, pipelinetoken, page), 200);
    }
    return c.json(await jobSummariesByName(deps.db, organisationId, pipelinename!, page), 200);
  });
  return app;
}
