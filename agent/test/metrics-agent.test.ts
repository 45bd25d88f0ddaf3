/**
 * The agent's metrics without a database: the instrumented connector counts
 * and times each operation by kind and outcome and passes everything else
 * through untouched, and the metrics server answers GET /metrics only.
 * (test/metrics-copy.test.ts scrapes a real agent process during a copy.)
 */
import type { AddressInfo } from "node:net";
import { DrayError } from "@dray/common";
import { describe, expect, it } from "vitest";
import {
  havePromtool,
  parseExposition,
  promtoolCheck,
  sampleSum,
} from "../../control-plane/test/metrics-exposition.js";
import { loadAgentConfig } from "../src/config.js";
import type { Connector } from "../src/connector.js";
import { createAgentMetrics, outcomeOf, serveAgentMetrics } from "../src/metrics.js";

/** A connector whose operations answer from a script; anything not scripted is unused here. */
function fakeConnector(closed: { n: number }): Connector {
  return {
    platform: "postgres",
    testConnection: async () => ({ databaseLatencyMs: 1, serverVersion: "15", databaseName: "db" }),
    readBatch: async () => ({
      rows: { encoding: "copy_text", fields: ["id"], rowCount: 7, data: new Uint8Array() },
      last: null,
      done: true,
    }),
    writeBatch: async (request: { batchId: string }) => {
      if (request.batchId === "fail") throw new DrayError("internal", "boom");
      if (request.batchId === "cancel") throw new DrayError("cancelled", "stopped");
      return {
        alreadyCommitted: request.batchId === "again",
        created: 3,
        updated: 2,
        rejected: 0,
        rejectedRecords: [],
      };
    },
    close: async () => {
      closed.n++;
    },
  } as unknown as Connector;
}

describe("agent metrics", () => {
  it("counts operations by kind and outcome, times them and counts rows", async () => {
    const metrics = createAgentMetrics();
    const closed = { n: 0 };
    const c = metrics.instrument(fakeConnector(closed));
    const signal = new AbortController().signal;
    await c.testConnection(signal);
    await c.readBatch({} as never, signal);
    await c.writeBatch({ batchId: "ok" } as never, signal);
    await c.writeBatch({ batchId: "again" } as never, signal);
    await expect(c.writeBatch({ batchId: "fail" } as never, signal)).rejects.toThrow("boom");
    await expect(c.writeBatch({ batchId: "cancel" } as never, signal)).rejects.toThrow("stopped");
    await c.close();
    expect(closed.n).toBe(1);
    expect(c.platform).toBe("postgres");

    const text = await metrics.registry.metrics();
    const f = parseExposition(text);
    const ops = "dray_agent_operations_total";
    expect(sampleSum(f, ops, { kind: "testConnection", outcome: "ok" })).toBe(1);
    expect(sampleSum(f, ops, { kind: "readBatch", outcome: "ok" })).toBe(1);
    expect(sampleSum(f, ops, { kind: "writeBatch", outcome: "ok" })).toBe(2);
    expect(sampleSum(f, ops, { kind: "writeBatch", outcome: "error" })).toBe(1);
    expect(sampleSum(f, ops, { kind: "writeBatch", outcome: "cancelled" })).toBe(1);
    expect(sampleSum(f, "dray_agent_operation_duration_seconds_count", { kind: "writeBatch" })).toBe(4);
    expect(sampleSum(f, "dray_agent_rows_read_total")).toBe(7);
    // The replay of a committed batch ("again") wrote nothing now.
    expect(sampleSum(f, "dray_agent_rows_written_total")).toBe(5);
    expect(f.has("process_cpu_user_seconds_total")).toBe(true);
    expect(f.has("nodejs_heap_size_used_bytes")).toBe(true);
    if (havePromtool()) expect(promtoolCheck(text).problems).toEqual([]);
  });

  it("tells cancelled operations from failed ones", () => {
    expect(outcomeOf(new DrayError("cancelled", "x"))).toBe("cancelled");
    expect(outcomeOf(new DrayError("deadline_exceeded", "x"))).toBe("cancelled");
    expect(outcomeOf(Object.assign(new Error("x"), { name: "AbortError" }))).toBe("cancelled");
    expect(outcomeOf(new DrayError("unavailable", "x"))).toBe("error");
    expect(outcomeOf("x")).toBe("error");
  });

  it("serves GET /metrics and nothing else", async () => {
    const metrics = createAgentMetrics();
    const server = await serveAgentMetrics(metrics.registry, "127.0.0.1", 0);
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const res = await fetch(`${base}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain("text/plain; version=0.0.4");
      const f = parseExposition(await res.text());
      expect(sampleSum(f, "dray_agent_operations_total")).toBe(0);
      expect(f.get("process_resident_memory_bytes")?.samples[0]?.labels).toEqual({ service: "dray-agent" });
      expect((await fetch(`${base}/`)).status).toBe(404);
      expect((await fetch(`${base}/metrics`, { method: "POST" })).status).toBe(404);
    } finally {
      server.close();
    }
  });

  it("fails to start on a port already taken", async () => {
    const first = await serveAgentMetrics(createAgentMetrics().registry, "127.0.0.1", 0);
    try {
      const port = (first.address() as AddressInfo).port;
      await expect(serveAgentMetrics(createAgentMetrics().registry, "127.0.0.1", port)).rejects.toThrow(
        /EADDRINUSE/,
      );
    } finally {
      first.close();
    }
  });
});

describe("DRAY_AGENT_METRICS_PORT", () => {
  const base = {
    DRAY_CONTROL_PLANE_URL: "http://127.0.0.1:7070",
    DRAY_AGENT_DATABASE_URL: "postgres://a@h/db",
  };

  it("is off unless set, and binds loopback unless DRAY_AGENT_METRICS_HOST says otherwise", () => {
    expect(loadAgentConfig(base).metrics).toBeUndefined();
    expect(loadAgentConfig({ ...base, DRAY_AGENT_METRICS_PORT: " " }).metrics).toBeUndefined();
    expect(loadAgentConfig({ ...base, DRAY_AGENT_METRICS_PORT: "9464" }).metrics).toEqual({
      host: "127.0.0.1",
      port: 9464,
    });
    expect(
      loadAgentConfig({ ...base, DRAY_AGENT_METRICS_PORT: "9464", DRAY_AGENT_METRICS_HOST: "0.0.0.0" })
        .metrics,
    ).toEqual({ host: "0.0.0.0", port: 9464 });
  });

  it("names the variable when the port is not one", () => {
    for (const bad of ["abc", "0", "70000", "94.5"])
      expect(() => loadAgentConfig({ ...base, DRAY_AGENT_METRICS_PORT: bad })).toThrow(
        /DRAY_AGENT_METRICS_PORT/,
      );
  });
});
