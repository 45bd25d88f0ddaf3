import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "./config.js";

const defaults = { replicaId: "test:1" };

describe("loadConfig", () => {
  it("keeps two writes of an entity in flight unless told otherwise", () => {
    expect(loadConfig({}, defaults).writesInFlight).toBe(2);
    expect(loadConfig({ DRAY_EXECUTION_WRITES_IN_FLIGHT: "1" }, defaults).writesInFlight).toBe(1);
  });
  it("refuses a short metrics token and an unknown log format, naming the variable", () => {
    expect(() => loadConfig({ DRAY_METRICS_TOKEN: "short" }, defaults)).toThrow(/DRAY_METRICS_TOKEN/);
    expect(() => loadConfig({ DRAY_LOG_FORMAT: "yaml" }, defaults)).toThrow(/DRAY_LOG_FORMAT/);
    const config = loadConfig({ DRAY_METRICS_TOKEN: "m".repeat(24), DRAY_LOG_FORMAT: "json" }, defaults);
    expect([config.metricsToken, config.logFormat]).toEqual(["m".repeat(24), "json"]);
    expect(loadConfig({}, defaults).logFormat).toBeUndefined();
  });
  it("refuses a writes-in-flight setting out of range, naming the variable", () => {
    for (const bad of ["0", "9", "two"])
      expect(() => loadConfig({ DRAY_EXECUTION_WRITES_IN_FLIGHT: bad }, defaults)).toThrow(
        /DRAY_EXECUTION_WRITES_IN_FLIGHT/,
      );
  });
  it("bounds uploads at 5 GiB and keeps files 90 days unless told otherwise", () => {
    const config = loadConfig({}, defaults);
    expect([config.uploadMaxBytes, config.fileRetentionDays]).toEqual([5 * 1024 ** 3, 90]);
    const set = loadConfig({ DRAY_UPLOAD_MAX_BYTES: "1048576", DRAY_FILE_RETENTION_DAYS: "7" }, defaults);
    expect([set.uploadMaxBytes, set.fileRetentionDays]).toEqual([1_048_576, 7]);
  });
  it("refuses an upload limit or a retention out of range, naming the variable", () => {
    for (const bad of ["0", "-1", "1.5", "big"])
      expect(() => loadConfig({ DRAY_UPLOAD_MAX_BYTES: bad }, defaults)).toThrow(/DRAY_UPLOAD_MAX_BYTES/);
    for (const bad of ["0", "36501", "ninety"])
      expect(() => loadConfig({ DRAY_FILE_RETENTION_DAYS: bad }, defaults)).toThrow(
        /DRAY_FILE_RETENTION_DAYS/,
      );
  });
});

describe("loadConfig: TLS files", () => {
  const dir = mkdtempSync(join(tmpdir(), "dray-config-"));
  const file = (name: string) => {
    const path = join(dir, name);
    writeFileSync(path, "pem");
    return path;
  };
  const cert = file("cert.pem");
  const key = file("key.pem");
  const ca = file("ca.pem");

  it("reads the gateway's client CA and the HTTP API's certificate pair", () => {
    const config = loadConfig(
      {
        DRAY_GRPC_TLS_CERT_FILE: cert,
        DRAY_GRPC_TLS_KEY_FILE: key,
        DRAY_GRPC_TLS_CLIENT_CA_FILE: ca,
        DRAY_HTTP_TLS_CERT_FILE: cert,
        DRAY_HTTP_TLS_KEY_FILE: key,
      },
      defaults,
    );
    expect(config.grpcTls).toEqual({ certFile: cert, keyFile: key, clientCaFile: ca });
    expect(config.httpTls).toEqual({ certFile: cert, keyFile: key });
    expect(loadConfig({}, defaults)).toMatchObject({ grpcTls: undefined, httpTls: undefined });
  });
  it("refuses half a pair, a client CA without TLS and missing files, naming each variable", () => {
    expect(() => loadConfig({ DRAY_HTTP_TLS_CERT_FILE: cert }, defaults)).toThrow(
      /DRAY_HTTP_TLS_CERT_FILE and DRAY_HTTP_TLS_KEY_FILE must be set together/,
    );
    expect(() => loadConfig({ DRAY_GRPC_TLS_KEY_FILE: key }, defaults)).toThrow(
      /DRAY_GRPC_TLS_CERT_FILE and DRAY_GRPC_TLS_KEY_FILE must be set together/,
    );
    expect(() => loadConfig({ DRAY_GRPC_TLS_CLIENT_CA_FILE: ca }, defaults)).toThrow(
      /DRAY_GRPC_TLS_CLIENT_CA_FILE: needs DRAY_GRPC_TLS_CERT_FILE/,
    );
    const missing = join(dir, "missing.pem");
    expect(() =>
      loadConfig({ DRAY_HTTP_TLS_CERT_FILE: missing, DRAY_HTTP_TLS_KEY_FILE: dir }, defaults),
    ).toThrow(
      /DRAY_HTTP_TLS_CERT_FILE: cannot read .*missing\.pem \(no such file\)\s+DRAY_HTTP_TLS_KEY_FILE: .* is not a file/,
    );
  });
});

describe("loadConfig: binding beyond loopback", () => {
  it("refuses a non-loopback address without TLS, unless explicitly allowed", () => {
    expect(() => loadConfig({ DRAY_BIND_HOST: "0.0.0.0" }, defaults)).toThrow(
      /DRAY_BIND_HOST: 0\.0\.0\.0 .* need TLS/,
    );
    expect(
      loadConfig({ DRAY_BIND_HOST: "0.0.0.0", DRAY_ALLOW_INSECURE_BIND: "true" }, defaults).bindHost,
    ).toBe("0.0.0.0");
    for (const host of ["127.0.0.1", "localhost", "::1"])
      expect(loadConfig({ DRAY_BIND_HOST: host }, defaults).bindHost).toBe(host);
  });
});
