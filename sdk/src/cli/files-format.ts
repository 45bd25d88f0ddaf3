/**
 * Pure formatting of `dray upload` and `dray files`: byte sizes, short file ids, the
 * result line of an upload, the files table and finding a file by a prefix of its id.
 */
import { randomUUID } from "node:crypto";
import type { PipelineFile, UploadResult } from "../client.js";
import { UsageError } from "./exit-codes.js";
import { count } from "./output.js";

/** How many characters of a file id (SHA-256, hex) the CLI shows. */
export const SHORT_FILE_ID_LENGTH = 12;

/** The first characters of a file id, as `dray files` shows it. */
export function shortFileId(fileId: string): string {
  return fileId.slice(0, SHORT_FILE_ID_LENGTH);
}

/**
 * A byte count in binary units, one decimal from KiB up.
 *
 * @example
 * formatBytes(512) // "512 B"
 * formatBytes(1_572_864) // "1.5 MiB"
 */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 1024) return `${Math.max(0, Math.round(Number.isFinite(n) ? n : 0))} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** A publisher token for one `dray upload` call, so that all of its files roll up together. */
export function newPublisherToken(): string {
  return `pub-${randomUUID()}`;
}

/** One uploaded file as `dray upload` reports it. */
export interface UploadReport {
  /** The file as given on the command line. */
  file: string;
  filename: string;
  fileId: string;
  pipelineToken: string;
  state: string;
  /** True when the same bytes were uploaded before (nothing queued). */
  duplicate: boolean;
}

/** The files of an upload answer, as reports: one for a plain file, one per file of a gzip file. */
export function uploadReports(file: string, sentName: string, result: UploadResult): UploadReport[] {
  if ("duplicate" in result) {
    return [
      {
        file,
        filename: sentName,
        fileId: result.fileId,
        pipelineToken: result.pipelineToken,
        state: result.state,
        duplicate: true,
      },
    ];
  }
  if (result.status === "accepted") {
    return result.files.map((f) => ({
      file,
      filename: f.filename,
      fileId: f.fileId,
      pipelineToken: f.pipelineToken,
      state: f.state,
      duplicate: f.duplicate === true,
    }));
  }
  return [
    {
      file,
      filename: result.filename,
      fileId: result.fileId,
      pipelineToken: result.pipelineToken,
      state: result.state,
      duplicate: false,
    },
  ];
}

/**
 * The line `dray upload` prints for one uploaded file.
 *
 * @example
 * uploadLine({ file: "a.csv", filename: "a.csv", fileId: "ab12…", pipelineToken: "pt-1", state: "Unloaded", duplicate: false })
 * // "a.csv  pt-1  Unloaded  ab12…"
 */
export function uploadLine(report: UploadReport): string {
  const state = report.duplicate ? `${report.state} (uploaded before: nothing queued)` : report.state;
  return `${report.filename}  ${report.pipelineToken}  ${state}  ${shortFileId(report.fileId)}`;
}

/** The one-line reason an upload of `file` failed, from the API's status and message. */
export function uploadFailureLine(file: string, status: number, message: string): string {
  if (status === 413) return `${file}: too large (${message})`;
  return `${file}: ${message}`;
}

/** "12 loaded", "10 loaded, 2 rejected", or "—" before the load. */
function rowsOf(f: PipelineFile): string {
  if (f.state === "Unloaded" && f.rowsLoaded === 0 && f.rowsRejected === 0) return "—";
  return f.rowsRejected > 0
    ? `${count(f.rowsLoaded)} loaded, ${count(f.rowsRejected)} rejected`
    : `${count(f.rowsLoaded)} loaded`;
}

/** "2026-05-01 12:00:00" (UTC) of an ISO timestamp. */
export function shortTime(iso: string): string {
  return iso
    .replace("T", " ")
    .replace(/\.\d+Z$/, "")
    .replace(/Z$/, "");
}

/** The rows of the `dray files` table, header first. */
export function filesTableRows(files: readonly PipelineFile[]): string[][] {
  return [
    ["FILE", "FILENAME", "STATE", "ROWS", "UPLOADED", "ERROR"],
    ...files.map((f) => [
      shortFileId(f.fileId),
      f.filename,
      f.state,
      rowsOf(f),
      shortTime(f.uploadedAt),
      f.error ?? "",
    ]),
  ];
}

/** True for a string of hex digits (what a file id or its prefix is). */
function isHex(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const digit = c >= 48 && c <= 57;
    const lower = c >= 97 && c <= 102;
    const upper = c >= 65 && c <= 70;
    if (!digit && !lower && !upper) return false;
  }
  return s.length > 0;
}

/**
 * The file `ref` names: its whole id or a prefix of at least 6 hex digits (what
 * `dray files` shows) that only one file has. Throws a {@link UsageError} otherwise.
 */
export function matchFileId(files: readonly Pick<PipelineFile, "fileId">[], ref: string): string {
  const wanted = ref.trim().toLowerCase();
  if (!isHex(wanted) || wanted.length < 6)
    throw new UsageError(
      `"${ref}" is not a file id`,
      "give the id `dray files <pipeline>` shows (at least 6 hex digits)",
    );
  const matches = files.filter((f) => f.fileId.toLowerCase().startsWith(wanted));
  if (matches.length === 1) return matches[0]!.fileId;
  if (matches.length === 0)
    throw new UsageError(`no file with id ${ref} in this pipeline`, "see `dray files <pipeline>`");
  throw new UsageError(`${matches.length} files have ids starting ${ref}`, "give more of the id");
}
