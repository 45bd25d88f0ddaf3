/**
 * deploy/ checked offline (scripts/validate-deploy.ts's checks): the compose file against the
 * Compose specification and Dray's rules, the Dockerfile and its build context, and the Helm
 * chart rendered by helm (when a helm binary is found) against the Kubernetes schemas. Each
 * check is also shown to fail on a broken input, so a pass means something.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { formatResults } from "../scripts/deploy-validation/check-result.js";
import {
  checkCompose,
  composeDrayProblems,
  composeSchemaProblems,
  interpolate,
  loadCompose,
  SAMPLE_COMPOSE_ENV,
} from "../scripts/deploy-validation/compose.js";
import { declaredVariables } from "../scripts/deploy-validation/config-variables.js";
import { dockerProblems, isIgnored, parseDockerfile } from "../scripts/deploy-validation/dockerfile.js";
import {
  checkHelm,
  drayProblems,
  findHelm,
  renderChart,
  schemaProblems,
} from "../scripts/deploy-validation/helm.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const composeFile = join(root, "deploy/compose/compose.yaml");
const nginxConf = readFileSync(join(root, "deploy/compose/nginx.conf"), "utf8");
const helm = findHelm(root);

describe("compose interpolation", () => {
  it("substitutes defaults, required values and $$ as Compose does", () => {
    const env = { A: "a", EMPTY: "" };
    // Compose's own ${…} syntax in plain strings, on purpose.
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Compose syntax
    expect(interpolate("${A}-${B:-b}-${EMPTY:-e}-${EMPTY-kept}-$$A-$A", env)).toBe("a-b-e--$A-a");
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Compose syntax
    expect(() => interpolate("${B:?set B}", env)).toThrow(/required variable B is missing: set B/);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Compose syntax
    expect(() => interpolate("${EMPTY:?set it}", env)).toThrow(/EMPTY/);
  });

  it("refuses compose.yaml without the secrets of .env", () => {
    expect(() => loadCompose(composeFile, {})).toThrow(/DRAY_(STORE_PASSWORD|ADMIN_TOKEN)/);
  });
});

describe("deploy/compose/compose.yaml", () => {
  const doc = loadCompose(composeFile, SAMPLE_COMPOSE_ENV);

  it("passes the Compose specification schema and Dray's rules (and docker-compose config when installed)", () => {
    const results = checkCompose(root);
    const failed = results.filter((r) => r.status === "failed");
    expect(failed, formatResults(results)).toEqual([]);
    expect(results.filter((r) => r.status === "ok").map((r) => r.name)).toEqual(
      expect.arrayContaining(["compose: Compose specification schema", "compose: Dray rules"]),
    );
  });

  it("has two replicas and two agents, each agent on its own database network", () => {
    const services = doc.services;
    const agents = Object.keys(services).filter((n) => services[n].build?.target === "agent");
    expect(agents.sort()).toEqual(["agent-source", "agent-target"]);
    expect(Object.keys(services).filter((n) => services[n].build?.target === "control-plane")).toHaveLength(
      2,
    );
    expect(services["agent-source"].networks).toEqual(["edge", "source"]);
    expect(services["source-db"].networks).toEqual(["source"]);
    expect(doc.networks.source.internal).toBe(true);
  });

  it("fails the schema on an unknown service key, and Dray's rules on unsafe or unknown settings", () => {
    const broken = structuredClone(doc);
    broken.services.store.restart_policy = "always";
    expect(composeSchemaProblems(broken).join("\n")).toMatch(/additional properties/);
    delete broken.services["control-plane-1"].environment.DRAY_ALLOW_INSECURE_BIND;
    broken.services["agent-target"].environment.DRAY_AGENT_DATABSE_URL = "postgres://x";
    broken.services["agent-source"].volumes = [];
    const problems = composeDrayProblems(broken, root, nginxConf.replace("control-plane-2:7070", "cp2:7070"));
    expect(problems).toEqual(
      expect.arrayContaining([
        "services.control-plane-1: binds beyond loopback without TLS and without DRAY_ALLOW_INSECURE_BIND",
        "services.agent-target: DRAY_AGENT_DATABSE_URL is not a variable of this process",
        "services.agent-source: no named volume on its state directory /var/lib/dray-agent",
        "nginx.conf: no upstream server control-plane-2:7070",
      ]),
    );
  });
});

describe("the variables Dray reads", () => {
  it("are read from each config module's env schema", () => {
    const controlPlane = declaredVariables(readFileSync(join(root, "control-plane/src/config.ts"), "utf8"));
    const agent = declaredVariables(readFileSync(join(root, "agent/src/config.ts"), "utf8"));
    expect(controlPlane).toContain("DRAY_ALLOW_INSECURE_BIND");
    expect(controlPlane).toContain("DRAY_DATABASE_URL");
    expect(agent).toContain("DRAY_CONTROL_PLANE_URL");
    expect(agent).toContain("DRAY_AGENT_STATE_DIR");
    expect(agent).not.toContain("DRAY_DATABASE_URL");
  });
});

describe("Dockerfile and .dockerignore", () => {
  it("have both targets, non-root users, exec-form CMDs and a context with what the build needs", () => {
    expect(dockerProblems(root)).toEqual([]);
    const stages = parseDockerfile(readFileSync(join(root, "Dockerfile"), "utf8")).map((s) => s.name);
    expect(stages).toEqual(["build", "runtime", "agent", "control-plane"]);
  });

  it("match .dockerignore as Docker does (last pattern wins, folders carry their contents)", () => {
    const ignore = "**/node_modules\ndist\ntest/*\n!test/package.json\n";
    expect(isIgnored(ignore, "node_modules/x/index.js")).toBe(true);
    expect(isIgnored(ignore, "agent/node_modules/x/index.js")).toBe(true);
    expect(isIgnored(ignore, "dist/a.mjs")).toBe(true);
    expect(isIgnored(ignore, "test/a.test.ts")).toBe(true);
    expect(isIgnored(ignore, "test/package.json")).toBe(false);
    expect(isIgnored(ignore, "agent/src/main.ts")).toBe(false);
    expect(isIgnored(ignore, "distant/file")).toBe(false);
  });
});

describe("Helm chart: checks on rendered objects", () => {
  const deployment = () => ({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "cp" },
    spec: {
      selector: { matchLabels: { app: "cp" } },
      template: {
        metadata: { labels: { app: "cp" } },
        spec: {
          securityContext: { runAsNonRoot: true },
          containers: [
            {
              name: "cp",
              image: "dray-control-plane:0.1.0",
              env: [{ name: "DRAY_NATS_URL", value: "nats://nats:4222" }],
              ports: [{ name: "http", containerPort: 8080 }],
              readinessProbe: { httpGet: { path: "/readyz", port: "http" } },
              livenessProbe: { httpGet: { path: "/healthz", port: "http" } },
              securityContext: { readOnlyRootFilesystem: true },
            },
          ],
        },
      },
    },
  });
  const service = {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: "cp", labels: { app: "cp" } },
    spec: { selector: { app: "cp" }, ports: [{ name: "grpc", port: 7070 }] },
  };

  it("accept a sound Deployment, and reject a wrong type, a wrong probe and an unknown variable", async () => {
    expect(await schemaProblems([deployment(), service])).toEqual([]);
    expect(drayProblems([deployment(), service], root)).toEqual([]);
    const broken: any = deployment();
    const c = broken.spec.template.spec.containers[0];
    c.ports[0].containerPort = "8080";
    c.readinessProbe.httpGet.path = "/healthz";
    c.env.push({ name: "DRAY_NATS_URLS", value: "x" });
    expect((await schemaProblems([broken])).join("\n")).toMatch(/containerPort must be integer/);
    expect(drayProblems([broken, service], root)).toEqual([
      "Deployment/cp: readiness probe is not /readyz",
      "Deployment/cp: DRAY_NATS_URLS is not a variable of this process",
    ]);
  });

  it.skipIf(!helm)(
    "lints and renders with each test-values file, passing the Kubernetes schemas and Dray's rules (needs helm: scripts/validate-deploy.ts --fetch-helm)",
    async () => {
      const results = await checkHelm(root);
      expect(
        results.filter((r) => r.status !== "ok"),
        formatResults(results),
      ).toEqual([]);
      expect(results.length).toBeGreaterThanOrEqual(7);
      const plain = renderChart(
        helm!,
        join(root, "deploy/helm/dray"),
        join(root, "deploy/helm/test-values/plain-text.yaml"),
      );
      if ("error" in plain) throw new Error(plain.error);
      const kinds = plain.objects.map((o) => o.kind).sort();
      expect(kinds).toEqual([
        "Deployment",
        "PodDisruptionBudget",
        "Secret",
        "Secret",
        "Secret",
        "Service",
        "Service",
        "ServiceMonitor",
        "StatefulSet",
        "StatefulSet",
      ]);
      const cp = plain.objects.find((o) => o.kind === "Deployment");
      expect(cp.spec.replicas).toBe(2);
      expect(cp.spec.template.spec.containers[0].readinessProbe.httpGet.path).toBe("/readyz");
      // A ServiceMonitor without a metrics token would scrape a /metrics that answers 403: refused.
      const tokenless = join(mkdtempSync(join(tmpdir(), "dray-helm-")), "values.yaml");
      writeFileSync(
        tokenless,
        readFileSync(join(root, "deploy/helm/test-values/plain-text.yaml"), "utf8").replace(
          /^ {2}metricsToken: .*$/m,
          '  metricsToken: ""',
        ),
      );
      const refused = renderChart(helm!, join(root, "deploy/helm/dray"), tokenless);
      expect("error" in refused && refused.error).toMatch(
        /serviceMonitor.enabled needs controlPlane.metricsToken/,
      );
    },
    60_000,
  );
});
