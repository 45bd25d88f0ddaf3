/**
 * The web UI's security and page contract, in process over a real store
 * (Chromium drives the flows in test/web-ui*.test.ts): sign-in with a token or
 * a one-time link gives an HttpOnly, SameSite=Strict session; pages without
 * one go to sign-in; every form POST needs the session's CSRF token and a
 * same-origin Origin; roles apply (a viewer cannot run); organisations are
 * kept apart; sign-out and a revoked token end the session; every page
 * carries the strict CSP; names are escaped; assets are immutable.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONTENT_SECURITY_POLICY } from "../src/web/web-security.js";
import {
  type ExecutionsHarness,
  insertExecution,
  insertPipeline,
  openExecutionsHarness,
} from "./api-executions-fixtures.js";

let x: ExecutionsHarness;
let org: { id: string; admin: string; operator: string; viewer: string };
let other: { id: string; admin: string; operator: string; viewer: string };
let pipelineId: string;
let otherPipelineId: string;
const ORIGIN = "http://localhost";

beforeAll(async () => {
  x = await openExecutionsHarness();
  org = await x.h.tenant("web-ui");
  other = await x.h.tenant("web-ui-other");
  pipelineId = (await insertPipeline(x.db, org.id, `<script>alert("x")</script>`)).id;
  otherPipelineId = (await insertPipeline(x.db, other.id, "theirs")).id;
});

afterAll(async () => {
  await x?.close();
});

/** A browser-like request: the session cookie, and form fields as application/x-www-form-urlencoded. */
async function request(
  method: string,
  path: string,
  o: { cookie?: string; form?: Record<string, string>; origin?: string | null } = {},
) {
  const headers: Record<string, string> = {};
  if (o.cookie) headers.cookie = o.cookie;
  if (o.origin !== null && method !== "GET") headers.origin = o.origin ?? ORIGIN;
  let body: string | undefined;
  if (o.form) {
    body = new URLSearchParams(o.form).toString();
    headers["content-type"] = "application/x-www-form-urlencoded";
  }
  const res = await x.app.request(`${ORIGIN}${path}`, { method, headers, ...(body ? { body } : {}) });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** Signs in with `token`; returns the cookie header and the page's CSRF token. */
async function signIn(token: string): Promise<{ cookie: string; csrf: string }> {
  const res = await request("POST", "/sign-in", { form: { token, next: "/pipelines" } });
  expect(res.status).toBe(303);
  const set = res.headers.get("set-cookie") ?? "";
  const cookie = set.split(";")[0]!;
  const page = await request("GET", "/pipelines", { cookie });
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page.text)?.[1];
  expect(csrf).toBeTruthy();
  return { cookie, csrf: csrf! };
}

describe("signing in", () => {
  it("sends a page without a session to sign-in, remembering where it was going", async () => {
    const res = await request("GET", "/pipelines");
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/sign-in?next=%2Fpipelines");
    const form = await request("GET", "/sign-in?next=%2Fpipelines");
    expect(form.status).toBe(200);
    expect(form.text).toContain('name="token"');
  });

  it("trades a token for an HttpOnly, SameSite=Strict session cookie, and goes back to a local page only", async () => {
    const res = await request("POST", "/sign-in", { form: { token: org.viewer, next: "//evil.example/x" } });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/pipelines");
    const cookie = res.headers.get("set-cookie") ?? "";
    expect(cookie).toMatch(/^dray_session=[A-Za-z0-9]{43};/);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).not.toContain(org.viewer);
  });

  it("refuses a wrong token with a clear message, and the system-admin token", async () => {
    const wrong = await request("POST", "/sign-in", { form: { token: "dray_nope", next: "/pipelines" } });
    expect(wrong.status).toBe(401);
    expect(wrong.text).toContain("that API token is not valid");
    expect(wrong.headers.get("set-cookie")).toBeNull();
    const system = await request("POST", "/sign-in", { form: { token: x.h.systemToken, next: "/" } });
    expect(system.status).toBe(401);
    expect(system.text).toContain("sign in with a token of an organisation");
  });

  it("opens a session once from a one-time link", async () => {
    const link = await x.call("POST", "/api/v1/sign-in-links", { token: org.viewer });
    expect(link.status).toBe(201);
    expect(link.body.path).toMatch(/^\/sign-in\/link\/[A-Za-z0-9]{43}$/);
    const first = await request("GET", link.body.path);
    expect(first.status).toBe(303);
    expect(first.headers.get("set-cookie")).toMatch(/^dray_session=/);
    const again = await request("GET", link.body.path);
    expect(again.status).toBe(401);
    expect(again.text).toContain("already used or has expired");
  });

  it("ends the session on sign-out: the cookie opens nothing after", async () => {
    const { cookie, csrf } = await signIn(org.viewer);
    const out = await request("POST", "/sign-out", { cookie, form: { _csrf: csrf } });
    expect(out.status).toBe(303);
    expect(out.headers.get("location")).toBe("/sign-in");
    expect((await request("GET", "/pipelines", { cookie })).status).toBe(303);
  });

  it("ends the session when its token is revoked", async () => {
    const created = await x.call("POST", "/api/v1/tokens", {
      token: org.admin,
      json: { name: "short-lived", role: "viewer" },
    });
    const { cookie } = await signIn(created.body.token);
    expect((await request("GET", "/pipelines", { cookie })).status).toBe(200);
    await x.call("DELETE", `/api/v1/tokens/${created.body.id}`, { token: org.admin });
    expect((await request("GET", "/pipelines", { cookie })).status).toBe(303);
  });
});

describe("pages", () => {
  it("carry the strict Content-Security-Policy and no-store, and escape what users named", async () => {
    const { cookie } = await signIn(org.viewer);
    const res = await request("GET", "/pipelines", { cookie });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-security-policy")).toBe(CONTENT_SECURITY_POLICY);
    expect(CONTENT_SECURITY_POLICY).toContain("default-src 'self'");
    expect(CONTENT_SECURITY_POLICY).not.toContain("unsafe");
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    expect(res.text).not.toContain(`<script>alert("x")</script>`);
    expect(res.text).toContain("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;");
    // No inline script: every <script> has a src on this origin.
    for (const tag of res.text.match(/<script[^>]*>/g) ?? []) expect(tag).toMatch(/src="\/ui\/assets\//);
  });

  it("serve the script and stylesheet at hashed paths with immutable caching", async () => {
    const { cookie } = await signIn(org.viewer);
    const page = await request("GET", "/pipelines", { cookie });
    const script = /src="(\/ui\/assets\/app\.[0-9a-f]{12}\.js)"/.exec(page.text)?.[1];
    const style = /href="(\/ui\/assets\/app\.[0-9a-f]{12}\.css)"/.exec(page.text)?.[1];
    for (const path of [script, style]) {
      const res = await request("GET", path!);
      expect(res.status).toBe(200);
      expect(res.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    }
    expect(Buffer.byteLength((await request("GET", script!)).text)).toBeLessThan(30_000);
  });

  it("offer Run to an operator and not to a viewer", async () => {
    const viewer = await signIn(org.viewer);
    const operator = await signIn(org.operator);
    const seen = (await request("GET", "/pipelines", { cookie: viewer.cookie })).text;
    const ran = (await request("GET", "/pipelines", { cookie: operator.cookie })).text;
    expect(seen).not.toContain(`/pipelines/${pipelineId}/run`);
    expect(ran).toContain(`action="/pipelines/${pipelineId}/run"`);
  });

  it("show 404 for another organisation's pipeline and execution", async () => {
    const { cookie } = await signIn(org.viewer);
    expect((await request("GET", `/pipelines/${otherPipelineId}`, { cookie })).status).toBe(404);
    const theirs = await insertExecution(x.db, { id: otherPipelineId, organisationId: other.id });
    const res = await request("GET", `/executions/${theirs.id}`, { cookie });
    expect(res.status).toBe(404);
    expect(res.text).toContain(`execution ${theirs.id} was not found`);
  });

  it("render a finished run's monitor completely, with its final state flagged for the script", async () => {
    const { cookie } = await signIn(org.viewer);
    const run = await insertExecution(x.db, { id: pipelineId, organisationId: org.id }, { status: "failed" });
    const page = await request("GET", `/executions/${run.id}`, { cookie });
    expect(page.status).toBe(200);
    expect(page.text).toContain('data-final="true"');
    expect(page.text).toContain('class="badge failed"');
    const live = await request("GET", `/executions/${run.id}/live`, { cookie });
    expect(live.headers.get("x-dray-final")).toBe("true");
    expect(live.text).toContain("Failed");
  });
});

describe("the environments page", () => {
  it("serves the health parts of its cards for the script to refresh, of this organisation only", async () => {
    const { cookie } = await signIn(org.viewer);
    const page = await request("GET", "/environments", { cookie });
    expect(page.text).toContain('data-poll="/environments/health"');
    const parts = await request("GET", "/environments/health", { cookie });
    expect(parts.status).toBe(200);
    const ids = [...parts.text.matchAll(/data-swap-id="health-([0-9a-f-]{36})"/g)].map((m) => m[1]);
    // insertPipeline made two environments in this organisation; the other organisation's are not there.
    expect(ids).toHaveLength(2);
    for (const id of ids) expect(page.text).toContain(`data-swap-id="health-${id}"`);
    expect(parts.text).toContain('class="badge unknown"');
    expect(parts.text).not.toContain("theirs");
  });
});

describe("adding an environment from the page", () => {
  it("shows the enrollment token once with the agent command, and says what is wrong with a bad name", async () => {
    const { cookie, csrf } = await signIn(org.operator);
    const added = await request("POST", "/environments", {
      cookie,
      form: { _csrf: csrf, name: "from-the-page" },
    });
    expect(added.status).toBe(200);
    expect(added.text).toMatch(/DRAY_ENROLLMENT_TOKEN=dray_enr_[A-Za-z0-9]+/);
    expect(added.text).toContain("DRAY_CONTROL_PLANE_URL=http://localhost:7070");
    const again = await request("GET", "/environments", { cookie });
    expect(again.text).not.toContain("DRAY_ENROLLMENT_TOKEN=");
    const empty = await request("POST", "/environments", { cookie, form: { _csrf: csrf, name: "  " } });
    expect(empty.status).toBe(400);
    expect(empty.text).toContain("give the environment a name of 1 to 100 characters");
    const taken = await request("POST", "/environments", {
      cookie,
      form: { _csrf: csrf, name: "from-the-page" },
    });
    expect(taken.status).toBe(409);
    expect(taken.text).toContain("already exists");
  });
});

describe("the API reference", () => {
  it("renders every operation of the OpenAPI document at /docs, from this origin only", async () => {
    const { cookie } = await signIn(org.viewer);
    const res = await request("GET", "/docs", { cookie });
    expect(res.status).toBe(200);
    const doc = await x.call("GET", "/api/v1/openapi.json");
    const operations = Object.values(doc.body.paths).flatMap((item: any) =>
      Object.values(item).map((op: any) => op.operationId as string),
    );
    expect(operations.length).toBeGreaterThan(20);
    for (const id of operations) expect(res.text).toContain(`id="${id}"`);
    expect(res.text).not.toMatch(/https?:\/\/(?!localhost)[a-z]/i);
  });
});

describe("forms", () => {
  it("refuse a POST without the session's CSRF token, or from another origin, and change nothing", async () => {
    const { cookie, csrf } = await signIn(org.operator);
    const before = x.queued.length;
    const noToken = await request("POST", `/pipelines/${pipelineId}/run`, { cookie, form: {} });
    expect(noToken.status).toBe(403);
    expect(noToken.text).toContain("this form has expired or did not come from this page");
    const wrongToken = await request("POST", `/pipelines/${pipelineId}/run`, {
      cookie,
      form: { _csrf: "x".repeat(43) },
    });
    expect(wrongToken.status).toBe(403);
    const crossSite = await request("POST", `/pipelines/${pipelineId}/run`, {
      cookie,
      form: { _csrf: csrf },
      origin: "https://evil.example",
    });
    expect(crossSite.status).toBe(403);
    expect(crossSite.text).toContain("sent from another site");
    expect(x.queued.length).toBe(before);
  });

  it("let an operator run a pipeline, and open its monitor", async () => {
    const { cookie, csrf } = await signIn(org.operator);
    const res = await request("POST", `/pipelines/${pipelineId}/run`, { cookie, form: { _csrf: csrf } });
    expect(res.status).toBe(303);
    const id = res.headers.get("location")?.replace("/executions/", "");
    expect(x.queued).toContain(id);
    const again = await request("POST", `/pipelines/${pipelineId}/run`, { cookie, form: { _csrf: csrf } });
    expect(again.status).toBe(409);
    expect(again.text).toMatch(/already|queued|in progress/);
    // Cancel it through the monitor's form.
    const cancel = await request("POST", `/executions/${id}/cancel`, { cookie, form: { _csrf: csrf } });
    expect(cancel.status).toBe(303);
    const view = await x.call("GET", `/api/v1/executions/${id}`, { token: org.viewer });
    expect(view.body.status).toBe("cancelled");
  });

  it("refuse a viewer's run with 403 and queue nothing", async () => {
    const { cookie, csrf } = await signIn(org.viewer);
    const before = x.queued.length;
    const res = await request("POST", `/pipelines/${pipelineId}/run`, { cookie, form: { _csrf: csrf } });
    expect(res.status).toBe(403);
    expect(res.text).toContain("this needs the operator role");
    expect(x.queued.length).toBe(before);
  });
});

describe("the monitor's event stream", () => {
  it("accepts the session cookie in place of a bearer token", async () => {
    const { cookie } = await signIn(org.viewer);
    const run = await insertExecution(
      x.db,
      { id: pipelineId, organisationId: org.id },
      { status: "completed" },
    );
    const res = await x.app.request(`${ORIGIN}/api/v1/executions/${run.id}/events`, { headers: { cookie } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    await res.body?.cancel();
    const anonymous = await x.app.request(`${ORIGIN}/api/v1/executions/${run.id}/events`);
    expect(anonymous.status).toBe(401);
  });
});
