/**
 * What an upload whose form was read (upload-form.ts) becomes: checks of the
 * form, then one queued `file` load per distinct content (or the answer of
 * the file uploaded before), and the answer the seed describes: a token for
 * a plain file, the `accepted` shape for a compressed file or an archive.
 */
import { DrayError } from "@dray/common";
import type { Actor } from "../executions/execution-records.js";
import { type ExecutionServiceDeps, newPipelineToken } from "../executions/start-execution.js";
import { isGzip } from "./file-settings.js";
import {
  type FileJobStatus,
  type FileState,
  type FileToQueue,
  queueFileLoad,
  queueFileLoads,
} from "./queue-file-load.js";
import {
  archiveFilename,
  filesPipelineNamed,
  formatOf,
  storedFilename,
  type UploadForm,
} from "./upload-form.js";

/** A file of an `accepted` answer. */
export interface AcceptedFile {
  filename: string;
  fileId: string;
  pipelineToken: string;
  state: FileState;
  duplicate?: true;
}

/** The answer to an upload, by HTTP status. */
export type UploadAnswer =
  | {
      status: 200;
      body: {
        pipelineToken: string;
        status: FileJobStatus;
        fileId: string;
        state: FileState;
        duplicate: true;
      };
    }
  | {
      status: 202;
      body:
        | {
            pipelineToken: string;
            status: "INITIALIZED";
            fileId: string;
            filename: string;
            state: "Unloaded";
          }
        | { status: "accepted"; publisherToken: string; files: AcceptedFile[] };
    };

/** A publisher token made up for a compressed upload that named none. */
const madeUpPublisherToken = () => `pub-${newPipelineToken().slice(3)}`;

/**
 * Queues the loads of a read upload form and returns the answer. `kept`
 * receives the upload ids whose staged bytes a queued load now owns (the
 * caller deletes the others); `onQueued` is told each execution queued.
 *
 * @throws DrayError `invalid_argument` (no file, an empty file, no pipeline
 * field, a pipeline not fed by files), `not_found` (unknown pipeline),
 * `failed_precondition` (a pipeline without valid file settings).
 */
export async function acceptUpload(
  deps: ExecutionServiceDeps & { onQueued?: ((executionId: string) => void) | undefined },
  organisationId: string,
  actor: Actor,
  form: UploadForm,
  kept: Set<string>,
  now: Date,
): Promise<UploadAnswer> {
  const { upload } = form;
  if (!upload)
    throw new DrayError("invalid_argument", "the form has no file: send it as the form field `file`");
  if (upload.kind === "file" && upload.staged.sizeBytes === 0)
    throw new DrayError("invalid_argument", "the file is empty");
  if (form.pipelineName === undefined)
    throw new DrayError(
      "invalid_argument",
      "the form has no `pipeline` field: name the pipeline to load into",
    );
  const pipeline = form.pipeline ?? (await filesPipelineNamed(deps.db, organisationId, form.pipelineName));
  const format = formatOf(pipeline);

  if (upload.kind === "archive") {
    const publisherToken = form.publisherToken ?? madeUpPublisherToken();
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
    const results = await queueFileLoads(deps, pipeline, toQueue, now);
    const files = results.map((result, i): AcceptedFile => {
      const filename = upload.files[i]!.label;
      const shown = { filename, fileId: result.fileId, pipelineToken: result.pipelineToken };
      if (result.duplicate) return { ...shown, state: result.state, duplicate: true };
      kept.add(upload.files[i]!.staged.uploadId);
      deps.onQueued?.(result.executionId);
      return { ...shown, state: "Unloaded" };
    });
    return { status: 202, body: { status: "accepted", publisherToken, files } };
  }

  const { staged } = upload;
  const compressed = isGzip(staged.head);
  const publisherToken = form.publisherToken ?? (compressed ? madeUpPublisherToken() : null);
  const filename = storedFilename(form.sentFilename, compressed);
  const queued = await queueFileLoad(
    deps,
    pipeline,
    { staged, filename, format, compressed, publisherToken, actor },
    now,
  );
  if (queued.duplicate) {
    const { pipelineToken, status, fileId, state } = queued;
    return { status: 200, body: { pipelineToken, status, fileId, state, duplicate: true } };
  }
  kept.add(staged.uploadId);
  deps.onQueued?.(queued.executionId);
  const { fileId, pipelineToken } = queued;
  if (compressed) {
    const files: AcceptedFile[] = [{ filename: queued.filename, fileId, pipelineToken, state: "Unloaded" }];
    return { status: 202, body: { status: "accepted", publisherToken: queued.publisherToken ?? "", files } };
  }
  return {
    status: 202,
    body: { pipelineToken, status: "INITIALIZED", fileId, filename: queued.filename, state: "Unloaded" },
  };
}
