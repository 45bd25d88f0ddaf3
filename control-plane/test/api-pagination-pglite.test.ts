/**
 * The keyset pages also work on PGlite (the demo's store): every sort of the
 * environments list, the pipelines list and the run history.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { environments, executions, newId, pipelines } from "../src/store/index.js";
import { type ApiHarness, openApiHarness } from "./api-test-harness.js";

let h: ApiHarness;
let org: Awaited<ReturnType<ApiHarness["tenant"]>>;
let pipelineId: string;

beforeAll(async () => {
  h = await openApiHarness(undefined);
  org = await h.tenant("pglite-pages");
  const ids = Array.from({ length: 9 }, () => newId());
  await h.store.db.insert(environments).values(
    ids.map((id, i) => ({
      id,
      organisationId: org.id,
      name: `${i % 2 ? "E" : "e"}-${Math.floor(i / 2)}`,
      platform: "postgres" as const,
      health: (["healthy", "unknown", "unhealthy"] as const)[i % 3],
      lastHeartbeatAt: i % 3 === 0 ? null : new Date(Date.parse("2026-05-01T00:00:00Z") + (i % 2) * 1_000),
    })),
  );
  pipelineId = newId();
  await h.store.db.insert(pipelines).values(
    ["b", "A", "a", "c"].map((name, i) => ({
      id: i === 0 ? pipelineId : newId(),
      organisationId: org.id,
      name,
      sourceEnvironmentId: ids[0]!,
      targetEnvironmentId: ids[1]!,
      action: "copy" as const,
      writeStrategy: "merge" as const,
      entities: ["public.t"],
      batchSize: 1000,
      batchBytes: 4_000_000,
      maxRetriesPerBatch: 4,
      stopOnError: true,
      entityConcurrency: 2,
    })),
  );
  await h.store.db.insert(executions).values(
    Array.from({ length: 7 }, (_, i) => ({
      id: newId(),
      organisationId: org.id,
      pipelineId,
      pipelineToken: `pt-${newId()}`,
      status: "completed" as const,
      triggeredBy: { tokenId: newId(), tokenName: "t", role: "operator" },
      snapshot: {},
      createdAt: new Date(Date.parse("2026-05-01T00:00:00Z") + Math.floor(i / 2) * 1_000),
    })),
  );
}, 60_000);
afterAll(async () => {
  await h?.close();
});

async function follow(path: string, key: string, size: string): Promise<{ all: string[]; pages: number }> {
  const all: string[] = [];
  let next: string | null = null;
  let pages = 0;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const res = await h.call("GET", `${path}${sep}${size}${next ? `&cursor=${next}` : ""}`, {
      token: org.viewer,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    all.push(...res.body[key].map((e: { id: string }) => e.id));
    next = res.body.next;
    pages++;
  } while (next && pages < 50);
  return { all, pages };
}

describe("keyset pages on PGlite", () => {
  it("pages every list with no repeat and no gap", async () => {
    for (const sort of ["name", "health", "lastHeartbeat", "createdAt"]) {
      const whole = await follow(`/api/v1/environments?sort=${sort}`, "environments", "limit=200");
      const paged = await follow(`/api/v1/environments?sort=${sort}`, "environments", "limit=2");
      expect(whole.all).toHaveLength(9);
      expect(paged).toEqual({ all: whole.all, pages: 5 });
    }
    const pipes = await follow("/api/v1/pipelines", "pipelines", "limit=3");
    expect(pipes.pages).toBe(2);
    expect(pipes.all).toHaveLength(4);
    const runs = await follow(`/api/v1/pipelines/${pipelineId}/executions`, "executions", "pageSize=2");
    expect(new Set(runs.all).size).toBe(7);
    expect(runs.pages).toBe(4);
  });
});
