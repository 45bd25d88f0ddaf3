import { DrayError } from "@dray/common";
import { describe, expect, it } from "vitest";
import { formatOfFilename, isGzip, validateFileSettings } from "./file-settings.js";

function issuesOf(input: unknown): { path: string; message: string }[] {
  try {
    validateFileSettings(input);
  } catch (error) {
    expect(error).toBeInstanceOf(DrayError);
    expect((error as DrayError).code).toBe("invalid_argument");
    return ((error as DrayError).details as { issues: { path: string; message: string }[] }).issues;
  }
  throw new Error("expected validateFileSettings to throw");
}

describe("validateFileSettings", () => {
  it("fills the CSV defaults", () => {
    expect(validateFileSettings({ format: "csv" })).toEqual({ format: "csv", delimiter: ",", quote: '"' });
    expect(validateFileSettings({ format: "ndjson" })).toEqual({
      format: "ndjson",
      delimiter: ",",
      quote: '"',
    });
  });

  it("keeps a custom delimiter, quote and mapping", () => {
    expect(
      validateFileSettings({
        format: "csv",
        delimiter: ";",
        quote: "'",
        fieldMapping: { "Customer ID": "id" },
      }),
    ).toEqual({ format: "csv", delimiter: ";", quote: "'", fieldMapping: { "Customer ID": "id" } });
    expect(validateFileSettings({ format: "csv", delimiter: "\t" }).delimiter).toBe("\t");
  });

  it("requires a known format", () => {
    expect(issuesOf({})).toEqual([{ path: "format", message: expect.stringContaining("is required") }]);
    expect(issuesOf({ format: "xml" })).toEqual([
      { path: "format", message: expect.stringContaining('"csv"') },
    ]);
    expect(issuesOf(null)).toEqual([{ path: "", message: "must be an object" }]);
    expect(issuesOf([])).toEqual([{ path: "", message: "must be an object" }]);
  });

  it("refuses bad delimiters and quotes", () => {
    expect(issuesOf({ format: "csv", delimiter: ";;" })[0]).toMatchObject({ path: "delimiter" });
    expect(issuesOf({ format: "csv", delimiter: "" })[0]).toMatchObject({ path: "delimiter" });
    expect(issuesOf({ format: "csv", delimiter: "\n" })[0]).toMatchObject({ path: "delimiter" });
    expect(issuesOf({ format: "csv", delimiter: "\0" })[0]).toMatchObject({ path: "delimiter" });
    expect(issuesOf({ format: "csv", delimiter: 1 })[0]).toMatchObject({ path: "delimiter" });
    expect(issuesOf({ format: "csv", delimiter: '"' })).toEqual([
      { path: "delimiter", message: expect.stringContaining("quote") },
    ]);
    expect(issuesOf({ format: "csv", quote: "\r" })[0]).toMatchObject({ path: "quote" });
    expect(issuesOf({ format: "csv", delimiter: "'", quote: "'" })[0]).toMatchObject({ path: "delimiter" });
  });

  it("refuses bad mappings and unknown settings, naming every field", () => {
    expect(issuesOf({ format: "csv", fieldMapping: [] })[0]).toMatchObject({ path: "fieldMapping" });
    expect(issuesOf({ format: "csv", fieldMapping: {} })[0]).toMatchObject({ path: "fieldMapping" });
    expect(issuesOf({ format: "csv", fieldMapping: { a: "" } })[0]).toMatchObject({ path: "fieldMapping.a" });
    expect(issuesOf({ format: "csv", fieldMapping: { a: 3 } })[0]).toMatchObject({ path: "fieldMapping.a" });
    expect(issuesOf({ format: "csv", fieldMapping: { a: "x", b: "x" } })).toEqual([
      { path: "fieldMapping.b", message: expect.stringContaining('"x"') },
    ]);
    const issues = issuesOf({ format: "tsv", delimiter: "ab", header: true });
    expect(issues.map((i) => i.path).sort()).toEqual(["delimiter", "format", "header"]);
    try {
      validateFileSettings({ format: "tsv", delimiter: "ab" });
    } catch (error) {
      expect((error as Error).message).toContain("format");
      expect((error as Error).message).toContain("delimiter");
    }
  });
});

describe("formatOfFilename", () => {
  it("guesses from the extension, gzip or not", () => {
    expect(formatOfFilename("orders.csv")).toBe("csv");
    expect(formatOfFilename("Orders.CSV.GZ")).toBe("csv");
    expect(formatOfFilename("events.ndjson")).toBe("ndjson");
    expect(formatOfFilename("events.jsonl.gz")).toBe("ndjson");
    expect(formatOfFilename("events.json")).toBe("ndjson");
    expect(formatOfFilename("events.txt")).toBeNull();
    expect(formatOfFilename("csv")).toBeNull();
    expect(formatOfFilename("data.gz")).toBeNull();
  });
});

describe("isGzip", () => {
  it("checks the magic number", () => {
    expect(isGzip(new Uint8Array([0x1f, 0x8b, 0x08]))).toBe(true);
    expect(isGzip(new Uint8Array([0x1f]))).toBe(false);
    expect(isGzip(Buffer.from("id,name\n"))).toBe(false);
  });
});
