/**
 * Reading the multipart body of `POST /pipeline/upload`: the `file` part is
 * staged in the store as it streams (a tar or .tar.gz file by file), the
 * `pipeline` and `publishertoken` fields are checked, and the `files`
 * pipeline is looked up (before the file when its field comes first, so an
 * unknown pipeline stages nothing).
 */
import { DrayError, isDrayError } from "@dray/common";
import { and, eq } from "drizzle-orm";
import type { PipelineRow } from "../executions/execution-records.js";
import type { Db } from "../store/db.js";
import { pipelines } from "../store/schema.js";
import { archiveFiles } from "./archive-entries.js";
import { validateFileSettings } from "./file-settings.js";
import {
  bytesOf,
  limitBytes,
  type StagedArchiveFile,
  type StagedUpload,
  stageArchive,
  stageUpload,
} from "./file-staging.js";
import { gunzipPieces } from "./gunzip-pieces.js";
import { boundaryOf, type MultipartPart, parseMultipart, readTextPart } from "./multipart-stream.js";
import { sniffUpload, ZIP_REFUSAL } from "./upload-sniff.js";

/** Largest `pipeline` or `publishertoken` form field, in bytes. */
const MAX_FIELD_BYTES = 1024;
/** Longest publisher token, in characters. */
const MAX_PUBLISHER_TOKEN_LENGTH = 200;
/** Longest stored file name, in characters. */
const MAX_FILENAME_LENGTH = 255;

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
export async function filesPipelineNamed(db: Db, organisationId: string, name: string): Promise<PipelineRow> {
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
export function formatOf(pipeline: PipelineRow): string {
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
export type StagedForm =
  | { kind: "file"; staged: StagedUpload }
  | { kind: "archive"; files: StagedArchiveFile[] };

/** The name stored for a file of an archive: its path, without `.gz` when the entry itself is gzip. */
export function archiveFilename(label: string, compressed: boolean): string {
  return compressed && label.toLowerCase().endsWith(".gz") && label.length > 3 ? label.slice(0, -3) : label;
}

/** What the upload body held. */
export interface UploadForm {
  upload: StagedForm | undefined;
  sentFilename: string | undefined;
  pipelineName: string | undefined;
  publisherToken: string | undefined;
  /** Resolved as soon as the `pipeline` field is read (before the file when it comes first). */
  pipeline: PipelineRow | undefined;
}

/**
 * Reads the whole upload form from `body` (multipart with `boundary` taken
 * from the request's content type), staging its file as it streams. The
 * caller deletes the staged bytes it does not queue ({@link stagedUploadIds}),
 * also when this throws after staging.
 */
export async function readUploadForm(
  db: Db,
  organisationId: string,
  body: ReadableStream<Uint8Array>,
  contentType: string | undefined,
  maxBytes: number,
  form: UploadForm = emptyUploadForm(),
): Promise<UploadForm> {
  const boundary = boundaryOf(contentType);
  for await (const part of parseMultipart(bytesOf(body), boundary)) {
    await readPart(db, organisationId, part, form, maxBytes);
  }
  return form;
}

/** A form nothing was read into yet. */
export function emptyUploadForm(): UploadForm {
  return {
    upload: undefined,
    sentFilename: undefined,
    pipelineName: undefined,
    publisherToken: undefined,
    pipeline: undefined,
  };
}

/** The upload ids of everything the form staged. */
export function stagedUploadIds(form: UploadForm): string[] {
  if (!form.upload) return [];
  return form.upload.kind === "file"
    ? [form.upload.staged.uploadId]
    : form.upload.files.map((f) => f.staged.uploadId);
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
