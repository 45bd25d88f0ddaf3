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
  it("takes a comma-separated list of gateways, URLs or bare host:port, in order", () => {
    const c = loadAgentConfig({
      ...base,
      DRAY_CONTROL_PLANE_URL:
        "http://cp-1:7070 ,cp-2:7071,  grpcs://cp-3.example:7072/ , 10.0.0.4:7073,[::1]:7074",
    });
    expect(c.controlPlanes).toEqual([
      { address: "cp-1:7070", tls: false },
      { address: "cp-2:7071", tls: false },
      { address: "cp-3.example:7072", tls: true },
      { address: "10.0.0.4:7073", tls: false },
      { address: "[::1]:7074", tls: false },
    ]);
    expect(c.controlPlane).toEqual({ address: "cp-1:7070", tls: false });
    expect(loadAgentConfig({ ...base, DRAY_CONTROL_PLANE_URL: "cp-1:7070" }).controlPlanes).toEqual([
      { address: "cp-1:7070", tls: false },
    ]);
    expect(
      loadAgentConfig({ ...base, DRAY_CONTROL_PLANE_URL: "grpc://cp-1, https://cp-2" }).controlPlanes,
    ).toEqual([
      { address: "cp-1:80", tls: false },
      { address: "cp-2:443", tls: true },
    ]);
  });
  it("dials a bare host:port over TLS when the agent has TLS files, as a URL's scheme says otherwise", () => {
    const c = loadAgentConfig({
      ...base,
      DRAY_CONTROL_PLANE_URL: "cp-1:7070, http://cp-2:7070, https://cp-3:7070",
      DRAY_AGENT_TLS_CA_FILE: "/ca.pem",
    });
    expect(c.controlPlanes.map((g) => g.tls)).toEqual([true, false, true]);
    const mtls = loadAgentConfig({
      ...base,
      DRAY_CONTROL_PLANE_URL: "cp-1:7070",
      DRAY_AGENT_TLS_CERT_FILE: "/c.pem",
      DRAY_AGENT_TLS_KEY_FILE: "/k.pem",
    });
    expect(mtls.controlPlanes).toEqual([{ address: "cp-1:7070", tls: true }]);
  });
  it("names the bad element of the gateway list and shows an example", () => {
    const bad = (value: string) => () => loadAgentConfig({ ...base, DRAY_CONTROL_PLANE_URL: value });
    expect(bad("http://cp-1:7070, ftp://cp-2:7070")).toThrow(
      'invalid agent configuration:\n  DRAY_CONTROL_PLANE_URL: element 2 of 2, "ftp://cp-2:7070", is not a gateway address: ' +
        "use http://host:port, https://host:port (TLS) or host:port, separated by commas (e.g. http://cp-1:7070, cp-2:7070)",
    );
    expect(bad("cp-1:7070,,cp-2:7070")).toThrow(
      "DRAY_CONTROL_PLANE_URL: element 2 of 3 is empty: list gateway addresses separated by commas (e.g. http://cp-1:7070, cp-2:7070)",
    );
    expect(bad("cp-1:7070, ")).toThrow(/element 2 of 2 is empty/);
    expect(bad("")).toThrow(/DRAY_CONTROL_PLANE_URL: the address is empty/);
    // A bare host needs its port; ports are 1-65535; no path, credentials or spaces inside an element.
    for (const element of [
      "cp-1",
      "cp-1:0",
      "cp-1:65536",
      "cp-1:70x",
      "http://cp-1:7070/api",
      "http://user:secret@cp-1:7070",
      "cp 1:7070",
      "[::1:7070",
      "::1:7070",
    ]) {
      expect(bad(`cp-0:7070, ${element}`)).toThrow(`element 2 of 2, "${element}", is not a gateway address`);
    }
  });
  it("reads and loads in bulk with COPY unless told otherwise", () => {
    expect(loadAgentConfig(base)).toMatchObject({ bulkLoad: "copy", bulkRead: "copy" });
    expect(loadAgentConfig({ ...base, DRAY_AGENT_BULK_READ: "select" }).bulkRead).toBe("select");
    expect(() => loadAgentConfig({ ...base, DRAY_AGENT_BULK_READ: "cursor" })).toThrow(
      /DRAY_AGENT_BULK_READ/,
    );
  });
  it("holds run snapshots unless told otherwise", () => {
    expect(loadAgentConfig(base).runSnapshots).toBe(true);
    expect(loadAgentConfig({ ...base, DRAY_AGENT_RUN_SNAPSHOTS: "off" }).runSnapshots).toBe(false);
    expect(() => loadAgentConfig({ ...base, DRAY_AGENT_RUN_SNAPSHOTS: "no" })).toThrow(
      /DRAY_AGENT_RUN_SNAPSHOTS/,
    );
  });

  it("lists every problem by variable name", () => {
    expect(() => loadAgentConfig({ DRAY_CONTROL_PLANE_URL: "ftp://x" })).toThrow(
      /DRAY_CONTROL_PLANE_URL[\s\S]*DRAY_AGENT_DATABASE_URL/,
    );
    expect(() => loadAgentConfig({ ...base, DRAY_AGENT_TLS_CERT_FILE: "/c.pem" })).toThrow(/set together/);
  });
});
