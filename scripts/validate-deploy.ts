/**
 * Validates deploy/ without a container engine or a cluster:
 * - the Dockerfile and .dockerignore (targets, non-root users, CMDs against a fresh bundle build);
 * - deploy/compose (Compose specification schema, Dray's rules, `docker-compose config` if installed);
 * - deploy/helm/dray (`helm lint --strict`, `helm template`, Kubernetes schemas, Dray's rules) when a
 *   helm binary is found.
 * Prints one line per check, saying plainly what was not run; exits 1 when a check failed.
 *
 * @example
 * pnpm exec tsx scripts/validate-deploy.ts               # everything available here
 * pnpm exec tsx scripts/validate-deploy.ts --fetch-helm  # first put helm in node_modules/.cache
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildBundles } from "./build-bundles.js";
import { type CheckResult, formatResults } from "./deploy-validation/check-result.js";
import { checkCompose } from "./deploy-validation/compose.js";
import { checkDockerfile } from "./deploy-validation/dockerfile.js";
import { checkHelm, fetchHelm, findHelm } from "./deploy-validation/helm.js";

const root = fileURLToPath(new URL("..", import.meta.url));

/** Runs every deploy check. */
export async function validateDeploy(options: { build?: boolean } = {}): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  if (options.build ?? true) {
    const out = await mkdtemp(join(tmpdir(), "dray-validate-deploy-"));
    try {
      await buildBundles({ outDir: out });
      results.push(checkDockerfile(root, out));
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  } else {
    results.push(checkDockerfile(root));
  }
  results.push(...checkCompose(root));
  results.push(...(await checkHelm(root)));
  results.push({
    name: "not run here",
    status: "not-run",
    details: [
      "docker build / docker compose up (no container engine on this machine)",
      "helm install against a cluster (no cluster); kubeconform (no binary): schemas come from kubernetes-models",
    ],
  });
  return results;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  if (args.includes("--fetch-helm") && !findHelm(root)) {
    process.stdout.write(`helm: ${fetchHelm(root)}\n`);
  }
  const results = await validateDeploy({ build: !args.includes("--no-build") });
  process.stdout.write(`${formatResults(results)}\n`);
  process.exitCode = results.some((r) => r.status === "failed") ? 1 : 0;
}
