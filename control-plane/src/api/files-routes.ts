/**
 * Files of `files` pipelines: `POST /pipeline/upload` (multipart, streamed
 * into the store as it arrives, then one `file` execution queued per distinct
 * content; a tar or .tar.gz is unpacked as it streams, one file per regular
 * entry, all queued in one transaction at the end), the list of a pipeline's
 * files and DROP FILE.
 */
import { DrayError, isDrayError } from "@dray/common";
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { and, eq } from "drizzle-orm";
import { requireOrganisationRole } from "../auth/roles.js";
import { DEFAULT_UPLOAD_MAX_BYTES } from "../config.js";
import { actorOf, type PipelineRow } from "../executions/execution-records.js";
import { newPipelineToken } from "../executions/start-execution.js";
import { archiveFiles, gunzipPieces, sniffUpload, ZIP_REFUSAL } from "../files/archive-entries.js";
import { dropPipelineFile, listPipelineFiles } from "../files/file-records.js";
import { isGzip, validateFileSettings } from "../files/file-settings.js";
import {
  bytesOf,
  deleteStagedMany,
  isUploadTooLarge,
  limitBytes,
  type StagedArchiveFile,
  type StagedUpload,
  stageArchive,
  stageUpload,
} from "../files/file-staging.js";
import { boundaryOf, type MultipartPart, parseMultipart, readTextPart } from "../files/multipart-stream.js";
import { type FileToQueue, queueFileLoad, queueFileLoads } from "../files/queue-file-load.js";
import type { Db } from "../store/db.js";
import { pipelines } from "../store/schema.js";
import type { ApiEnv, RouteDeps } from "./api-env.js";
import { nextField, pageQuery } from "./pagination.js";
import { createRouter } from "./router.js";
import { bearerSecurity, errorResponses, IdParams, jsonResponse, Timestamp } from "./schemas.js";

const tags = ["pipelines"];

/** The upload route's path under /api/v1 (create-api-app.ts exempts it from the JSON body limit). */
export const UPLOAD_PATH = "/pipeline/upload";

/** Largest `pipeline` or `publishertoken` form field, in bytes. */
const MAX_FIELD_BYTES = 1024;
/** Longest publisher token, in characters. */
const MAX_PUBLISHER_TOKEN_LENGTH = 200;
/** Longest stored file name, in characters. */
const MAX_FILENAME_LENGTH = 255;

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

/** The file name to store: the last path segment, control characters dropped, at most 255 characters. */
export function storedFilename(sent: string | undefined, compressed: boolean): string {
  let name = sent ?? "";
  const cut = Math.max(name.lastIndexOf("/"), name.lastIndexOf("\\"));
  if (cut >= 0) name = name.slice(cut + 1);
  let clean = "";
  for (const ch of name) {
    const code = ch.codePointAt(0)!;
    if (code >= 32 && code !== 127) clean += ch;
  }
  clean = clean.trim();
  if (compressed && clean.toLowerCase().endsWith(".gz")) clean = clean.slice(0, -3);
  clean = Array.from(clean).slice(0, MAX_FILENAME_LENGTH).join("");
  return clean.length > 0 ? clean : "upload";
}

/** The organisation's `files` pipeline named `name`: 404 unknown, 400 of another source kind. */
async function filesPipelineNamed(db: Db, organisationId: string, name: string): Promise<PipelineRow> {
  const [pipeline] = await db
    .select()
    .from(pipelines)
    .where(and(eq(pipelines.organisationId, organisationId), eq(pipelines.name, name)))
    .limit(1);
  const shown = JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name);
  if (!pipeline) throw new DrayError("not_found", `pipeline ${shown} was not found`);
  if (pipeline.sourceKind !== "files") {
    throw new DrayError(
      "invalid_argument",
      `pipeline ${shown} reads from an environment, not from files: upload to a pipeline whose source is "files"`,
    );
  }
  return pipeline;
}

/** The file format of a `files` pipeline's settings; 409 when they are missing or invalid. */
function formatOf(pipeline: PipelineRow): string {
  try {
    return validateFileSettings(pipeline.fileSettings).format;
  } catch (error) {
    if (!isDrayError(error)) throw error;
    throw new DrayError(
      "failed_precondition",
      `pipeline "${pipeline.name}" has no valid file settings (${error.message}): set its fileSettings`,
    );
  }
}

/** A checked text field: not empty, no control characters, at most `max` characters. */
function textField(name: string, value: string, max: number): string {
  const issue = (message: string) =>
    new DrayError("invalid_argument", `invalid form body: ${name}: ${message}`, {
      details: { issues: [{ path: name, message }] },
    });
  if (value.length === 0) throw issue("must not be empty");
  if (value.length > max) throw issue(`must be at most ${max} characters`);
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 32 || c === 127) throw issue("must not contain control characters");
  }
  return value;
}

/** The `file` of the upload body, staged: one file, or the files of an archive. */
type StagedForm = { kind: "file"; staged: StagedUpload } | { kind: "archive"; files: StagedArchiveFile[] };

/** The name stored for a file of an archive: its path, without `.gz` when the entry itself is gzip. */
function archiveFilename(label: string, compressed: boolean): string {
  return compressed && label.toLowerCase().endsWith(".gz") && label.length > 3 ? label.slice(0, -3) : label;
}

/** What the upload body held. */
interface UploadForm {
  upload: StagedForm | undefined;
  sentFilename: string | undefined;
  pipelineName: string | undefined;
  publisherToken: string | undefined;
  /** Resolved as soon as the `pipeline` field is read (before the file when it comes first). */
  pipeline: PipelineRow | undefined;
}

/** Routes of uploaded files (mount under /api/v1 behind the auth middleware). */
export function filesRoutes(deps: RouteDeps): OpenAPIHono<ApiEnv> {
  const app = createRouter();
  const maxBytes = uploadLimitOf(deps.config);

  app.openapi(uploadRoute, async (c) => {
    const principal = c.get("principal");
    const organisationId = requireOrganisationRole(principal, "operator");
    const boundary = boundaryOf(c.req.header("content-type"));
    const body = c.req.raw.body;
    if (!body)
      throw new DrayError(
        "invalid_argument",
        "the request has no body: send the file as the form field `file`",
      );
    const form: UploadForm = {
      upload: undefined,
      sentFilename: undefined,
      pipelineName: undefined,
      publisherToken: undefined,
      pipeline: undefined,
    };
    /** Upload ids whose staged bytes a queued load now owns. */
    const kept = new Set<string>();
    try {
      for await (const part of parseMultipart(bytesOf(body), boundary)) {
        await readPart(deps.db, organisationId, part, form, maxBytes);
      }
      const { upload } = form;
      if (!upload)
        throw new DrayError("invalid_argument", "the form has no file: send it as the form field `file`");
      if (upload.kind === "file" && upload.staged.sizeBytes === 0)
        throw new DrayError("invalid_argument", "the file is empty");
      if (form.pipelineName === undefined) {
        throw new DrayError(
          "invalid_argument",
          "the form has no `pipeline` field: name the pipeline to load into",
        );
      }
      const pipeline =
        form.pipeline ?? (await filesPipelineNamed(deps.db, organisationId, form.pipelineName));
      const format = formatOf(pipeline);
      if (upload.kind === "archive") {
        const publisherToken = form.publisherToken ?? `pub-${newPipelineToken().slice(3)}`;
        const actor = await actorOf(deps.db, principal);
        const toQueue: FileToQueue[] = upload.files.map(({ label, staged }) => {
          const compressed = isGzip(staged.head);
          return {
            staged,
            filename: archiveFilename(label, compressed),
            format,
            compressed,
            publisherToken,
            actor,
          };
        });
        const results = await queueFileLoads(deps, pipeline, toQueue, deps.now());
        const files = results.map((result, i) => {
          const filename = upload.files[i]!.label;
          if (result.duplicate) {
            return {
              filename,
              fileId: result.fileId,
              pipelineToken: result.pipelineToken,
              state: result.state,
              duplicate: true as const,
            };
          }
          kept.add(upload.files[i]!.staged.uploadId);
          deps.onExecutionQueued?.(result.executionId);
          return {
            filename,
            fileId: result.fileId,
            pipelineToken: result.pipelineToken,
            state: "Unloaded" as const,
          };
        });
        return c.json({ status: "accepted" as const, publisherToken, files }, 202);
      }
      const { staged } = upload;
      const compressed = isGzip(staged.head);
      const publisherToken =
        form.publisherToken ?? (compressed ? `pub-${newPipelineToken().slice(3)}` : null);
      const queued = await queueFileLoad(
        deps,
        pipeline,
        {
          staged,
          filename: storedFilename(form.sentFilename, compressed),
          format,
          compressed,
          publisherToken,
          actor: await actorOf(deps.db, principal),
        },
        deps.now(),
      );
      if (queued.duplicate) {
        return c.json(
          {
            pipelineToken: queued.pipelineToken,
            status: queued.status,
            fileId: queued.fileId,
            state: queued.state,
            duplicate: true as const,
          },
          200,
        );
      }
      kept.add(staged.uploadId);
      deps.onExecutionQueued?.(queued.executionId);
      if (compressed) {
        return c.json(
          {
            status: "accepted" as const,
            publisherToken: queued.publisherToken ?? "",
            files: [
              {
                filename: queued.filename,
                fileId: queued.fileId,
                pipelineToken: queued.pipelineToken,
                state: "Unloaded" as const,
              },
            ],
          },
          202,
        );
      }
      return c.json(
        {
          pipelineToken: queued.pipelineToken,
          status: "INITIALIZED" as const,
          fileId: queued.fileId,
          filename: queued.filename,
          state: "Unloaded" as const,
        },
        202,
      );
    } catch (error) {
      if (isUploadTooLarge(error)) {
        const { code, message, details } = error;
        return c.json({ error: { code, message, details } }, 413);
      }
      throw error;
    } finally {
      const staged =
        form.upload?.kind === "file"
          ? [form.upload.staged.uploadId]
          : (form.upload?.files.map((f) => f.staged.uploadId) ?? []);
      const refused = staged.filter((uploadId) => !kept.has(uploadId));
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

/** Takes one part of the upload form into `form` (the file is staged; other fields are read). */
async function readPart(
  db: Db,
  organisationId: string,
  part: MultipartPart,
  form: UploadForm,
  maxBytes: number,
): Promise<void> {
  if (part.name === "file") {
    if (form.upload)
      throw new DrayError(
        "invalid_argument",
        "the form has more than one `file`: upload one file per request",
      );
    form.sentFilename = part.filename;
    form.upload = await stageFilePart(db, part.body, maxBytes);
  } else if (part.name === "pipeline") {
    if (form.pipelineName !== undefined)
      throw new DrayError("invalid_argument", "the form has more than one `pipeline` field");
    form.pipelineName = textField("pipeline", await readTextPart(part, MAX_FIELD_BYTES), MAX_FIELD_BYTES);
    // Known before the file: an unknown pipeline is refused before any byte is staged.
    if (!form.upload) form.pipeline = await filesPipelineNamed(db, organisationId, form.pipelineName);
  } else if (part.name === "publishertoken") {
    if (form.publisherToken !== undefined) {
      throw new DrayError("invalid_argument", "the form has more than one `publishertoken` field");
    }
    form.publisherToken = textField(
      "publishertoken",
      await readTextPart(part, MAX_FIELD_BYTES),
      MAX_PUBLISHER_TOKEN_LENGTH,
    );
  }
  // Other fields are skipped (the parser drains them).
}

/**
 * Stages the `file` of the form as it streams: a tar or .tar.gz file by file
 * (the archive as sent and its files together each bounded by `maxBytes`;
 * nothing stays staged when it turns out damaged), anything else as one file.
 * A zip is refused (400).
 */
async function stageFilePart(db: Db, body: AsyncIterable<Uint8Array>, maxBytes: number): Promise<StagedForm> {
  const sniffed = await sniffUpload(limitBytes(body, maxBytes));
  if (sniffed.kind === "zip") throw new DrayError("invalid_argument", ZIP_REFUSAL);
  if (sniffed.kind === "file")
    return { kind: "file", staged: await stageUpload(db, sniffed.bytes, { maxBytes }) };
  const tar = sniffed.gzip ? gunzipPieces(sniffed.bytes) : sniffed.bytes;
  return { kind: "archive", files: await stageArchive(db, archiveFiles(tar), { maxBytes }) };
}
