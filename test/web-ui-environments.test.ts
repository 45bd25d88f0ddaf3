/**
 * The web UI's Environments page in a real browser (headless Chromium),
 * against a real control plane and real agents: Test Connection shows the
 * measured round trip, and a killed agent's environment turns Unhealthy on
 * the page. Heartbeats every second, so that happens within a few seconds.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { backgroundOf, launchBrowser, shownText, signedInPage } from "./support/browser.js";
import { type DrayStack, type StackEnvironment, startDrayStack } from "./support/dray-stack.js";

const HEARTBEAT_MS = 1000;
const SCHEMA = "create table notes (id bigint primary key, body text);";

let stack: DrayStack;
let source: StackEnvironment;
let target: StackEnvironment;
let browser: Browser;
let origin: string;
let operatorToken: string;

const card = (page: Page, environment: StackEnvironment) => page.locator(`#environment-${environment.id}`);
const healthOf = async (page: Page, environment: StackEnvironment) =>
  (await shownText(card(page, environment).locator(".badge"))).trim();

beforeAll(async () => {
  [stack, browser] = await Promise.all([
    startDrayStack(inject("databaseUrl"), inject("natsUrl"), { heartbeatMs: HEARTBEAT_MS }),
    launchBrowser(),
  ]);
  origin = stack.cp.httpUrl;
  const token = stack.admin.post("/api/v1/tokens", {
    name: "web-env-operator",
    role: "operator",
    organisationId: stack.organisationId,
  });
  [source, target] = await Promise.all([
    stack.addEnvironment("web-env-src", SCHEMA),
    stack.addEnvironment("web-env-dst", SCHEMA),
  ]);
  const created = await token;
  if (created.status !== 201) throw new Error(`cannot create a token: ${JSON.stringify(created.body)}`);
  operatorToken = created.body.token;
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await stack?.close();
});

describe("the Environments page", () => {
  it("Test Connection shows the round trip through the agent", async () => {
    const { page } = await signedInPage(browser, origin, operatorToken);
    await page.goto(`${origin}/environments`);
    const sourceCard = page.getByRole("article", { name: "web-env-src" });
    expect(await healthOf(page, source)).toBe("Healthy");
    expect(await sourceCard.locator("[data-test-result]").count()).toBe(0);
    expect(await shownText(sourceCard)).toMatch(/Last test: never/);

    await sourceCard.getByRole("button", { name: "Test Connection" }).click();
    const result = page.getByRole("article", { name: "web-env-src" }).locator("[data-test-result]");
    await result.waitFor();
    expect(await shownText(result)).toMatch(/^Connected: \d+ ms round trip through the agent/);
    // The result belongs to that card only, and the card now shows the last test.
    expect(await page.locator("[data-test-result]").count()).toBe(1);
    expect(await shownText(page.getByRole("article", { name: "web-env-src" }))).toMatch(
      /Last test: \d+ ms at \d{4}-\d\d-\d\d/,
    );
  });

  it("turns a killed agent's environment Unhealthy after a reload, the other stays Healthy", async () => {
    const { page } = await signedInPage(browser, origin, operatorToken);
    await page.goto(`${origin}/environments`);
    expect(await healthOf(page, source)).toBe("Healthy");
    expect(await healthOf(page, target)).toBe("Healthy");

    await source.agent.stop("SIGKILL");
    await expect
      .poll(
        async () => {
          await page.reload();
          return healthOf(page, source);
        },
        { timeout: 45_000, interval: 500 },
      )
      .toBe("Unhealthy");
    const unhealthy = card(page, source);
    expect(await backgroundOf(unhealthy.locator(".badge"))).toBe("rgb(185, 28, 28)");
    expect(await shownText(unhealthy)).toMatch(/no heartbeat/);
    expect(await shownText(unhealthy)).toMatch(/Agent not connected/);
    expect(await healthOf(page, target)).toBe("Healthy");
  });
});
