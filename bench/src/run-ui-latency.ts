/**
 * `pnpm bench -- --ui-latency` (issue 12): how long the Execution Monitor in
 * Chromium takes to show a committed batch. A real control plane and agents
 * copy --rows contacts in small batches while the monitor is open; the page
 * records when its processed-records figure changes, and each batch's delay is
 * the time from its settlement in the store (finishedAt) to the first page
 * update whose figure includes it.
 */

import { chromium } from "playwright-core";
import { createTestDatabase, type TestDatabase } from "../../test/support/databases.js";
import { createSchema, generateSource, TABLES } from "./dataset.js";
import { type BenchStack, startBenchStack } from "./stack.js";

export interface UiLatencyOptions {
  baseUrl: string;
  contacts: number;
  accounts: number;
  batchSize: number;
  logPrefix: string;
  log: (line: string) => void;
}

export interface UiLatencyResult {
  batches: number;
  domUpdates: number;
  /** Delays from batch settlement to the DOM, ms, sorted. */
  delaysMs: number[];
  runMs: number;
  error?: string;
}

/** Records every change of the monitor's live section: when, and the processed figure it shows. */
const RECORDER = `(() => {
  window.__updates = [];
  const live = document.getElementById("live");
  const read = () => Number((live.querySelector(".stat b")?.textContent ?? "0").replaceAll(",", ""));
  new MutationObserver(() => window.__updates.push({ at: Date.now(), processed: read() })).observe(live, {
    childList: true, subtree: true, characterData: true,
  });
})()`;

/** The value at quantile q (0..1) of sorted numbers. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const at = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[at]!;
}

/**
 * Each batch's delay: from its settlement (`at`, with `cumulative` records
 * processed once it settled, in settlement order) to the first DOM update at
 * or after it showing at least that many records.
 */
export function batchDelays(
  batches: readonly { at: number; cumulative: number }[],
  updates: readonly { at: number; processed: number }[],
): number[] {
  const out: number[] = [];
  for (const b of batches) {
    const seen = updates.find((u) => u.at >= b.at && u.processed >= b.cumulative);
    if (seen) out.push(seen.at - b.at);
  }
  return out.sort((a, b) => a - b);
}

export async function runUiLatencyBench(o: UiLatencyOptions): Promise<UiLatencyResult> {
  const databases: TestDatabase[] = [];
  let stack: BenchStack | undefined;
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
  try {
    const source = await createTestDatabase(o.baseUrl, "dray_bench_ui_src");
    const target = await createTestDatabase(o.baseUrl, "dray_bench_ui_dst");
    databases.push(source, target);
    await createSchema(target.sql);
    await generateSource(source.sql, o.contacts, o.accounts);
    stack = await startBenchStack({ baseUrl: o.baseUrl, logPrefix: o.logPrefix });
    const [src, dst] = [
      await stack.addEnvironment("ui-src", source.url),
      await stack.addEnvironment("ui-dst", target.url),
    ];
    const created = await stack.api.post("/api/v1/pipelines", {
      name: "ui-latency",
      sourceEnvironmentId: src.id,
      targetEnvironmentId: dst.id,
      writeStrategy: "merge",
      entities: [...TABLES],
      batchSize: o.batchSize,
      entityConcurrency: 1,
    });
    if (created.status !== 201)
      throw new Error(`cannot create the pipeline: ${JSON.stringify(created.body)}`);
    const link = await stack.api.post("/api/v1/sign-in-links", {});
    const base = stack.cp.httpUrl;
    const page = await browser.newPage();
    await page.goto(`${base}${link.body.path}`);
    await page.goto(`${base}/pipelines/${created.body.id}`);
    o.log(`[ui-latency] running ${o.contacts + o.accounts} rows in batches of ${o.batchSize}`);
    const started = Date.now();
    await page.getByRole("button", { name: "Run Pipeline" }).click();
    await page.waitForURL(/\/executions\//);
    // Every change of the live section: when, and the processed figure it shows (evaluated over the
    // DevTools protocol, so the page's CSP does not apply).
    // A string, not a function: tsx would wrap a function's inner names in a helper the page lacks.
    await page.evaluate(RECORDER);
    await page.waitForSelector('#live[data-final="true"]', { timeout: 600_000 });
    const runMs = Date.now() - started;
    const updates = (await page.evaluate("window.__updates")) as { at: number; processed: number }[];
    const id = page.url().split("/executions/")[1]!;
    const all: { finishedAt: string | null; created: number; updated: number; rejected: number }[] = [];
    for (let p = 1; ; p++) {
      const res = await stack.api.get(`/api/v1/executions/${id}/batches?page=${p}&pageSize=500`);
      all.push(...res.body.batches);
      if (all.length >= res.body.total || res.body.batches.length === 0) break;
    }
    const settled = all
      .filter((b) => b.finishedAt)
      .map((b) => ({ at: Date.parse(b.finishedAt!), rows: b.created + b.updated + b.rejected }))
      .sort((a, b) => a.at - b.at);
    let cumulative = 0;
    const batches = settled.map((b) => {
      cumulative += b.rows;
      return { at: b.at, cumulative };
    });
    return {
      batches: batches.length,
      domUpdates: updates.length,
      delaysMs: batchDelays(batches, updates),
      runMs,
    };
  } catch (error) {
    return {
      batches: 0,
      domUpdates: 0,
      delaysMs: [],
      runMs: 0,
      error: String((error as Error).stack ?? error),
    };
  } finally {
    await browser.close();
    await stack?.close({ keep: false });
    for (const d of databases) await d.drop().catch(() => {});
  }
}
