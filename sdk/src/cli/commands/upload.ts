import { stat } from "node:fs/promises";
import { basename } from "node:path";
import type { UploadResult } from "../../client.js";
import { DrayApiError } from "../../errors.js";
import type { CommandContext } from "../command-context.js";
import { EXIT, UsageError } from "../exit-codes.js";
import {
  newPublisherToken,
  type UploadReport,
  uploadFailureLine,
  uploadLine,
  uploadReports,
} from "../files-format.js";
import { createUploadView } from "../upload-view.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A file named on the command line, checked before anything is sent. */
interface LocalFile {
  path: string;
  name: string;
  size: number;
}

/** Checks that every file is a readable regular file; a usage error (one line) names the first that is not. */
export async function checkFiles(paths: readonly string[]): Promise<LocalFile[]> {
  const files: LocalFile[] = [];
  for (const path of paths) {
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      info = await stat(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new UsageError(
        code === "ENOENT" ? `no file ${path}` : `cannot read ${path}: ${code ?? String(error)}`,
      );
    }
    if (!info.isFile()) throw new UsageError(`${path} is not a file`);
    files.push({ path, name: basename(path), size: info.size });
  }
  return files;
}

/** Statuses after which the other files are still worth sending (the refusal is about this file). */
const PER_FILE_STATUSES = new Set([400, 409, 413]);

/**
 * `dray upload <pipeline> <file>... [--publisher-token t]`: sends the files one after the
 * other (streamed from disk, a bar per file on a terminal), and prints each file's pipeline
 * token and state. All files of one call share a publisher token. A refused file (too large,
 * unreadable format…) does not stop the others; the exit code is then 1.
 */
export async function uploadCommand(ctx: CommandContext, args: string[]): Promise<number> {
  const [ref, ...paths] = args.flat();
  if (!ref || paths.length === 0)
    throw new UsageError("missing the pipeline or the files", "dray upload <pipeline> <file>...");
  const { client, out } = ctx;
  const given = ctx.flags.publisherToken;
  if (given !== undefined && (typeof given !== "string" || given.trim() === ""))
    throw new UsageError(
      "--publisher-token needs a value",
      "for example --publisher-token nightly-2026-05-01",
    );
  const publisherToken = typeof given === "string" ? given : newPublisherToken();
  const files = await checkFiles(paths);
  // The upload names the pipeline; an id is read back as its name.
  const pipelineName = UUID.test(ref) ? (await client.pipelines.get(ref)).name : ref;

  const view = createUploadView(out, files);
  const reports: UploadReport[] = [];
  const failures: { file: string; status: number; code: string; message: string }[] = [];
  try {
    for (const [index, file] of files.entries()) {
      let result: UploadResult;
      try {
        result = await client.files.upload(pipelineName, file.path, {
          publisherToken,
          onProgress: (sent) => view.progress(index, sent),
        });
      } catch (error) {
        view.finish(index, false);
        if (error instanceof DrayApiError && PER_FILE_STATUSES.has(error.status)) {
          failures.push({ file: file.path, status: error.status, code: error.code, message: error.message });
          continue;
        }
        throw error;
      }
      view.finish(index, true);
      reports.push(...uploadReports(file.path, file.name, result));
    }
  } finally {
    view.stop();
  }

  if (out.json) {
    out.data({ pipeline: pipelineName, publisherToken, files: reports, failed: failures });
  } else {
    for (const report of reports) out.line(uploadLine(report));
    if (reports.length > 0)
      out.line(
        out.color.grey(`publisher token ${publisherToken}; \`dray files ${pipelineName}\` shows their loads`),
      );
    for (const f of failures) out.error(`dray: ${uploadFailureLine(f.file, f.status, f.message)}`);
  }
  return failures.length > 0 ? EXIT.failed : EXIT.ok;
}
