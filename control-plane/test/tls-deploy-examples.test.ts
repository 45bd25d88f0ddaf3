/**
 * Issue 9, security 4: the deploy examples are safe by default and agree with
 * each other on the scheme; the systemd units are hardened.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { isLoopbackHost, loadConfig } from "../src/config.js";

const deploy = (name: string) => readFileSync(new URL(`../../deploy/${name}`, import.meta.url), "utf8");

/** Variables set (not commented out) in an env file. */
function envOf(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const eq = trimmed.indexOf("=");
    env[trimmed.slice(0, eq)] = trimmed.slice(eq + 1);
  }
  return env;
}

describe("deploy examples", () => {
  const controlPlane = envOf(deploy("control-plane.env.example"));
  const agent = envOf(deploy("agent.env.example"));

  it("listen beyond loopback only with TLS on both servers, and the agent dials the gateway with TLS", () => {
    const exposed = !isLoopbackHost(controlPlane.DRAY_BIND_HOST ?? "127.0.0.1");
    if (exposed) {
      expect(controlPlane.DRAY_HTTP_TLS_CERT_FILE).toBeTruthy();
      expect(controlPlane.DRAY_GRPC_TLS_CERT_FILE).toBeTruthy();
      expect(controlPlane.DRAY_ALLOW_INSECURE_BIND ?? "false").toBe("false");
    }
    const agentTls = agent.DRAY_CONTROL_PLANE_URL!.startsWith("https://");
    expect(agentTls).toBe(Boolean(controlPlane.DRAY_GRPC_TLS_CERT_FILE));
    expect(agent.DRAY_CONTROL_PLANE_URL).toContain(`:${controlPlane.DRAY_GRPC_PORT}`);
  });

  it("are refused by the control plane only for their missing certificate files", () => {
    let message = "";
    try {
      loadConfig(controlPlane, { replicaId: "x" });
    } catch (error) {
      message = (error as Error).message;
    }
    const problems = message.split("\n").slice(1);
    expect(problems.length).toBeGreaterThan(0);
    for (const problem of problems) expect(problem).toMatch(/_FILE: cannot read .* \(no such file\)$/);
  });

  it("run the services hardened, with only their state directory writable", () => {
    for (const unit of ["systemd/dray-control-plane.service", "systemd/dray-agent.service"]) {
      const text = deploy(unit);
      for (const setting of [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "User=dray",
      ])
        expect(text, `${unit}: ${setting}`).toContain(setting);
      expect(text).toMatch(/ReadWritePaths=\/var\/lib\/dray-/);
    }
  });
});
