import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseCopyLine, splitCopyLines } from "../connectors/postgres/copy-text.js";
import { isSealed, openCursor, sealCursor } from "./sealed-cursor.js";
import { loadTransformKey, parseTransformKey, TRANSFORM_KEY_FILE, transformKeyId } from "./transform-key.js";
import { escapeCopyValue, type FieldTransformPlan, processCopyPage } from "./transform-rows.js";

/** A page with `plans` applied, as the connector gets it from processCopyPage. */
const transformCopyText = (
  data: Uint8Array,
  plans: readonly FieldTransformPlan[],
  fieldNames: string[] = [],
) => processCopyPage(data, { transforms: plans, fieldNames }).data;

const rowsOf = (data: Uint8Array) => splitCopyLines(data).map((line) => parseCopyLine(line));

describe("transformCopyText", () => {
  const page = Buffer.from("1\tAda\tkeep\\tme\n2\t\\N\tx\n3\tback\\\\slash\\nline\ty\n");

  it("transforms only the planned fields, keeps the others byte for byte and NULL as NULL", () => {
    const out = transformCopyText(page, [
      { index: 1, field: "name", transformer: "upper", apply: (v) => `${v.toUpperCase()}\t!` },
    ]);
    expect(rowsOf(out)).toEqual([
      ["1", "ADA\t!", "keep\tme"],
      ["2", null, "x"],
      ["3", "BACK\\SLASH\nLINE\t!", "y"],
    ]);
    expect(out.toString()).toContain("keep\\tme");
  });

  it("writes NULL when a transformer answers null, and leaves the page alone without plans", () => {
    const out = transformCopyText(page, [{ index: 0, field: "id", transformer: "null", apply: () => null }]);
    expect(rowsOf(out).map((r) => r[0])).toEqual([null, null, null]);
    expect(transformCopyText(page, [])).toEqual(page);
  });

  it("fails a value without quoting it", () => {
    const secret = "canary-7f3a";
    const page2 = Buffer.from(`1\t${secret}\n`);
    let message = "";
    try {
      transformCopyText(page2, [
        {
          index: 1,
          field: "email",
          transformer: "json_path",
          apply: (v) => {
            throw new Error(`bad value ${v}`);
          },
        },
      ]);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('field "email" with json_path failed on line 1');
    expect(message).not.toContain(secret);
  });

  it("escapes backslash, tab, newline and carriage return", () => {
    expect(escapeCopyValue("a\\b\tc\nd\re").toString()).toBe("a\\\\b\\tc\\nd\\re");
    expect(escapeCopyValue("plain").toString()).toBe("plain");
  });
});

describe("sealed cursors", () => {
  const key = new Uint8Array(32).fill(7);

  it("round-trip, hide the values and refuse another key", () => {
    const sealed = sealCursor(key, ["ada@example.com", "42"]);
    expect(isSealed(sealed)).toBe(true);
    expect(sealed.join("")).not.toContain("ada");
    expect(openCursor(key, sealed)).toEqual(["ada@example.com", "42"]);
    expect(() => openCursor(new Uint8Array(32).fill(8), sealed)).toThrow(/another transform key/);
    expect(isSealed(["42"])).toBe(false);
  });
});

describe("the transform key", () => {
  const dir = mkdtempSync(join(tmpdir(), "dray-transform-key-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("is created once in the state directory, mode 0600, and read back", async () => {
    const first = await loadTransformKey(join(dir, "state"));
    const again = await loadTransformKey(join(dir, "state"));
    expect(Buffer.from(again.key)).toEqual(Buffer.from(first.key));
    expect(first.id).toBe(transformKeyId(first.key));
    expect(first.id).toHaveLength(16);
    const file = join(dir, "state", TRANSFORM_KEY_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, "utf8")).not.toContain(first.id);
  });

  it("comes from the environment as hex or base64, and a malformed one is refused", async () => {
    const hex = "ab".repeat(32);
    const fromHex = await loadTransformKey(join(dir, "unused"), hex);
    expect(Buffer.from(fromHex.key).toString("hex")).toBe(hex);
    expect(Buffer.from(parseTransformKey(Buffer.from(fromHex.key).toString("base64")))).toEqual(
      Buffer.from(fromHex.key),
    );
    expect(() => parseTransformKey("too-short")).toThrow(/32 bytes/);
  });
});

describe("the agent's transformers", () => {
  it("implement every transformer of the catalogue (template is filled per row by the connector)", async () => {
    const { TRANSFORMERS } = await import("@dray/common");
    await import("./index.js");
    const { TRANSFORMER_REGISTRY } = await import("./registry.js");
    const missing = TRANSFORMERS.map((t) => t.name).filter(
      (name) => name !== "template" && !TRANSFORMER_REGISTRY.has(name),
    );
    expect(missing).toEqual([]);
  });
});
