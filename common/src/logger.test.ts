import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { chooseLogFormat, createPinoLogger } from "./logger.js";

const dir = mkdtempSync(join(tmpdir(), "dray-logger-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("chooseLogFormat", () => {
  it("is pretty and coloured on a terminal, JSON elsewhere", () => {
    expect(chooseLogFormat({ isTTY: true, env: {} })).toEqual({ format: "pretty", colour: true });
    expect(chooseLogFormat({ isTTY: false, env: {} })).toEqual({ format: "json", colour: false });
  });

  it("honours NO_COLOR (any non-empty value) on a terminal", () => {
    expect(chooseLogFormat({ isTTY: true, env: { NO_COLOR: "1" } })).toEqual({
      format: "pretty",
      colour: false,
    });
    expect(chooseLogFormat({ isTTY: true, env: { NO_COLOR: "" } })).toEqual({
      format: "pretty",
      colour: true,
    });
  });

  it("lets DRAY_LOG_FORMAT override the guess, without colour off a terminal, and ignores other values", () => {
    expect(chooseLogFormat({ isTTY: true, env: { DRAY_LOG_FORMAT: "json" } })).toEqual({
      format: "json",
      colour: false,
    });
    expect(chooseLogFormat({ isTTY: false, env: { DRAY_LOG_FORMAT: "Pretty" } })).toEqual({
      format: "pretty",
      colour: false,
    });
    expect(chooseLogFormat({ isTTY: false, env: { DRAY_LOG_FORMAT: "yaml" } }).format).toBe("json");
    expect(chooseLogFormat({ isTTY: true, env: { DRAY_LOG_FORMAT: "yaml" } }).format).toBe("pretty");
  });
});

describe("createPinoLogger", () => {
  it("writes JSON lines with secrets redacted to a file destination by default", () => {
    const file = join(dir, "json.log");
    const logger = createPinoLogger({ name: "dray-test", destination: file }).child({ agent: "a1" });
    logger.info("paired", { token: "dray_secret_value", rows: 3 });
    logger.debug("not at info");
    const lines = readFileSync(file, "utf8").trim().split("\n");
    expect(lines).toHaveLength(1);
    const entry = JSON.parse(lines[0]!);
    expect(entry).toMatchObject({
      name: "dray-test",
      agent: "a1",
      msg: "paired",
      rows: 3,
      token: "[redacted]",
    });
  });

  it("writes one human-readable line per entry in the pretty format", () => {
    const file = join(dir, "pretty.log");
    const logger = createPinoLogger({ name: "dray-test", destination: file, format: "pretty" });
    logger.warn("agent away", { password: "hunter2", environment: "qa" });
    const text = readFileSync(file, "utf8");
    const lines = text.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(() => JSON.parse(lines[0]!)).toThrow();
    expect(lines[0]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] WARN \(dray-test\): agent away /);
    expect(lines[0]).toContain('"environment":"qa"');
    expect(text).not.toContain("hunter2");
    // No colour codes in a file.
    expect(text).not.toContain("\u001b[");
  });
});
