import { describe, expect, it } from "vitest";
import { loadAgentConfig } from "./config.js";

const base = {
  DRAY_CONTROL_PLANE_URL: "http://127.0.0.1:7070",
  DRAY_AGENT_DATABASE_URL: "postgres://postgres@127.0.0.1:5432/app",
};

describe("loadAgentConfig", () => {
  it("resolves defaults and the gateway address", () => {
    const c = loadAgentConfig(base);
    expect(c.controlPlane).toEqual({ address: "127.0.0.1:7070", tls: false });
    expect(c.stateDir).toBe("./.dray-agent");
    expect(c.maxTasks).toBe(4);
    expect(
      loadAgentConfig({ ...base, DRAY_CONTROL_PLANE_URL: "https://cp.example:443" }).controlPlane.tls,
    ).toBe(true);
  });
  it("reads and loads in bulk with COPY unless told otherwise", () => {
    expect(loadAgentConfig(base)).toMatchObject({ bulkLoad: "copy", bulkRead: "copy" });
    expect(loadAgentConfig({ ...base, DRAY_AGENT_BULK_READ: "select" }).bulkRead).toBe("select");
    expect(() => loadAgentConfig({ ...base, DRAY_AGENT_BULK_READ: "cursor" })).toThrow(
      /DRAY_AGENT_BULK_READ/,
    );
  });
  it("lists every problem by variable name", () => {
    expect(() => loadAgentConfig({ DRAY_CONTROL_PLANE_URL: "ftp://x" })).toThrow(
      /DRAY_CONTROL_PLANE_URL[\s\S]*DRAY_AGENT_DATABASE_URL/,
    );
    expect(() => loadAgentConfig({ ...base, DRAY_AGENT_TLS_CERT_FILE: "/c.pem" })).toThrow(/set together/);
  });
});
