/**
 * Archives among uploads, the entry point: the files of a tar to load, each
 * named by a label (its normalised path inside the archive) and filtered
 * (directories, links, hidden and metadata entries, empty files skipped; at
 * most 1,000 files). Entry paths are labels only (never written to disk); a
 * path that leaves the archive (`..`, absolute) refuses the archive. Reading
 * the tar is `tar-stream-reader.ts`; recognising an upload is
 * `upload-sniff.ts`; decompressing it is `gunzip-pieces.ts`.
 *
 * @example
 * const sniffed = await sniffUpload(part.body);
 * if (sniffed.kind === "tar") {
 *   for await (const file of archiveFiles(sniffed.gzip ? gunzipPieces(sniffed.bytes) : sniffed.bytes)) {
 *     await stageUpload(db, file.body, { maxBytes });
 *   }
 * }
 */
import { DrayError } from "@dray/common";
import type { BytePieces } from "./byte-pieces.js";
import { readTar } from "./tar-stream-reader.js";

/** Most files (loadable entries) one archive may hold. */
export const MAX_ARCHIVE_FILES = 1_000;

/** Longest entry label, in characters. */
const MAX_LABEL_LENGTH = 255;

/** An entry of an archive to load: a regular, visible, non-empty file. */
export interface ArchiveFile {
  /** Its path inside the archive, normalised (no `.` segments, `/` separated, control characters dropped). */
  label: string;
  size: number;
  /** Its bytes; read them before asking for the next file. */
  body: AsyncIterable<Uint8Array>;
}

/** True for a character kept in a label (no C0 controls, no DEL). */
function isLabelChar(code: number): boolean {
  return code >= 32 && code !== 127;
}

/**
 * An entry path as a label: `/`-separated (a `\` separates too), `.` and
 * empty segments dropped, control characters dropped, at most 255
 * characters; `hidden` when a segment starts with `.` (`.DS_Store`,
 * `._orders.csv`) or is `__MACOSX`. Throws `invalid_argument` for a path that
 * leaves the archive (a `..` segment, or absolute).
 *
 * @example
 * entryLabel("./data/orders.csv") // { label: "data/orders.csv", hidden: false }
 * entryLabel("__MACOSX/data/._orders.csv").hidden // true
 */
export function entryLabel(path: string): { label: string; hidden: boolean } {
  const shown = JSON.stringify(path.length > 200 ? `${path.slice(0, 200)}…` : path);
  if (path.startsWith("/") || path.startsWith("\\")) {
    throw new DrayError("invalid_argument", `the archive's entry ${shown} has an absolute path: refused`);
  }
  const segments: string[] = [];
  let hidden = false;
  let segment = "";
  const close = () => {
    if (segment === ".." || segment.trim() === "..") {
      throw new DrayError(
        "invalid_argument",
        `the archive's entry ${shown} has a path that leaves the archive (..): refused`,
      );
    }
    if (segment.length > 0 && segment !== ".") {
      if (segment.startsWith(".") || segment === "__MACOSX") hidden = true;
      segments.push(segment);
    }
    segment = "";
  };
  for (const ch of path) {
    if (ch === "/" || ch === "\\") close();
    else if (isLabelChar(ch.codePointAt(0)!)) segment += ch;
  }
  close();
  const label = Array.from(segments.join("/")).slice(0, MAX_LABEL_LENGTH).join("");
  return { label: label.length > 0 ? label : "entry", hidden };
}

/** Options of {@link archiveFiles}. */
export interface ArchiveFilesOptions {
  /** Most files; past it `invalid_argument` is thrown. @default 1,000 */
  maxFiles?: number;
}

/**
 * The files of a tar to load: regular, non-empty entries whose path is not
 * hidden or metadata (see {@link entryLabel}); directories, links, devices,
 * empty and hidden files are skipped. Throws `invalid_argument` past
 * `maxFiles` files, for a path that leaves the archive, for a damaged tar,
 * and at the end when the archive held no file to load.
 */
export async function* archiveFiles(
  tar: BytePieces,
  options: ArchiveFilesOptions = {},
): AsyncGenerator<ArchiveFile> {
  const maxFiles = options.maxFiles ?? MAX_ARCHIVE_FILES;
  let files = 0;
  for await (const entry of readTar(tar)) {
    if (entry.type !== "file") continue;
    const { label, hidden } = entryLabel(entry.path);
    if (hidden || entry.size === 0) continue;
    files++;
    if (files > maxFiles) {
      throw new DrayError(
        "invalid_argument",
        `the archive holds more than ${maxFiles} files: upload it in smaller archives`,
        { details: { maxFiles } },
      );
    }
    yield { label, size: entry.size, body: entry.body };
  }
  if (files === 0) {
    throw new DrayError(
      "invalid_argument",
      "the archive holds no file to load (directories, links, hidden and empty files are skipped)",
    );
  }
}
