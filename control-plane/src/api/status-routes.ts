/**
 * GET /api/v1/pipeline/status: the seed-compatible job status (seed 02), by
 * pipeline token (stage entries), by pipeline name (job summaries, 20 per
 * page) or by publisher token (the files of one upload batch).
 */
import { DrayError } from "@dray/common";
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { requireOrganisationRole } from "../auth/roles.js";
import { jobSummariesByName, publisherStatus, stageStatusByToken } from "../executions/pipeline-status.js";
import type { ApiEnv, RouteDeps } from "./api-env.js";
import {
  JobSummary,
  PipelineStatusQuery,
  StageStatusEntry as SeedStageStatusEntry,
} from "./execution-schemas.js";
import { createRouter } from "./router.js";
import { bearerSecurity, errorResponses, jsonResponse } from "./schemas.js";

/** One stage entry of a job (seed 02); `publisherToken` is set for the load of an uploaded file. */
const StageStatusEntry = SeedStageStatusEntry.extend({
  publisherToken: z.string().nullable().openapi({
    description: "The upload batch of a file load (`publishertoken` of the upload); null otherwise",
  }),
}).openapi("StageStatusEntry");

/** The query: exactly one of `pipelinetoken`, `pipelinename` and `publishertoken`. */
const StatusQuery = PipelineStatusQuery.extend({
  publishertoken: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .openapi({ description: "An upload batch's publisher token: the status of each of its files" }),
});

/** One file of an upload batch. */
const PublisherFileStatus = z
  .object({
    filename: z.string(),
    fileId: z.string().openapi({ description: "SHA-256 of the file's bytes, hex" }),
    pipelineToken: z.string(),
    status: z.enum(["INITIALIZED", "PROCESSING", "COMPLETED"]).openapi({
      description: "INITIALIZED: its load is queued; PROCESSING: loading; COMPLETED: the load ended",
    }),
    state: z.enum(["Unloaded", "Loaded", "Skipped"]),
    error: z.string().nullable().openapi({ description: "Why the file was skipped" }),
  })
  .openapi("PublisherFileStatus");

/** The files of one upload batch. */
const PublisherStatus = z
  .object({
    publisherToken: z.string(),
    allDone: z.boolean().openapi({ description: "True when every file's load has ended" }),
    files: z.array(PublisherFileStatus),
  })
  .openapi("PublisherStatus");

const statusRoute = createRoute({
  method: "get",
  path: "/pipeline/status",
  operationId: "getPipelineStatus",
  summary:
    "Job status: stage entries by `pipelinetoken`, job summaries by `pipelinename` (20 per page), " +
    "or an upload batch's files by `publishertoken`",
  description:
    "Give exactly one of `pipelinetoken`, `pipelinename` and `publishertoken`. An unknown pipeline or " +
    "publisher token answers 404; an unknown pipeline name answers an empty array.",
  tags: ["executions"],
  security: bearerSecurity,
  request: { query: StatusQuery },
  responses: {
    200: jsonResponse(
      z.union([z.array(StageStatusEntry), z.array(JobSummary), PublisherStatus]),
      "Stage entries (by pipeline token, oldest first), job summaries (by name, newest first) " +
        "or the files of an upload batch (by publisher token, oldest first)",
    ),
    ...errorResponses(400, 401, 403, 404),
  },
});

/** The seed-compatible status route. */
export function statusRoutes(deps: RouteDeps): OpenAPIHono<ApiEnv> {
  const app = createRouter();
  app.openapi(statusRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "viewer");
    const { pipelinetoken, pipelinename, publishertoken, page } = c.req.valid("query");
    const given = [pipelinetoken, pipelinename, publishertoken].filter((v) => v !== undefined).length;
    if (given !== 1) {
      throw new DrayError(
        "invalid_argument",
        "give exactly one of the query parameters pipelinetoken (a job's stage entries), pipelinename (its jobs) " +
          "and publishertoken (the files of an upload batch)",
      );
    }
    if (publishertoken !== undefined) {
      return c.json(await publisherStatus(deps.db, organisationId, publishertoken), 200);
    }
    if (pipelinetoken !== undefined) {
      return c.json(await stageStatusByToken(deps.db, organisationId, pipelinetoken, page), 200);
    }
    return c.json(await jobSummariesByName(deps.db, organisationId, pipelinename!, page), 200);
  });
  return app;
}
