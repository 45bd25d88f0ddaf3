/** @jsxImportSource hono/jsx */
/**
 * The API reference at /docs, rendered on the server from the control plane's
 * own OpenAPI document (no viewer script, nothing loaded from elsewhere):
 * every operation by tag with its method, path, summary, parameters, body
 * and responses, and a link to the document itself.
 */
import type { FC } from "hono/jsx";
import { type AssetPaths, Layout, type Viewer } from "./layout.js";

/** The parts of an OpenAPI 3.1 document the page reads. */
export interface OpenApiDocument {
  info: { title: string; version: string; description?: string };
  paths: Record<string, Record<string, OpenApiOperation>>;
}

interface OpenApiOperation {
  operationId?: string;
  summary?: string;
  description?: string;
  tags?: string[];
  parameters?: { name: string; in: string; required?: boolean; description?: string }[];
  requestBody?: { content?: Record<string, { schema?: { $ref?: string } }> };
  responses?: Record<string, { description?: string }>;
}

const METHODS = ["get", "post", "put", "patch", "delete"] as const;

/** `#/components/schemas/Name` → `Name`. */
const refName = (ref: string | undefined) => (ref ? ref.split("/").pop() : undefined);

/** The page. */
export const DocsPage: FC<{
  doc: OpenApiDocument;
  viewer: Viewer;
  assets: AssetPaths;
  documentPath: string;
}> = ({ doc, viewer, assets, documentPath }) => {
  const byTag = new Map<string, { method: string; path: string; op: OpenApiOperation }[]>();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const tag = op.tags?.[0] ?? "other";
      byTag.set(tag, [...(byTag.get(tag) ?? []), { method, path, op }]);
    }
  }
  return (
    <Layout title="API reference" assets={assets} viewer={viewer} section="docs">
      <h1>
        {doc.info.title} <span class="muted">{doc.info.version}</span>
      </h1>
      {doc.info.description ? <p>{doc.info.description}</p> : null}
      <p>
        The OpenAPI 3.1 document: <a href={documentPath}>{documentPath}</a>. The TypeScript SDK and the{" "}
        <code>dray</code> CLI are built on it.
      </p>
      <nav aria-label="Tags">
        <ul>
          {[...byTag.keys()].map((tag) => (
            <li>
              <a href={`#tag-${tag}`}>{tag}</a>
            </li>
          ))}
        </ul>
      </nav>
      {[...byTag.entries()].map(([tag, ops]) => (
        <section aria-labelledby={`tag-${tag}`}>
          <h2 id={`tag-${tag}`}>{tag}</h2>
          {ops.map(({ method, path, op }) => (
            <article class="entity" id={op.operationId}>
              <div class="row">
                <code>
                  <strong>{method.toUpperCase()}</strong> {path}
                </code>
              </div>
              {op.summary ? <p>{op.summary}</p> : null}
              {op.description ? <p class="muted">{op.description}</p> : null}
              {(op.parameters ?? []).length > 0 ? (
                <ul>
                  {(op.parameters ?? []).map((p) => (
                    <li>
                      <code>{p.name}</code> ({p.in}
                      {p.required ? ", required" : ""}){p.description ? `: ${p.description}` : ""}
                    </li>
                  ))}
                </ul>
              ) : null}
              {op.requestBody ? (
                <p class="muted">
                  Body: {refName(op.requestBody.content?.["application/json"]?.schema?.$ref) ?? "JSON"}
                </p>
              ) : null}
              <p class="muted">
                Responses:{" "}
                {Object.entries(op.responses ?? {})
                  .map(([code, r]) => `${code} ${r.description ?? ""}`.trim())
                  .join(" · ")}
              </p>
            </article>
          ))}
        </section>
      ))}
    </Layout>
  );
};
