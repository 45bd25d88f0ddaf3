import { describe, expect, it } from "vitest";
import type { PipelineFile } from "../client.js";
import { UsageError } from "./exit-codes.js";
import {
  filesTableRows,
  formatBytes,
  matchFileId,
  newPublisherToken,
  shortFileId,
  uploadFailureLine,
  uploadLine,
  uploadReports,
} from "./files-format.js";

const ID_A = `3f2a9c1b7e04${"a".repeat(52)}`;
const ID_B = `3f2a9c1b7e99${"b".repeat(52)}`;
const ID_C = `77${"c".repeat(62)}`;

function file(overrides: Partial<PipelineFile>): PipelineFile {
  return {
    fileId: ID_A,
    filename: "orders.csv",
    format: "csv",
    compressed: false,
    sizeBytes: 120,
    state: "Unloaded",
    error: null,
    pipelineToken: "pt-1",
    publisherToken: null,
    rowsLoaded: 0,
    rowsRejected: 0,
    uploadedAt: "2026-05-01T12:00:00.000Z",
    finishedAt: null,
    ...overrides,
  };
}

describe("formatBytes", () => {
  it("writes bytes, then binary units with one decimal", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1023)).toBe("1023 B");
    expect(formatBytes(1024)).toBe("1.0 KiB");
    expect(formatBytes(1_572_864)).toBe("1.5 MiB");
    expect(formatBytes(3 * 1024 ** 3)).toBe("3.0 GiB");
    expect(formatBytes(Number.NaN)).toBe("0 B");
  });
});

describe("upload results", () => {
  it("reports a plain file, each file of a gzip file and a duplicate", () => {
    expect(
      uploadReports("data/a.csv", "a.csv", {
        pipelineToken: "pt-a",
        status: "INITIALIZED",
        fileId: ID_A,
        filename: "a.csv",
        state: "Unloaded",
      }),
    ).toEqual([
      {
        file: "data/a.csv",
        filename: "a.csv",
        fileId: ID_A,
        pipelineToken: "pt-a",
        state: "Unloaded",
        duplicate: false,
      },
    ]);
    const archive = uploadReports("b.csv.gz", "b.csv.gz", {
      status: "accepted",
      publisherToken: "pub-1",
      files: [{ filename: "b.csv", fileId: ID_B, pipelineToken: "pt-b", state: "Unloaded" }],
    });
    expect(archive.map((r) => [r.filename, r.pipelineToken, r.duplicate])).toEqual([
      ["b.csv", "pt-b", false],
    ]);
    const duplicate = uploadReports("a.csv", "a.csv", {
      pipelineToken: "pt-a",
      status: "COMPLETED",
      fileId: ID_A,
      state: "Loaded",
      duplicate: true,
    });
    expect(uploadLine(duplicate[0]!)).toBe(
      "a.csv  pt-a  Loaded (uploaded before: nothing queued)  3f2a9c1b7e04",
    );
    expect(uploadLine(archive[0]!)).toBe("b.csv  pt-b  Unloaded  3f2a9c1b7e99");
  });

  it("says a refused file was too large on 413", () => {
    expect(uploadFailureLine("big.csv", 413, "the file is larger than 1 MiB")).toBe(
      "big.csv: too large (the file is larger than 1 MiB)",
    );
    expect(uploadFailureLine("x.csv", 400, "the file is empty")).toBe("x.csv: the file is empty");
  });

  it("makes a different publisher token for every call", () => {
    const a = newPublisherToken();
    expect(a).toMatch(/^pub-[0-9a-f-]{36}$/);
    expect(newPublisherToken()).not.toBe(a);
  });
});

describe("files table", () => {
  it("shows a short id, name, state, rows, upload time and error", () => {
    const rows = filesTableRows([
      file({}),
      file({ fileId: ID_B, state: "Loaded", rowsLoaded: 1200, rowsRejected: 3 }),
      file({ fileId: ID_C, state: "Skipped", error: "line 2: 3 fields, expected 4" }),
    ]);
    expect(rows[0]).toEqual(["FILE", "FILENAME", "STATE", "ROWS", "UPLOADED", "ERROR"]);
    expect(rows[1]).toEqual(["3f2a9c1b7e04", "orders.csv", "Unloaded", "—", "2026-05-01 12:00:00", ""]);
    expect(rows[2]![3]).toBe("1,200 loaded, 3 rejected");
    expect(rows[3]![3]).toBe("0 loaded");
    expect(rows[3]![5]).toBe("line 2: 3 fields, expected 4");
    expect(shortFileId(ID_C)).toHaveLength(12);
  });
});

describe("matchFileId", () => {
  const files = [{ fileId: ID_A }, { fileId: ID_B }, { fileId: ID_C }];

  it("takes the whole id or a prefix only one file has, in any case", () => {
    expect(matchFileId(files, ID_B)).toBe(ID_B);
    expect(matchFileId(files, "3F2A9C1B7E04")).toBe(ID_A);
    expect(matchFileId(files, "77cccc")).toBe(ID_C);
  });

  it("refuses an ambiguous, unknown, short or non-hex id with a usage error", () => {
    expect(() => matchFileId(files, "3f2a9c")).toThrow(/2 files have ids starting 3f2a9c/);
    expect(() => matchFileId(files, "abcdef")).toThrow(/no file with id abcdef/);
    expect(() => matchFileId(files, "3f2")).toThrow(UsageError);
    expect(() => matchFileId(files, "../../etc")).toThrow(/is not a file id/);
  });
});
