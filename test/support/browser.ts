/**
 * A real browser for the web UI tests: Debian's Chromium driven by
 * playwright-core, launched once per file. Every page a test opens is
 * watched: a request to another origin, a console error or warning (CSP
 * violations are logged as "Refused to …") or an uncaught page error fails
 * the test that opened it.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { type Browser, type BrowserContext, chromium, type Locator, type Page } from "playwright-core";
import { expect, onTestFinished } from "vitest";

/** Where Debian installs Chromium; the tests never download a browser. */
export const CHROMIUM_PATH = "/usr/bin/chromium";

/** Launches headless Chromium (no sandbox: the tests run as root in a container). */
export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: ["--no-sandbox"], headless: true });
}

/** Options of {@link newPage}. */
export interface NewPageOptions {
  /** Run the page's script. @default true */
  javaScriptEnabled?: boolean;
  /** Console errors or warnings the test expects (e.g. a request it aborts on purpose). */
  allowConsole?: RegExp[];
}

/** A watched page, in a context of its own (own cookies). */
export interface WatchedPage {
  page: Page;
  context: BrowserContext;
  /** What went wrong so far: foreign requests, console errors or warnings, page errors. */
  problems: string[];
}

/**
 * Opens a page in a fresh context whose requests must all go to `origin`
 * (the control plane), with no console error or warning and no page error.
 * The context closes when the test ends, and the test fails if anything of
 * the kind happened on any of its pages.
 */
export async function newPage(
  browser: Browser,
  origin: string,
  options: NewPageOptions = {},
): Promise<WatchedPage> {
  const context = await browser.newContext({ javaScriptEnabled: options.javaScriptEnabled ?? true });
  const problems: string[] = [];
  const allowed = options.allowConsole ?? [];
  const watch = (page: Page) => {
    page.on("request", (request) => {
      const url = new URL(request.url());
      if (url.protocol === "data:") return;
      if (url.origin !== origin) problems.push(`request to another origin: ${request.method()} ${url.href}`);
    });
    page.on("console", (message) => {
      const type = message.type();
      if (type !== "error" && type !== "warning") return;
      const text = `${message.text()} (${message.location().url})`;
      if (!allowed.some((pattern) => pattern.test(text))) problems.push(`console ${type}: ${text}`);
    });
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  };
  context.on("page", watch);
  const page = await context.newPage();
  onTestFinished(async () => {
    await context.close();
    expect(problems, "the browser saw foreign requests, console errors or page errors").toEqual([]);
  });
  return { page, context, problems };
}

/** Signs in through the visible form with `token` and waits for the page it leads to. */
export async function signIn(page: Page, origin: string, token: string): Promise<void> {
  await page.goto(`${origin}/sign-in`);
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL((url) => url.pathname !== "/sign-in");
}

/** A new watched page already signed in with `token`. */
export async function signedInPage(
  browser: Browser,
  origin: string,
  token: string,
  options: NewPageOptions = {},
): Promise<WatchedPage> {
  const watched = await newPage(browser, origin, options);
  await signIn(watched.page, origin, token);
  return watched;
}

/** The element's text as the browser shows it (rendered text, hidden parts left out). */
export function shownText(locator: Locator): Promise<string> {
  // biome-ignore lint/performance/useDomNodeTextContent: Playwright's innerText is the shown text these tests check.
  return locator.innerText();
}

/** The element's computed background colour, e.g. `rgb(21, 128, 61)`. */
export function backgroundOf(locator: Locator): Promise<string> {
  return locator.evaluate((el) => (globalThis as any).getComputedStyle(el).backgroundColor as string);
}

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/** axe-core's serious and critical violations of the page, as "rule: target" lines. */
export async function seriousViolations(page: Page): Promise<string[]> {
  // Evaluated through the DevTools protocol, so the page's CSP (no eval) does not stop it.
  await page.evaluate(AXE_SOURCE);
  const results = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run(): Promise<any> } }).axe;
    return axe.run();
  });
  return (results.violations as any[])
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .flatMap((v) => v.nodes.map((n: any) => `${v.id}: ${n.target.join(" ")}`));
}
