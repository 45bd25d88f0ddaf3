import { gzipSync } from "node:zlib";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { launchBrowser, seriousViolations, signedInPage } from "./support/browser.js";
import { type DrayStack, startDrayStack, waitForExecution } from "./support/dray-stack.js";
import { createPipeline, startRun } from "./support/executions.js";

const SCHEMA = `
create table accounts (id bigint primary key, name text not null);
create table contacts (id bigint primary key, account_id bigint not null references accounts(id), email text);
`;
const DATA = `
insert into accounts select g, 'account ' || g from generate_series(1, 50) g;
insert into contacts select g, 1 + g % 50, 'c' || g || '@example.com' from generate_series(1, 500) g;
`;

let stack: DrayStack;
let browser: Browser;
let pages: { name: string; path: string }[] = [];

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"));
  const [source, target] = await Promise.all([
    stack.addEnvironment("a11y-src", `${SCHEMA}${DATA}`),
    stack.addEnvironment("a11y-dst", SCHEMA),
  ]);
  const pipelineId = await createPipeline(stack.api, {
    name: "a11y-copy",
    sourceEnvironmentId: source.id,
    targetEnvironmentId: target.id,
    writeStrategy: "merge",
    entities: ["public.accounts", "public.contacts"],
  });
  const run = await startRun(stack.api, pipelineId);
  await waitForExecution(stack.api, run.id, 60_000);
  browser = await launchBrowser();
  pages = [
    { name: "pipelines", path: "/pipelines" },
    { name: "pipeline", path: `/pipelines/${pipelineId}` },
    { name: "monitor", path: `/executions/${run.id}` },
    { name: "environments", path: "/environments" },
    { name: "usage", path: "/usage" },
    { name: "API reference", path: "/docs" },
  ];
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await stack?.close();
});

describe("every page of the web UI", () => {
  it("has no serious or critical axe violation, signed out (sign-in) and in", async () => {
    const { page } = await signedInPage(browser, stack.cp.httpUrl, stack.apiToken);
    for (const p of pages) {
      await page.goto(`${stack.cp.httpUrl}${p.path}`);
      expect(await seriousViolations(page), p.name).toEqual([]);
    }
    const context = await browser.newContext();
    const signInPage = await context.newPage();
    await signInPage.goto(`${stack.cp.httpUrl}/sign-in`);
    expect(await seriousViolations(signInPage), "sign-in").toEqual([]);
    await context.close();
  });

  it("fits 360 px and 1,440 px wide screens without sideways scrolling", async () => {
    const { page } = await signedInPage(browser, stack.cp.httpUrl, stack.apiToken);
    for (const width of [360, 1440]) {
      await page.setViewportSize({ width, height: 800 });
      for (const p of pages) {
        await page.goto(`${stack.cp.httpUrl}${p.path}`);
        const overflow = await page.evaluate(() => {
          const { document: d, innerWidth } = globalThis as any;
          return d.documentElement.scrollWidth - innerWidth;
        });
        expect(overflow, `${p.name} at ${width} px`).toBeLessThanOrEqual(0);
      }
    }
  });

  it("can be used with the keyboard: Tab reaches the Run Pipeline button, which shows its focus", async () => {
    const { page } = await signedInPage(browser, stack.cp.httpUrl, stack.apiToken);
    await page.goto(`${stack.cp.httpUrl}${pages[1]!.path}`);
    let found = false;
    for (let i = 0; i < 40 && !found; i++) {
      await page.keyboard.press("Tab");
      found = await page.evaluate(
        () => (globalThis as any).document.activeElement?.textContent?.trim() === "Run Pipeline",
      );
    }
    expect(found).toBe(true);
    const outline = await page.evaluate(() => {
      const g = globalThis as any;
      return g.getComputedStyle(g.document.activeElement).outlineStyle as string;
    });
    expect(outline).not.toBe("none");
  });

  it("loads at most 30 KB of JavaScript gzipped, all from the control plane", async () => {
    const { page } = await signedInPage(browser, stack.cp.httpUrl, stack.apiToken);
    const scripts: Buffer[] = [];
    page.on("response", async (response) => {
      if (response.request().resourceType() === "script") scripts.push(await response.body());
    });
    await page.goto(`${stack.cp.httpUrl}${pages[2]!.path}`);
    await page.waitForLoadState("networkidle");
    expect(scripts.length).toBeGreaterThan(0);
    const gzipped = scripts.reduce((n, body) => n + gzipSync(body).length, 0);
    expect(gzipped).toBeLessThanOrEqual(30 * 1024);
  });
});
