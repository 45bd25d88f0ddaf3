import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { eventually } from "./support/api-client.js";
import { launchBrowser, seriousViolations, shownText, signedInPage } from "./support/browser.js";
import {
  continuousRows,
  continuousTable,
  createContinuousPipeline,
  startContinuous,
  stopAndWait,
  stopQuietly,
  waitForPolls,
} from "./support/continuous.js";
import {
  type DrayStack,
  type StackEnvironment,
  startDrayStack,
  waitForExecution,
} from "./support/dray-stack.js";
import { createPipeline, tableDigest } from "./support/executions.js";

/** Old enough that every initial row is under the high-water mark from the first poll. */
const PAST = "timestamptz '2024-03-01 12:00:00+00'";
const INITIAL_ROWS = 50;
const ADDED_ROWS = 30;
const UPLOADS_TABLE =
  "create table public.uploads (id integer primary key, name text not null, amount integer);";

let stack: DrayStack;
let source: StackEnvironment;
let target: StackEnvironment;
let browser: Browser;
let origin: string;
let operatorToken: string;
let viewerToken: string;
let continuousPipeline: string;
let filesPipeline: string;

const tokenOf = async (name: string, role: "operator" | "viewer") => {
  const r = await stack.admin.post("/api/v1/tokens", { name, role, organisationId: stack.organisationId });
  if (r.status !== 201) throw new Error(`cannot create a ${role} token: ${JSON.stringify(r.body)}`);
  return r.body.token as string;
};

const badgeText = async (page: Page) => (await shownText(page.locator("#run-status"))).trim();
const untilBadge = (page: Page, text: string, timeoutMs = 30_000) =>
  expect.poll(() => badgeText(page), { timeout: timeoutMs, interval: 100 }).toBe(text);
const executionIdOf = (page: Page) => {
  const match = new URL(page.url()).pathname.match(/^\/executions\/([^/]+)$/);
  if (!match) throw new Error(`not on an Execution Monitor: ${page.url()}`);
  return match[1]!;
};
const pipelineCard = (page: Page, name: string) => page.getByRole("article", { name });
const pollsSection = (page: Page) => page.getByRole("region", { name: "Polls" });
/** The poll count the monitor shows ("<N> polls · last at …"), without reloading. */
const shownPolls = async (page: Page): Promise<number> => {
  const match = (await shownText(pollsSection(page))).match(/(\d[\d,]*) polls/);
  return match ? Number(match[1]!.replaceAll(",", "")) : -1;
};
/** The "Poll N: X rows copied" entries the monitor lists, as { poll, rows }. */
const shownPollEntries = async (page: Page): Promise<{ poll: number; rows: number }[]> => {
  const items = await pollsSection(page).getByRole("listitem").allInnerTexts();
  return items.flatMap((text) => {
    const match = text.match(/Poll (\d+): (\d+) rows copied/);
    return match ? [{ poll: Number(match[1]), rows: Number(match[2]) }] : [];
  });
};
/** A settings row's value, by its row header. */
const settingOf = (page: Page, name: string) =>
  shownText(
    page.getByRole("region", { name: "Settings" }).getByRole("row", { name: new RegExp(`^${name}`) }),
  );

/** Uploads `text` as the form field `file` of the files pipeline `pipeline`; returns the 202 body. */
async function upload(pipeline: string, filename: string, text: string): Promise<any> {
  const form = new FormData();
  form.append("pipeline", pipeline);
  form.append("file", new Blob([text]), filename);
  const response = await fetch(`${stack.cp.httpUrl}/api/v1/pipeline/upload`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.apiToken}` },
    body: form,
  });
  const body = await response.json();
  if (response.status !== 202) throw new Error(`upload refused: ${response.status} ${JSON.stringify(body)}`);
  return body;
}

/** The files of a pipeline (first page), through the API. */
async function filesOf(pipelineId: string): Promise<any[]> {
  const r = await stack.api.get(`/api/v1/pipelines/${pipelineId}/files?limit=100`);
  expect(r.status).toBe(200);
  return r.body.files;
}

/** Waits until the file with this token is no longer Unloaded and returns it. */
function settledFile(pipelineId: string, pipelineToken: string): Promise<any> {
  return eventually(
    async () => {
      const file = (await filesOf(pipelineId)).find((f) => f.pipelineToken === pipelineToken);
      return file && file.state !== "Unloaded" ? file : undefined;
    },
    90_000,
    200,
  );
}

/** CSV text with a header and rows `id,name-<id>,<id*10>` for ids from..to. */
function csvRows(from: number, to: number): string {
  let text = "id,name,amount\n";
  for (let id = from; id <= to; id++) text += `${id},name-${id},${id * 10}\n`;
  return text;
}

beforeAll(async () => {
  [stack, browser] = await Promise.all([
    startDrayStack(inject("databaseUrl"), inject("natsUrl")),
    launchBrowser(),
  ]);
  origin = stack.cp.httpUrl;
  [source, target, operatorToken, viewerToken] = await Promise.all([
    stack.addEnvironment("cf-src", `${continuousTable("t")}${continuousRows("t", 1, INITIAL_ROWS, PAST)}`),
    stack.addEnvironment("cf-dst", `${continuousTable("t")}${UPLOADS_TABLE}`),
    tokenOf("cf-operator", "operator"),
    tokenOf("cf-viewer", "viewer"),
  ]);
  [continuousPipeline, filesPipeline] = await Promise.all([
    createContinuousPipeline(stack.api, {
      name: "cont-copy",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      entities: ["public.t"],
      batchIntervalMs: 300,
      safetyLagMs: 0,
    }),
    createPipeline(stack.api, {
      name: "files-copy",
      sourceKind: "files",
      targetEnvironmentId: target.id,
      writeStrategy: "insert",
      entities: ["public.uploads"],
      fileSettings: { format: "csv" },
    }),
  ]);
}, 120_000);

afterAll(async () => {
  await stopQuietly(stack?.api, continuousPipeline);
  await browser?.close();
  await stack?.close();
});

describe("a continuous pipeline", () => {
  it("starts from its page, counts polls, lists the polls that copied rows, and stops Completed", async () => {
    const { page } = await signedInPage(browser, origin, operatorToken);
    const second = await signedInPage(browser, origin, operatorToken);
    const viewer = await signedInPage(browser, origin, viewerToken);

    // Before the start: the card offers Start (not Run); the page says how it runs.
    await page.goto(`${origin}/pipelines`);
    const card = pipelineCard(page, "cont-copy");
    expect(await card.getByRole("button", { name: "Start", exact: true }).isEnabled()).toBe(true);
    expect(await card.getByRole("button", { name: "Run", exact: true }).count()).toBe(0);
    await page.goto(`${origin}/pipelines/${continuousPipeline}`);
    expect(await settingOf(page, "Mode")).toMatch(/continuous: by .+, polling every .+ when idle/);
    expect(await page.getByRole("button", { name: "Run Pipeline" }).count()).toBe(0);
    expect(await page.getByRole("button", { name: "Stop Pipeline" }).count()).toBe(0);

    await page.getByRole("button", { name: "Start Pipeline" }).click();
    await page.waitForURL(/\/executions\/[^/]+$/);
    const id = executionIdOf(page);
    expect(await page.getByRole("heading", { name: "Execution Monitor" }).isVisible()).toBe(true);
    await untilBadge(page, "In Progress");

    // The first rows show up as a "Poll N: X rows copied" entry; the poll count grows on the open page
    // (no reload) while the pipeline idles.
    const copiedRows = async () => (await shownPollEntries(page)).reduce((n, e) => n + e.rows, 0);
    await expect.poll(copiedRows, { timeout: 30_000, interval: 200 }).toBe(INITIAL_ROWS);
    const before = await shownPollEntries(page);
    const firstSeen = await shownPolls(page);
    expect(firstSeen).toBeGreaterThanOrEqual(Math.max(...before.map((e) => e.poll)));
    await expect.poll(() => shownPolls(page), { timeout: 30_000, interval: 200 }).toBeGreaterThan(firstSeen);
    expect(await shownText(pollsSection(page))).toMatch(/polls · last at /);

    // New source rows show up as a later poll's entry.
    await source.db.sql.unsafe(continuousRows("t", INITIAL_ROWS + 1, INITIAL_ROWS + ADDED_ROWS, "now()"));
    await expect.poll(copiedRows, { timeout: 30_000, interval: 200 }).toBe(INITIAL_ROWS + ADDED_ROWS);
    const added = (await shownPollEntries(page)).filter((e) => !before.some((b) => b.poll === e.poll));
    expect(
      added.reduce((n, e) => n + e.rows, 0),
      JSON.stringify(added),
    ).toBe(ADDED_ROWS);
    expect(Math.min(...added.map((e) => e.poll))).toBeGreaterThan(firstSeen);

    // While it runs: the card's Start is disabled with its reason; the page offers Stop, not Start.
    await second.page.goto(`${origin}/pipelines`);
    const otherCard = pipelineCard(second.page, "cont-copy");
    expect(await otherCard.getByRole("button", { name: "Start", exact: true }).isDisabled()).toBe(true);
    expect(await shownText(otherCard)).toMatch(/The pipeline is running: open its monitor/);
    expect(await otherCard.getByRole("link", { name: "open its monitor" }).getAttribute("href")).toBe(
      `/executions/${id}`,
    );
    await second.page.goto(`${origin}/pipelines/${continuousPipeline}`);
    expect(await second.page.getByRole("button", { name: "Start Pipeline" }).isDisabled()).toBe(true);
    expect(await second.page.getByRole("button", { name: "Stop Pipeline" }).isEnabled()).toBe(true);

    // A viewer sees the running pipeline but is offered neither Start nor Stop.
    await viewer.page.goto(`${origin}/executions/${id}`);
    expect(await badgeText(viewer.page)).toBe("In Progress");
    expect(await pollsSection(viewer.page).isVisible()).toBe(true);
    expect(await viewer.page.getByRole("button", { name: "Stop Pipeline" }).count()).toBe(0);
    await viewer.page.goto(`${origin}/pipelines/${continuousPipeline}`);
    expect(await viewer.page.getByRole("button", { name: "Start Pipeline" }).count()).toBe(0);
    expect(await viewer.page.getByRole("button", { name: "Stop Pipeline" }).count()).toBe(0);
    await viewer.page.goto(`${origin}/pipelines`);
    expect(await pipelineCard(viewer.page, "cont-copy").isVisible()).toBe(true);
    expect(await viewer.page.getByRole("button", { name: "Start", exact: true }).count()).toBe(0);

    // Stop Pipeline in the monitor's header: the run ends at a batch boundary, Completed.
    await page.getByRole("button", { name: "Stop Pipeline" }).click();
    await page.waitForURL(`${origin}/executions/${id}`);
    await untilBadge(page, "Completed");
    expect(await page.getByRole("button", { name: "Stop Pipeline" }).count()).toBe(0);
    expect((await waitForExecution(stack.api, id, 10_000)).status).toBe("completed");
    const [s, t] = await Promise.all([tableDigest(source.db.sql, "t"), tableDigest(target.db.sql, "t")]);
    expect(s.rows).toBe(INITIAL_ROWS + ADDED_ROWS);
    expect(t).toEqual(s);

    // Once stopped, the card offers Start again.
    await second.page.goto(`${origin}/pipelines`);
    expect(await otherCard.getByRole("button", { name: "Start", exact: true }).isEnabled()).toBe(true);
  });
});

describe("a files pipeline", () => {
  it("lists uploaded files Loaded with their rows, drops one, and offers a viewer no Drop", async () => {
    const people = await upload("files-copy", "people.csv", csvRows(1, 20));
    const more = await upload("files-copy", "more.csv", csvRows(21, 25));
    expect(await settledFile(filesPipeline, people.pipelineToken)).toMatchObject({
      state: "Loaded",
      rowsLoaded: 20,
    });
    expect(await settledFile(filesPipeline, more.pipelineToken)).toMatchObject({
      state: "Loaded",
      rowsLoaded: 5,
    });

    const { page } = await signedInPage(browser, origin, operatorToken);
    await page.goto(`${origin}/pipelines`);
    const card = pipelineCard(page, "files-copy");
    expect(await shownText(card)).toMatch(/Loads each uploaded file: public\.uploads/);
    expect(await card.getByRole("button").count()).toBe(0);

    await page.goto(`${origin}/pipelines/${filesPipeline}`);
    expect(await settingOf(page, "Files")).toMatch(/^Files\s+csv/);
    expect(await page.getByRole("heading", { name: "Plan" }).count()).toBe(0);
    for (const name of ["Run Pipeline", "Start Pipeline", "Stop Pipeline"])
      expect(await page.getByRole("button", { name }).count(), name).toBe(0);
    const files = page.getByRole("region", { name: "Files" });
    const headers = (await files.getByRole("columnheader").allInnerTexts()).map((h) => h.trim());
    expect(headers.slice(0, 5)).toEqual(["File", "State", "Rows", "Uploaded", "Error"]);
    const row = (filename: string) => files.locator("tbody tr", { hasText: filename });
    const cells = async (filename: string) =>
      (await row(filename).locator("td").allInnerTexts()).map((c) => c.trim());
    expect((await cells("people.csv")).slice(1, 3)).toEqual(["Loaded", "20"]);
    expect((await cells("more.csv")).slice(1, 3)).toEqual(["Loaded", "5"]);

    await files.getByRole("button", { name: "Drop people.csv" }).click();
    await page.waitForURL(`${origin}/pipelines/${filesPipeline}#files`);
    expect(await row("people.csv").count()).toBe(0);
    expect((await cells("more.csv")).slice(1, 3)).toEqual(["Loaded", "5"]);
    expect((await filesOf(filesPipeline)).map((f) => f.filename)).toEqual(["more.csv"]);

    const viewer = await signedInPage(browser, origin, viewerToken);
    await viewer.page.goto(`${origin}/pipelines/${filesPipeline}`);
    const viewerFiles = viewer.page.getByRole("region", { name: "Files" });
    expect(await viewerFiles.locator("tbody tr", { hasText: "more.csv" }).isVisible()).toBe(true);
    expect(await viewerFiles.getByRole("columnheader", { name: "DROP FILE" }).count()).toBe(0);
    expect(await viewer.page.getByRole("button", { name: /^Drop/ }).count()).toBe(0);
    for (const name of ["Run Pipeline", "Start Pipeline", "Stop Pipeline"])
      expect(await viewer.page.getByRole("button", { name }).count(), name).toBe(0);
  });
});

describe("accessibility", () => {
  it("has no serious or critical axe violation on a files pipeline's page and a running continuous monitor", async () => {
    const run = await startContinuous(stack.api, continuousPipeline);
    try {
      await waitForPolls(stack.api, run.id, 1);
      const { page } = await signedInPage(browser, origin, operatorToken);
      for (const path of [
        `/pipelines/${filesPipeline}`,
        `/executions/${run.id}`,
        `/pipelines/${continuousPipeline}`,
      ]) {
        await page.goto(`${origin}${path}`);
        expect(await seriousViolations(page), path).toEqual([]);
      }
      // The monitor checked above was a live one, with its Polls section and Stop Pipeline.
      await page.goto(`${origin}/executions/${run.id}`);
      expect(await pollsSection(page).isVisible()).toBe(true);
      expect(await page.getByRole("button", { name: "Stop Pipeline" }).isVisible()).toBe(true);
    } finally {
      expect((await stopAndWait(stack.api, continuousPipeline, run.id, 30_000)).status).toBe("completed");
    }
  });
});
