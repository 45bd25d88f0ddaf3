/**
 * Renders screenshots of each page of the web UI for the README, from a
 * running demo (`npm run demo` in another terminal):
 *
 *   pnpm exec tsx scripts/ui-screenshots.ts [http://127.0.0.1:8080]
 *
 * It signs in with the demo's token (from .dray/demo/state.json), runs the
 * demo pipeline from its card, and writes docs/screenshots/*.png.
 */
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { chromium } from "playwright-core";

const base = process.argv[2] ?? "http://127.0.0.1:8080";
const root = join(import.meta.dirname, "..");
const out = join(root, "docs", "screenshots");
const state = JSON.parse(await readFile(join(root, ".dray", "demo", "state.json"), "utf8")) as {
  token?: string;
};
if (!state.token)
  throw new Error("no demo token in .dray/demo/state.json: start the demo first (npm run demo)");
await mkdir(out, { recursive: true });

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 });
const shot = (name: string) => page.screenshot({ path: join(out, `${name}.png`), fullPage: true });
try {
  await page.goto(`${base}/sign-in`);
  await shot("sign-in");
  await page.getByLabel("API token").fill(state.token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/pipelines/);
  await shot("pipelines");
  await page.getByRole("link", { name: "demo-crm" }).click();
  await shot("pipeline");
  await page.getByRole("button", { name: "Run Pipeline" }).click();
  await page.waitForURL(/\/executions\//);
  await page.waitForSelector('[role="progressbar"]', { timeout: 60_000 });
  await shot("monitor-running");
  await page.waitForSelector('#live[data-final="true"]', { timeout: 120_000 });
  await shot("monitor-completed");
  await page.goto(`${base}/environments`);
  await page.getByRole("button", { name: "Test Connection" }).first().click();
  await shot("environments");
  await page.setViewportSize({ width: 360, height: 740 });
  await page.goto(`${base}/pipelines`);
  await shot("pipelines-360px");
  console.log(`screenshots written to ${out}`);
} finally {
  await browser.close();
}
