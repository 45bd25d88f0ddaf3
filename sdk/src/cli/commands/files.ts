import { collect } from "../../pages.js";
import type { CommandContext } from "../command-context.js";
import { confirm } from "../confirm.js";
import { EXIT, UsageError } from "../exit-codes.js";
import { filesTableRows, matchFileId, shortFileId } from "../files-format.js";
import { table } from "../output.js";
import { resolvePipeline } from "../resolve.js";

/** `dray files <pipeline>`: the files uploaded to a pipeline, newest first, with their load state. */
export async function filesListCommand(ctx: CommandContext, [ref]: string[]): Promise<number> {
  if (!ref) throw new UsageError("missing the pipeline", "dray files <pipeline>");
  const { client, out } = ctx;
  const pipeline = await resolvePipeline(client, ref);
  const files = await collect(client.files.listAll(pipeline.id));
  if (out.json) {
    out.data(files);
    return EXIT.ok;
  }
  if (files.length === 0) {
    out.line(`no files uploaded to ${pipeline.name} yet: \`dray upload ${pipeline.name} <file>\``);
    return EXIT.ok;
  }
  out.line(table(filesTableRows(files)));
  return EXIT.ok;
}

/**
 * `dray files drop <pipeline> <fileId> [--yes]`: DROP FILE, after a confirmation. The id may
 * be the short one `dray files` shows.
 */
export async function filesDropCommand(ctx: CommandContext, [ref, fileRef]: string[]): Promise<number> {
  if (!ref || !fileRef)
    throw new UsageError("missing the pipeline or the file", "dray files drop <pipeline> <fileId>");
  const { client, out } = ctx;
  const pipeline = await resolvePipeline(client, ref);
  const files = await collect(client.files.listAll(pipeline.id));
  const fileId = matchFileId(files, fileRef);
  const file = files.find((f) => f.fileId === fileId)!;
  const go = await confirm({
    yes: Boolean(ctx.flags.yes),
    what: `dropping ${file.filename} (${shortFileId(fileId)}, ${file.state}) from ${pipeline.name} forgets it and its staged bytes; rows it loaded stay in the target, and the same bytes can be uploaded again`,
    question: `Drop ${file.filename}?`,
    retry: `dray files drop ${pipeline.name} ${shortFileId(fileId)} --yes`,
  });
  if (!go) {
    out.error("not dropped");
    return EXIT.usage;
  }
  await client.files.drop(pipeline.id, fileId);
  if (out.json) out.data({ dropped: fileId, filename: file.filename });
  else out.line(`dropped ${file.filename} (${shortFileId(fileId)}) from ${pipeline.name}`);
  return EXIT.ok;
}
