/**
 * Writes deploy/control-plane.env.example and deploy/agent.env.example from the processes' config
 * schemas, so the examples list every variable the processes read, with its documentation, default
 * and whether it is required: `pnpm gen` runs it and scripts/check-generated.sh fails when the
 * committed files drift. The comments come from the doc comments on the schemas' properties (read
 * with the TypeScript compiler), the defaults and allowed values from the zod schemas themselves;
 * the header and the example values (safe by default) are kept here.
 *
 * deploy/compose/env.example is not generated: its variables (passwords, enrollment tokens, host
 * ports) are interpolated into compose.yaml, not read by a process.
 */
import { readFileSync, writeFileSync } from "node:fs";
import ts from "typescript";
import { EnvSchema as AgentEnvSchema } from "../agent/src/config.js";
import { EnvSchema as ControlPlaneEnvSchema } from "../control-plane/src/config.js";

/** What the example file says of one variable beyond its schema. */
interface ExampleValue {
  /** The value written (safe by default); absent: the variable's default, or empty. */
  value?: string;
  /** True: written as an active line; false: commented out (the process uses its default or nothing). */
  active: boolean;
  /** A line or two of advice for this deployment, written after the schema's comment. */
  note?: string;
}

/** One generated file. */
interface EnvExample {
  /** Path from the repository root. */
  file: string;
  /** Path of the config module whose schema's doc comments are read. */
  source: string;
  schema: { shape: Record<string, unknown> };
  header: string[];
  values: Record<string, ExampleValue>;
}

const EXAMPLES: EnvExample[] = [
  {
    file: "deploy/control-plane.env.example",
    source: "control-plane/src/config.ts",
    schema: ControlPlaneEnvSchema,
    header: [
      "dray-control-plane configuration (/etc/dray/control-plane.env, mode 0640, owner root:dray).",
      "Safe by default: the servers listen beyond this machine only with TLS on both of them; without the",
      "certificate files below the control plane refuses to start. To run behind a TLS-terminating proxy on",
      "the same host instead, set DRAY_BIND_HOST=127.0.0.1 and comment out the TLS lines.",
      "Every variable the control plane reads is listed; a commented-out one keeps its default.",
    ],
    values: {
      DRAY_DATABASE_URL: { value: "postgres://dray@db.internal:5432/dray", active: true },
      DRAY_NATS_URL: { value: "nats://nats.internal:4222", active: true },
      DRAY_DATA_DIR: {
        value: "/var/lib/dray-control-plane",
        active: true,
        note: "Used only when DRAY_DATABASE_URL is unset (the unit's StateDirectory).",
      },
      DRAY_HTTP_PORT: { value: "8080", active: true },
      DRAY_GRPC_PORT: { value: "7070", active: true },
      DRAY_BIND_HOST: { value: "0.0.0.0", active: true },
      DRAY_ALLOW_INSECURE_BIND: {
        value: "false",
        active: false,
        note: "true: accept plain text beyond loopback; not recommended.",
      },
      DRAY_ADMIN_TOKEN: { active: false },
      DRAY_METRICS_TOKEN: { active: false },
      DRAY_HEARTBEAT_INTERVAL_MS: { value: "10000", active: true },
      DRAY_GRPC_TLS_CERT_FILE: {
        value: "/etc/dray/tls/gateway.crt",
        active: true,
        note: "Agents then use DRAY_CONTROL_PLANE_URL=https://dray.example.com:7070.",
      },
      DRAY_GRPC_TLS_KEY_FILE: { value: "/etc/dray/tls/gateway.key", active: true },
      DRAY_GRPC_TLS_CLIENT_CA_FILE: {
        value: "/etc/dray/tls/agents-ca.crt",
        active: false,
        note: "Agents then set DRAY_AGENT_TLS_CERT_FILE and DRAY_AGENT_TLS_KEY_FILE.",
      },
      DRAY_HTTP_TLS_CERT_FILE: {
        value: "/etc/dray/tls/api.crt",
        active: true,
        note: "Clients then use https://dray.example.com:8080 (dray login --url https://…).",
      },
      DRAY_HTTP_TLS_KEY_FILE: { value: "/etc/dray/tls/api.key", active: true },
      DRAY_LOG_LEVEL: { value: "info", active: true },
    },
  },
  {
    file: "deploy/agent.env.example",
    source: "agent/src/config.ts",
    schema: AgentEnvSchema,
    header: [
      "dray-agent configuration (/etc/dray/agent.env, mode 0640, owner root:dray).",
      "Safe by default: the agent dials the gateway with TLS (https://), matching DRAY_GRPC_TLS_* in",
      "control-plane.env.example. Use http:// only for a control plane on the same host bound to 127.0.0.1.",
      "Every variable the agent reads is listed; a commented-out one keeps its default.",
    ],
    values: {
      DRAY_CONTROL_PLANE_URL: { value: "https://dray.example.com:7070", active: true },
      DRAY_ENROLLMENT_TOKEN: {
        value: "",
        active: true,
        note: "The credential is then kept in DRAY_AGENT_STATE_DIR.",
      },
      DRAY_AGENT_DATABASE_URL: { value: "postgres://dray_agent@127.0.0.1:5432/app", active: true },
      DRAY_AGENT_STATE_DIR: {
        value: "/var/lib/dray-agent",
        active: true,
        note: "Keep it on persistent storage: losing it means enrolling again.",
      },
      DRAY_AGENT_NAME: { value: "qa-eu-1", active: true },
      DRAY_AGENT_MAX_TASKS: { value: "4", active: true },
      DRAY_AGENT_DRAIN_TIMEOUT_MS: { value: "30000", active: true },
      DRAY_AGENT_TLS_CA_FILE: {
        value: "/etc/dray/tls/ca.crt",
        active: false,
        note: "Unset: the system's CAs.",
      },
      DRAY_AGENT_TLS_CERT_FILE: {
        value: "/etc/dray/tls/agent.crt",
        active: false,
        note: "Needed when the control plane sets DRAY_GRPC_TLS_CLIENT_CA_FILE (mutual TLS).",
      },
      DRAY_AGENT_TLS_KEY_FILE: { value: "/etc/dray/tls/agent.key", active: false },
      DRAY_LOG_LEVEL: { value: "info", active: true },
      DRAY_AGENT_TRANSFORM_KEY: {
        active: false,
        note: "Make one with `openssl rand -hex 32`. Keep it: a new key gives new fakes.",
      },
      DRAY_AGENT_METRICS_PORT: { value: "9464", active: false },
      DRAY_AGENT_METRICS_HOST: { active: false },
    },
  },
];

/** The parts of a zod 4 schema node this script reads. */
interface ZodNode {
  _zod: {
    def: {
      type: string;
      defaultValue?: unknown;
      innerType?: ZodNode;
      in?: ZodNode;
      out?: ZodNode;
      entries?: Record<string, string>;
    };
  };
  safeParse(value: unknown): { success: boolean };
}

/** What the schema says of one variable: required, its default, and its allowed values. */
export interface VariableFacts {
  required: boolean;
  default: string | undefined;
  allowed: string[] | undefined;
}

/** Reads a variable's facts from its zod schema (defaults as the raw environment string). */
export function variableFacts(schema: unknown): VariableFacts {
  const node = schema as ZodNode;
  let defaultValue: string | undefined;
  let allowed: string[] | undefined;
  const visit = (n: ZodNode | undefined): void => {
    if (!n) return;
    const def = n._zod.def;
    if (def.type === "default" && defaultValue === undefined) defaultValue = String(def.defaultValue);
    if (def.type === "enum" && allowed === undefined && def.entries) {
      allowed = Object.values(def.entries).filter((v) => v !== "");
    }
    visit(def.innerType);
    visit(def.in);
    visit(def.out);
  };
  visit(node);
  return { required: !node.safeParse(undefined).success, default: defaultValue, allowed };
}

/** The doc comment of every property of the object literal passed to `z.object` in `EnvSchema`. */
export function schemaDocComments(sourceText: string, fileName: string): Map<string, string> {
  const source = ts.createSourceFile(fileName, sourceText, ts.ScriptTarget.ES2023, true);
  const comments = new Map<string, string>();
  const visit = (node: ts.Node): void => {
    if (
      ts.isVariableDeclaration(node) &&
      ts.isIdentifier(node.name) &&
      node.name.text === "EnvSchema" &&
      node.initializer &&
      ts.isCallExpression(node.initializer)
    ) {
      const object = node.initializer.arguments[0];
      if (object && ts.isObjectLiteralExpression(object)) {
        for (const property of object.properties) {
          if (!property.name || !ts.isIdentifier(property.name)) continue;
          const docs = ts.getJSDocCommentsAndTags(property).filter(ts.isJSDoc);
          const text = docs
            .map((doc) => ts.getTextOfJSDocComment(doc.comment) ?? "")
            .join(" ")
            .replace(/\s+/g, " ")
            .trim();
          comments.set(property.name.text, text);
        }
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return comments;
}

/** Wraps text into comment lines of at most `width` characters. */
function commentLines(text: string, width = 100): string[] {
  const lines: string[] = [];
  let line = "#";
  for (const word of text.split(" ")) {
    if (line.length + 1 + word.length > width && line !== "#") {
      lines.push(line);
      line = "#";
    }
    line += ` ${word}`;
  }
  if (line !== "#") lines.push(line);
  return lines;
}

/** The text of one example file. Throws when the schema and the example's values disagree. */
export function renderEnvExample(example: EnvExample, sourceText: string): string {
  const names = Object.keys(example.schema.shape);
  const comments = schemaDocComments(sourceText, example.source);
  const problems = [
    ...Object.keys(example.values)
      .filter((name) => !names.includes(name))
      .map((name) => `${example.file}: ${name} has an example value but is not in the schema`),
    ...names
      .filter((name) => !comments.get(name))
      .map((name) => `${example.source}: ${name} has no doc comment`),
  ];
  if (problems.length > 0) throw new Error(problems.join("\n"));
  const out = [
    ...example.header.map((line) => `# ${line}`),
    `# Generated from ${example.source} by scripts/generate-env-examples.ts (pnpm gen): edit those, not this file.`,
  ];
  for (const name of names) {
    const facts = variableFacts(example.schema.shape[name]);
    const value = example.values[name] ?? { active: false };
    const status = facts.required
      ? "Required."
      : facts.default !== undefined
        ? `Optional, default ${facts.default === "" ? "empty" : facts.default}.`
        : "Optional, unset by default.";
    const allowed = facts.allowed ? ` One of: ${facts.allowed.join(", ")}.` : "";
    const note = value.note ? ` ${value.note}` : "";
    out.push("", ...commentLines(`${comments.get(name)} ${status}${allowed}${note}`));
    const written = value.value ?? facts.default ?? "";
    out.push(`${value.active ? "" : "# "}${name}=${written}`);
  }
  return `${out.join("\n")}\n`;
}

const root = new URL("../", import.meta.url);
for (const example of EXAMPLES) {
  const text = renderEnvExample(example, readFileSync(new URL(example.source, root), "utf8"));
  writeFileSync(new URL(example.file, root), text);
  console.log(`wrote ${example.file} (${Object.keys(example.schema.shape).length} variables)`);
}
