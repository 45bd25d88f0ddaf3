/**
 * Files of `files` pipelines: `POST /pipeline/upload` (multipart, streamed
 * into the store as it arrives, then one `file` execution queued per distinct
 * content; a tar or .tar.gz is unpacked as it streams, one file per regular
 * entry, all queued in one transaction at the end), the list of a pipeline's
 * files and DROP FILE.
 */
import { DrayError } from "@dray/common";
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { requireOrganisationRole } from "../auth/roles.js";
import { DEFAULT_UPLOAD_MAX_BYTES } from "../config.js";
import { actorOf } from "../executions/execution-records.js";
import { acceptUpload } from "../files/accept-upload.js";
import { dropPipelineFile, listPipelineFiles } from "../files/file-records.js";
import { deleteStagedMany, isUploadTooLarge } from "../files/file-staging.js";
import { emptyUploadForm, readUploadForm, stagedUploadIds } from "../files/upload-form.js";
import type { ApiEnv, RouteDeps } from "./api-env.js";
import { nextField, pageQuery } from "./pagination.js";
import { createRouter } from "./router.js";
import { bearerSecurity, errorResponses, IdParams, jsonResponse, Timestamp } from "./schemas.js";

const tags = ["pipelines"];

/** The upload route's path under /api/v1 (create-api-app.ts exempts it from the JSON body limit). */
export const UPLOAD_PATH = "/pipeline/upload";

const UploadedFile = z
  .object({
    pipelineToken: z.string().openapi({ example: "pt-0c5e7d2a-…" }),
    status: z.literal("INITIALIZED"),
    fileId: z.string().openapi({ description: "SHA-256 of the file's bytes, hex" }),
    filename: z.string(),
    state: z.literal("Unloaded"),
  })
  .openapi("UploadedFile");

const UploadedArchive = z
  .object({
    status: z.literal("accepted"),
    publisherToken: z.string(),
    files: z.array(
      z.object({
        filename: z.string().openapi({
          description: "The file's name without `.gz`; for a tar's entry, its path inside the archive",
        }),
        fileId: z.string().openapi({ description: "SHA-256 of the file's bytes (of the entry's), hex" }),
        pipelineToken: z.string().openapi({
          description: "The token of its load; of a duplicate, the token of the load the same bytes had",
        }),
        state: z.enum(["Unloaded", "Loaded", "Skipped"]),
        duplicate: z
          .literal(true)
          .optional()
          .openapi({ description: "Set when the pipeline had these bytes already: nothing queued for it" }),
      }),
    ),
  })
  .openapi("UploadedArchive");

const DuplicateUpload = z
  .object({
    pipelineToken: z.string().openapi({ description: "The token of the load the same bytes had" }),
    status: z.enum(["INITIALIZED", "PROCESSING", "COMPLETED"]),
    fileId: z.string(),
    state: z.enum(["Unloaded", "Loaded", "Skipped"]),
    duplicate: z.literal(true),
  })
  .openapi("DuplicateUpload");

const PipelineFile = z
  .object({
    fileId: z.string().openapi({ description: "SHA-256 of the file's bytes, hex" }),
    filename: z.string(),
    format: z.string().openapi({ example: "csv" }),
    compressed: z.boolean(),
    sizeBytes: z.number().int(),
    state: z.enum(["Unloaded", "Loaded", "Skipped"]),
    error: z.string().nullable(),
    pipelineToken: z.string(),
    publisherToken: z.string().nullable(),
    rowsLoaded: z.number().int(),
    rowsRejected: z.number().int(),
    uploadedAt: Timestamp,
    finishedAt: Timestamp.nullable(),
  })
  .openapi("PipelineFile");

const PipelineFilesPage = z
  .object({ files: z.array(PipelineFile), ...nextField })
  .openapi("PipelineFilesPage");

const FileParams = IdParams.extend({
  fileId: z.string().openapi({
    param: { name: "fileId", in: "path" },
    description: "The file's id (SHA-256 of its bytes, hex)",
  }),
});

const uploadRoute = createRoute({
  method: "post",
  path: UPLOAD_PATH,
  operationId: "uploadPipelineFile",
  summary: "Upload a file to a `files` pipeline (operator); its load is queued",
  description:
    "A `multipart/form-data` body with the form fields `file` (the file: CSV or NDJSON as the pipeline's " +
    "`fileSettings.format` says, optionally gzip-compressed), `pipeline` (the pipeline's name) and, " +
    "optionally, `publishertoken` (names an upload batch; `GET /pipeline/status?publishertoken=` rolls it up). " +
    "The file id is the SHA-256 of the bytes: uploading the same bytes to the same pipeline again queues " +
    "nothing and answers 200 with the first upload's token (`duplicate: true`) until the file is dropped. " +
    "A gzip file (recognised by its first bytes) answers the `accepted` shape, with a publisher token made " +
    "up when none was given. A tar or gzip-compressed tar (`ustar` magic at offset 257, after gunzip) is " +
    "unpacked as it streams: each regular entry (directories, links, empty files and hidden or metadata " +
    "entries such as `._*` and `__MACOSX/` are skipped) becomes its own file with its own id, token and " +
    "load, a duplicate entry answering its recorded token (`duplicate: true`); the entries are queued " +
    "together, or none when the archive is damaged (400). At most 1,000 files per archive. A zip answers " +
    "400. The size limit is the control plane's DRAY_UPLOAD_MAX_BYTES (413 past it), for an archive both " +
    "as sent and for its files together.",
  tags,
  security: bearerSecurity,
  request: {
    body: {
      required: true,
      content: {
        "multipart/form-data": {
          // A plain schema object: no validator reads the body, the route streams it.
          schema: {
            type: "object",
            required: ["file", "pipeline"],
            properties: {
              file: { type: "string", format: "binary", description: "The file" },
              pipeline: { type: "string", description: "The name of a pipeline whose source is `files`" },
              publishertoken: { type: "string", description: "Names the upload batch (optional)" },
            },
          },
        },
      },
    },
  },
  responses: {
    200: jsonResponse(DuplicateUpload, "These bytes were uploaded to the pipeline before: nothing queued"),
    202: jsonResponse(z.union([UploadedFile, UploadedArchive]), "Staged; its load is queued"),
    ...errorResponses(400, 401, 403, 404, 413),
  },
});

const listRoute = createRoute({
  method: "get",
  path: "/pipelines/{id}/files",
  operationId: "listPipelineFiles",
  summary: "The files uploaded to a `files` pipeline, newest first, with their state",
  description:
    "Pages of `limit` files; pass the answer's `next` as `cursor` for the page after it (null on the last).",
  tags,
  security: bearerSecurity,
  request: { params: IdParams, query: z.object(pageQuery) },
  responses: {
    200: jsonResponse(PipelineFilesPage, "A page of files"),
    ...errorResponses(400, 401, 403, 404),
  },
});

const dropRoute = createRoute({
  method: "delete",
  path: "/pipelines/{id}/files/{fileId}",
  operationId: "dropPipelineFile",
  summary: "DROP FILE (operator): forget a file and its staged bytes, so the same bytes load again",
  description:
    "409 `failed_precondition` while the file's load is queued or in progress (wait for it, or cancel " +
    "the execution named in `details`). Rows it already loaded stay in the target.",
  tags,
  security: bearerSecurity,
  request: { params: FileParams },
  responses: { 204: { description: "Dropped" }, ...errorResponses(401, 403, 404, 409) },
});

/** The upload limit of the configuration (DRAY_UPLOAD_MAX_BYTES), or its default. */
function uploadLimitOf(config: object): number {
  const limit = (config as { uploadMaxBytes?: unknown }).uploadMaxBytes;
  return typeof limit === "number" && limit > 0 ? limit : DEFAULT_UPLOAD_MAX_BYTES;
}

/** Routes of uploaded files (mount under /api/v1 behind the auth middleware). */
export function filesRoutes(deps: RouteDeps): OpenAPIHono<ApiEnv> {
  const app = createRouter();
  const maxBytes = uploadLimitOf(deps.config);

  app.openapi(uploadRoute, async (c) => {
    const principal = c.get("principal");
    const organisationId = requireOrganisationRole(principal, "operator");
    const body = c.req.raw.body;
    if (!body)
      throw new DrayError(
        "invalid_argument",
        "the request has no body: send the file as the form field `file`",
      );
    const form = emptyUploadForm();
    /** Upload ids whose staged bytes a queued load now owns. */
    const kept = new Set<string>();
    try {
      await readUploadForm(deps.db, organisationId, body, c.req.header("content-type"), maxBytes, form);
      const actor = await actorOf(deps.db, principal);
      const answer = await acceptUpload(
        { ...deps, onQueued: deps.onExecutionQueued },
        organisationId,
        actor,
        form,
        kept,
        deps.now(),
      );
      return answer.status === 200 ? c.json(answer.body, 200) : c.json(answer.body, 202);
    } catch (error) {
      if (isUploadTooLarge(error)) {
        const { code, message, details } = error;
        return c.json({ error: { code, message, details } }, 413);
      }
      throw error;
    } finally {
      const refused = stagedUploadIds(form).filter((uploadId) => !kept.has(uploadId));
      if (refused.length > 0) {
        await deleteStagedMany(deps.db, refused).catch((error) =>
          deps.logger.warn("could not delete refused staged bytes (the purge will)", {
            uploadIds: refused.slice(0, 20),
            error: String(error),
          }),
        );
      }
    }
  });

  app.openapi(listRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "viewer");
    const { limit, cursor } = c.req.valid("query");
    return c.json(
      await listPipelineFiles(deps.db, organisationId, c.req.valid("param").id, { limit, cursor }),
      200,
    );
  });

  app.openapi(dropRoute, async (c) => {
    const organisationId = requireOrganisationRole(c.get("principal"), "operator");
    const { id, fileId } = c.req.valid("param");
    const dropped = await dropPipelineFile(deps.db, organisationId, id, fileId);
    deps.logger.info("file dropped", { organisationId, pipelineId: id, fileId: dropped.fileId });
    return c.body(null, 204);
  });

  return app;
}
