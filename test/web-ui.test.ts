/**
 * The web UI in a real browser (headless Chromium), against a real control
 * plane and real agents: signing in and out, running a pipeline from its card
 * and watching the Execution Monitor, cancelling through the dialog, the Run
 * History filter, what a viewer is offered, a monitor whose event stream is
 * dropped, and the monitor without JavaScript. Every page fails its test on a
 * request to another origin, a console error or warning, or a page error.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { backgroundOf, launchBrowser, newPage, shownText, signedInPage, signIn } from "./support/browser.js";
import {
  type DrayStack,
  type StackEnvironment,
  startDrayStack,
  waitForExecution,
} from "./support/dray-stack.js";
import {
  allPages,
  createPipeline,
  startRun,
  waitForAgentSleep,
  waitForProgress,
} from "./support/executions.js";

const ORDER_ROWS = 20_000;
const EVENT_ROWS = 10_000;
const CUSTOMER_ROWS = 5_000;

const SCHEMA = `
  create table orders (id bigint primary key, customer text not null, amount numeric(12,2), note text);
  create table events (id bigint primary key, kind text not null, payload text);
  create table customers (id bigint primary key, name text not null, email text);
  create table items (id bigint primary key, sku text not null, price numeric(12,2));
`;
const DATA = `
  insert into orders select g, 'customer-' || (g % 700), g * 0.01, repeat('n', 30) from generate_series(1, ${ORDER_ROWS}) g;
  insert into events select g, (array['click', 'view', 'buy'])[g % 3 + 1], md5(g::text) from generate_series(1, ${EVENT_ROWS}) g;
  insert into customers select g, 'name-' || g, 'c' || g || '@example.test' from generate_series(1, ${CUSTOMER_ROWS}) g;
  insert into items select g, 'sku-' || g, g * 0.1 from generate_series(1, ${ORDER_ROWS}) g;
  analyze;
`;
/**
 * In the target: writing order or item 10000 pauses 2 s and customer 2500 pauses 2 s, so those runs are
 * certainly seen mid-way; writing event 2500 sleeps 30 s while `hold` has a row, so a run of events
 * waits there until it is cancelled. Loads run with triggers off; these fire anyway (`enable always`).
 */
const TARGET_TRIGGERS = `
  create table hold (x int);
  insert into hold values (1);
  create function pause_orders() returns trigger language plpgsql as $$
  begin
    if new.id = 10000 then perform pg_sleep(2); end if;
    return new;
  end $$;
  create trigger pause_orders before insert on orders for each row execute function pause_orders();
  alter table orders enable always trigger pause_orders;
  create trigger pause_items before insert on items for each row execute function pause_orders();
  alter table items enable always trigger pause_items;
  create function pause_customers() returns trigger language plpgsql as $$
  begin
    if new.id = 2500 then perform pg_sleep(2); end if;
    return new;
  end $$;
  create trigger pause_customers before insert on customers for each row execute function pause_customers();
  alter table customers enable always trigger pause_customers;
  create function hold_events() returns trigger language plpgsql as $$
  begin
    if new.id = 2500 and exists (select 1 from hold) then perform pg_sleep(30); end if;
    return new;
  end $$;
  create trigger hold_events before insert on events for each row execute function hold_events();
  alter table events enable always trigger hold_events;
`;

/** Badge colours of the UI, as the browser computes them. */
const GREEN = "rgb(21, 128, 61)";
const ORANGE = "rgb(194, 65, 12)";

/**
 * Records, from the first paint on, every change of the monitor's progress bars
 * (with Date.now()) and of its overall badge, in `window.__drayMonitor`.
 */
const MONITOR_RECORDER = `(() => {
  const seen = { values: [], statuses: [] };
  window.__drayMonitor = seen;
  const snap = () => {
    const t = Date.now();
    for (const bar of document.querySelectorAll('[role="progressbar"]')) {
      const name = bar.getAttribute("aria-label");
      const value = Number(bar.getAttribute("aria-valuenow"));
      const last = seen.values.filter((v) => v.name === name).at(-1);
      if (!last || last.value !== value) seen.values.push({ t, name, value });
    }
    const badge = document.getElementById("run-status");
    const status = badge ? badge.textContent.trim() : null;
    if (status && seen.statuses.at(-1) !== status) seen.statuses.push(status);
  };
  const start = () => {
    snap();
    new MutationObserver(snap).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();`;

interface MonitorRecord {
  values: { t: number; name: string; value: number }[];
  statuses: string[];
}

let stack: DrayStack;
let source: StackEnvironment;
let target: StackEnvironment;
let browser: Browser;
let origin: string;
let operatorToken: string;
let viewerToken: string;
let ordersPipeline: string;
let eventsPipeline: string;
let customersPipeline: string;
let itemsPipeline: string;
/** The completed run of `orders` (flow 2), opened again without JavaScript. */
let ordersRun: string;

const tokenOf = async (name: string, role: "operator" | "viewer") => {
  const r = await stack.admin.post("/api/v1/tokens", { name, role, organisationId: stack.organisationId });
  if (r.status !== 201) throw new Error(`cannot create a ${role} token: ${JSON.stringify(r.body)}`);
  return r.body.token as string;
};

const badge = (page: Page) => page.locator("#run-status");
const badgeText = async (page: Page) => (await shownText(badge(page))).trim();
const badgeColour = (page: Page) => backgroundOf(badge(page));
/** Waits (up to `timeoutMs`) until the monitor's badge reads `text`, without reloading. */
const untilBadge = (page: Page, text: string, timeoutMs = 30_000) =>
  expect.poll(() => badgeText(page), { timeout: timeoutMs, interval: 100 }).toBe(text);
const executionIdOf = (page: Page) => {
  const match = new URL(page.url()).pathname.match(/^\/executions\/([^/]+)$/);
  if (!match) throw new Error(`not on an Execution Monitor: ${page.url()}`);
  return match[1]!;
};
const monitorRecord = (page: Page) => page.evaluate(() => (globalThis as any).__drayMonitor as MonitorRecord);
const pipelineCard = (page: Page, name: string) => page.getByRole("article", { name });

beforeAll(async () => {
  [stack, browser] = await Promise.all([
    startDrayStack(inject("databaseUrl"), inject("natsUrl")),
    launchBrowser(),
  ]);
  origin = stack.cp.httpUrl;
  [source, target, operatorToken, viewerToken] = await Promise.all([
    stack.addEnvironment("web-src", `${SCHEMA}${DATA}`),
    stack.addEnvironment("web-dst", `${SCHEMA}${TARGET_TRIGGERS}`),
    tokenOf("web-operator", "operator"),
    tokenOf("web-viewer", "viewer"),
  ]);
  const pipeline = (name: string, entity: string, writeStrategy: string) =>
    createPipeline(stack.api, {
      name,
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      writeStrategy,
      entities: [entity],
      batchSize: 500,
    });
  [ordersPipeline, eventsPipeline, customersPipeline, itemsPipeline] = await Promise.all([
    pipeline("orders-copy", "public.orders", "insert"),
    // merge: a run after a cancel continues over rows already written.
    pipeline("events-copy", "public.events", "merge"),
    pipeline("customers-copy", "public.customers", "insert"),
    pipeline("items-copy", "public.items", "insert"),
  ]);
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await stack?.close();
});

describe("signing in and out", () => {
  it("signs in with a token, refuses a wrong one, and signs out for good", async () => {
    const { page, context } = await newPage(browser, origin, {
      // The refused sign-in answers 401, which Chromium logs for the document it loads.
      allowConsole: [
        /^Failed to load resource: the server responded with a status of 401 \(Unauthorized\) \(http:\/\/[^)]+\/sign-in\)$/,
      ],
    });
    await page.goto(`${origin}/pipelines`);
    expect(new URL(page.url()).pathname).toBe("/sign-in");

    await page.getByLabel("API token").fill("dray_not_a_token_of_anyone");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect
      .poll(() => shownText(page.getByRole("alert")))
      .toMatch(/that API token is not valid, has been revoked or has expired/);
    expect(new URL(page.url()).pathname).toBe("/sign-in");
    expect(await page.getByRole("heading", { name: "Sign in to Dray" }).isVisible()).toBe(true);
    expect(await context.cookies()).toEqual([]);

    await page.getByLabel("API token").fill(operatorToken);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(`${origin}/pipelines`);
    expect(await page.getByRole("heading", { name: "Pipelines", level: 1 }).isVisible()).toBe(true);
    expect(await pipelineCard(page, "orders-copy").isVisible()).toBe(true);
    const [cookie] = await context.cookies();
    expect(cookie).toMatchObject({ name: "dray_session", httpOnly: true, sameSite: "Strict" });

    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(`${origin}/sign-in`);
    expect(await page.getByLabel("API token").isVisible()).toBe(true);

    // The old session cookie, replayed in a fresh browser, opens nothing.
    const replay = await newPage(browser, origin);
    await replay.context.addCookies([cookie!]);
    await replay.page.goto(`${origin}/pipelines`);
    expect(new URL(replay.page.url()).pathname).toBe("/sign-in");
    expect(await replay.page.getByRole("heading", { name: "Pipelines", level: 1 }).count()).toBe(0);
  });
});

describe("running a pipeline", () => {
  it("runs from its card: the monitor opens by itself and ends Completed in green; Run is disabled meanwhile", async () => {
    const { page } = await signedInPage(browser, origin, operatorToken);
    const second = await signedInPage(browser, origin, operatorToken);
    await page.addInitScript({ content: MONITOR_RECORDER });
    await page.goto(`${origin}/pipelines`);
    const card = pipelineCard(page, "orders-copy");
    await card.getByRole("button", { name: "Run", exact: true }).click();
    await page.waitForURL(/\/executions\/[^/]+$/);
    ordersRun = executionIdOf(page);
    expect(await page.getByRole("heading", { name: "Execution Monitor" }).isVisible()).toBe(true);

    // While it runs, the card's Run button is disabled, with its reason.
    await waitForProgress(stack.api, ordersRun, 1);
    await second.page.goto(`${origin}/pipelines`);
    const otherCard = pipelineCard(second.page, "orders-copy");
    expect(await otherCard.getByRole("button", { name: "Run", exact: true }).isDisabled()).toBe(true);
    expect(await shownText(otherCard)).toMatch(/A run is (in progress|queued): open its monitor/);

    await untilBadge(page, "Completed");
    expect(await badgeColour(page)).toBe(GREEN);
    const bar = page.getByRole("progressbar", { name: "public.orders" });
    expect(await bar.getAttribute("aria-valuenow")).toBe("100");
    expect(await page.locator("#live").getAttribute("data-final")).toBe("true");
    const seen = await monitorRecord(page);
    expect(seen.statuses.at(-1)).toBe("Completed");
    expect((await waitForExecution(stack.api, ordersRun, 5_000)).status).toBe("completed");

    // Once it ended, the card offers Run again.
    await second.page.reload();
    expect(await otherCard.getByRole("button", { name: "Run", exact: true }).isEnabled()).toBe(true);
  });

  it("shows progress moving while the run goes on", async () => {
    const { page } = await signedInPage(browser, origin, operatorToken);
    await page.addInitScript({ content: MONITOR_RECORDER });
    await page.goto(`${origin}/pipelines/${itemsPipeline}`);
    await page.getByRole("button", { name: "Run Pipeline" }).click();
    await page.waitForURL(/\/executions\/[^/]+$/);
    const id = executionIdOf(page);
    await untilBadge(page, "Completed");

    const seen = await monitorRecord(page);
    const changes = seen.values.filter((v) => v.name === "public.items");
    const values = changes.map((v) => v.value);
    expect(
      values.some((v) => v > 0 && v < 100),
      `progress values seen: ${values.join(", ")}`,
    ).toBe(true);
    expect(values).toEqual([...values].sort((a, b) => a - b));
    expect(values.at(-1)).toBe(100);
    expect(seen.statuses).toContain("In Progress");

    // Not asserted: how long after a batch commit the page showed it.
    const batches = await allPages(stack.api, `/api/v1/executions/${id}/batches`, "batches");
    const commits = batches
      .map((b) => Date.parse(b.finishedAt))
      .filter((t) => !Number.isNaN(t))
      .sort((a, b) => a - b);
    const delays = changes
      .slice(1)
      .map((v) => v.t - (commits.filter((c) => c <= v.t).at(-1) ?? Number.NaN))
      .filter((d) => !Number.isNaN(d))
      .sort((a, b) => a - b);
    if (delays.length > 0)
      console.log(
        `monitor: batch commit → progress bar change, ${delays.length} changes: median ${
          delays[Math.floor(delays.length / 2)]
        } ms, max ${delays.at(-1)} ms`,
      );
  });

  it("a viewer is offered no Run, Run Pipeline or Cancel, even while a run can be cancelled", async () => {
    const run = await startRun(stack.api, eventsPipeline);
    await waitForAgentSleep(target.db.sql);
    try {
      const viewer = await signedInPage(browser, origin, viewerToken);
      const operator = await signedInPage(browser, origin, operatorToken);
      for (const { page } of [viewer, operator]) await page.goto(`${origin}/executions/${run.id}`);
      // The operator is offered Cancel on this very run; the viewer is not.
      expect(await operator.page.getByRole("button", { name: "Cancel", exact: true }).count()).toBe(1);
      expect(await badgeText(viewer.page)).toBe("In Progress");
      expect(await viewer.page.getByRole("button", { name: "Cancel", exact: true }).count()).toBe(0);

      await viewer.page.goto(`${origin}/pipelines`);
      expect(await pipelineCard(viewer.page, "events-copy").isVisible()).toBe(true);
      expect(await viewer.page.getByRole("button", { name: "Run", exact: true }).count()).toBe(0);
      await viewer.page.goto(`${origin}/pipelines/${ordersPipeline}`);
      expect(await viewer.page.getByRole("heading", { name: "Run History" }).isVisible()).toBe(true);
      expect(await viewer.page.getByRole("button", { name: "Run Pipeline" }).count()).toBe(0);
      await operator.page.goto(`${origin}/pipelines/${ordersPipeline}`);
      expect(await operator.page.getByRole("button", { name: "Run Pipeline" }).count()).toBe(1);
    } finally {
      await stack.api.post(`/api/v1/executions/${run.id}/cancel`, { reason: "viewer test done" });
    }
    expect((await waitForExecution(stack.api, run.id, 20_000)).status).toBe("cancelled");
  });

  it("cancels through the dialog: Cancelling, then Cancelled in orange", async () => {
    const { page } = await signedInPage(browser, origin, operatorToken);
    await page.addInitScript({ content: MONITOR_RECORDER });
    await page.goto(`${origin}/pipelines/${eventsPipeline}`);
    await page.getByRole("button", { name: "Run Pipeline" }).click();
    await page.waitForURL(/\/executions\/[^/]+$/);
    const id = executionIdOf(page);
    await waitForAgentSleep(target.db.sql);
    await untilBadge(page, "In Progress");

    await page.getByRole("button", { name: "Cancel", exact: true }).click();
    const dialog = page.getByRole("dialog", { name: "Cancel this run?" });
    expect(await dialog.isVisible()).toBe(true);
    expect(await shownText(dialog)).toMatch(/Records already committed to the target are not rolled\s+back/);
    // Keep running closes it and the run goes on.
    await dialog.getByRole("button", { name: "Keep running" }).click();
    expect(await dialog.isVisible()).toBe(false);
    expect(await badgeText(page)).toBe("In Progress");

    await page.getByRole("button", { name: "Cancel", exact: true }).click();
    await dialog.getByRole("button", { name: "Cancel run" }).click();
    await page.waitForURL(`${origin}/executions/${id}`);
    await untilBadge(page, "Cancelled", 20_000);
    expect(await badgeColour(page)).toBe(ORANGE);
    expect(await page.getByRole("button", { name: "Cancel", exact: true }).isVisible()).toBe(false);
    const seen = await monitorRecord(page);
    // The page after the confirm first showed Cancelling (the recorder starts anew on that page).
    expect(seen.statuses).toEqual(["Cancelling", "Cancelled"]);
    expect(await shownText(page.locator("#live"))).toMatch(/Batches committed before the\s+cancel stay/);
  });

  it("Run History: filters by status and date, and a row opens its monitor", async () => {
    await target.db.sql`delete from hold`;
    const { page } = await signedInPage(browser, origin, operatorToken);
    await page.goto(`${origin}/pipelines/${eventsPipeline}`);
    await page.getByRole("button", { name: "Run Pipeline" }).click();
    await page.waitForURL(/\/executions\/[^/]+$/);
    const completedId = executionIdOf(page);
    await untilBadge(page, "Completed");

    await page.goto(`${origin}/pipelines/${eventsPipeline}`);
    const history = page.getByRole("region", { name: "Run History" });
    const rowStatuses = async () =>
      (await history.locator("tbody tr td:nth-child(2)").allInnerTexts()).map((s) => s.trim());
    expect((await rowStatuses()).sort()).toEqual(["Cancelled", "Cancelled", "Completed"]);

    await history.getByLabel("Status").selectOption({ label: "Completed" });
    await history.getByRole("button", { name: "Filter" }).click();
    await page.waitForURL(/status=completed/);
    expect(await rowStatuses()).toEqual(["Completed"]);
    expect(await history.getByRole("link").first().getAttribute("href")).toBe(`/executions/${completedId}`);

    await history.getByLabel("Status").selectOption({ label: "Any status" });
    const future = new Date(Date.now() + 2 * 24 * 60 * 60 * 1000).toISOString().slice(0, 10);
    await history.getByLabel("From").fill(future);
    await history.getByRole("button", { name: "Filter" }).click();
    await page.waitForURL(new RegExp(`from=${future}`));
    expect(await rowStatuses()).toEqual([]);
    expect(await shownText(history)).toMatch(/No runs match\./);

    await page.goto(`${origin}/pipelines/${eventsPipeline}?status=cancelled`);
    const cancelledLink = history.locator("tbody tr").first().getByRole("link");
    const href = await cancelledLink.getAttribute("href");
    await cancelledLink.click();
    await page.waitForURL(`${origin}${href}`);
    expect(await page.getByRole("heading", { name: "Execution Monitor" }).isVisible()).toBe(true);
    expect(await badgeText(page)).toBe("Cancelled");
  });

  it("ends on the right final state when the event stream is dropped (polling takes over)", async () => {
    const { page } = await signedInPage(browser, origin, operatorToken, {
      // The aborted EventSource request is logged by Chromium.
      allowConsole: [
        /^Failed to load resource: net::ERR_FAILED \(http:\/\/[^)]+\/api\/v1\/executions\/[^/]+\/events\)$/,
      ],
    });
    let aborted = 0;
    await page.route("**/events*", async (route) => {
      aborted++;
      await route.abort("failed");
    });
    await page.goto(`${origin}/pipelines/${customersPipeline}`);
    await page.getByRole("button", { name: "Run Pipeline" }).click();
    await page.waitForURL(/\/executions\/[^/]+$/);
    const id = executionIdOf(page);
    expect(await page.locator("#live").getAttribute("data-final")).toBe("false");
    await untilBadge(page, "Completed", 40_000);
    expect(aborted).toBeGreaterThan(0);
    expect(await badgeColour(page)).toBe(GREEN);
    expect(
      await page.getByRole("progressbar", { name: "public.customers" }).getAttribute("aria-valuenow"),
    ).toBe("100");
    expect(await page.locator("#live").getAttribute("data-final")).toBe("true");
    expect((await waitForExecution(stack.api, id, 5_000)).status).toBe("completed");
  });

  it("without JavaScript, a finished run's monitor shows its final badge and progress bars", async () => {
    expect(ordersRun).toBeDefined();
    const { page } = await newPage(browser, origin, { javaScriptEnabled: false });
    await signIn(page, origin, viewerToken);
    await page.goto(`${origin}/executions/${ordersRun}`);
    expect(await badgeText(page)).toBe("Completed");
    expect(await badgeColour(page)).toBe(GREEN);
    const bar = page.getByRole("progressbar", { name: "public.orders" });
    expect(await bar.getAttribute("aria-valuenow")).toBe("100");
    expect(await bar.getAttribute("aria-valuetext")).toBe("100% (20,000 of 20,000 records)");
    expect(await shownText(page.locator("#live"))).toMatch(/Records\s*20,000/);
  });
});
