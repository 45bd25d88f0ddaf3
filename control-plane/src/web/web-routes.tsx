/** @jsxImportSource hono/jsx */
/**
 * The web UI, served by the control plane itself: server-rendered pages
 * (Hono JSX) for signing in, pipelines, their runs (the Execution Monitor),
 * environments, usage and the API reference, plus one small script that keeps
 * the monitor live over the execution's SSE stream. Every page needs a
 * session (see web-sessions.ts) and acts inside its organisation with its
 * token's role; every form POST is checked against CSRF.
 */
import { DrayError, isDrayError } from "@dray/common";
import { and, count, desc, eq, inArray } from "drizzle-orm";
import type { Context } from "hono";
import { Hono } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { RouteDeps } from "../api/api-env.js";
import { type OrganisationRole, roleSatisfies } from "../auth/roles.js";
import { testEnvironmentConnection } from "../environments/connection-test.js";
import { toEnvironmentView } from "../environments/environment-view.js";
import { createEnvironment, getEnvironment, listEnvironments } from "../environments/environments-service.js";
import { cancelExecution } from "../executions/cancel-execution.js";
import { stopContinuous } from "../executions/continuous-control.js";
import { listPipelineExecutions } from "../executions/execution-lists.js";
import { actorOf } from "../executions/execution-records.js";
import { executionView } from "../executions/execution-view.js";
import { parseCreatedRange, parseStatusFilter } from "../executions/history-filter.js";
import { startExecution } from "../executions/start-execution.js";
import { usageView } from "../executions/usage-view.js";
import { dropPipelineFile, listPipelineFiles } from "../files/file-records.js";
import { getPipelinePlan } from "../pipelines/pipeline-plan.js";
import { toPipelineViews } from "../pipelines/pipeline-view.js";
import { listPipelinesPage } from "../pipelines/pipelines-list.js";
import { getPipeline } from "../pipelines/pipelines-service.js";
import {
  environments,
  executionEntities,
  executionErrors,
  executionLog,
  organisations,
} from "../store/schema.js";
import { DocsPage, type OpenApiDocument } from "./pages/docs-page.js";
import {
  EnvironmentsHealth,
  EnvironmentsPage,
  type NewEnvironment,
  type TestOutcome,
} from "./pages/environments-page.js";
import { ExecutionPage, isFinal, type MonitorData, MonitorLive } from "./pages/execution-page.js";
import { Layout, Notice, type Viewer } from "./pages/layout.js";
import { PipelinePage } from "./pages/pipeline-page.js";
import { PipelinesPage } from "./pages/pipelines-page.js";
import { SignInPage } from "./pages/sign-in-page.js";
import { UsagePage } from "./pages/usage-page.js";
import { type AssetPaths, mountAssets } from "./web-assets.js";
import { assertSameOriginForm, securityHeaders } from "./web-security.js";
import {
  SESSION_COOKIE,
  sessionOf,
  signInWithLink,
  signInWithToken,
  signOut,
  type WebSession,
} from "./web-sessions.js";

/** Where the gateway listens, for the agent command shown when an environment is added. */
export interface GatewayAddress {
  port: number;
  tls: boolean;
}

type WebEnv = { Variables: { session: WebSession; viewer: Viewer } };

/** Paths of the UI (everything the API, health and metrics routes do not serve). */
export function isWebPath(pathname: string): boolean {
  return !(
    pathname.startsWith("/api/") ||
    pathname === "/api" ||
    pathname === "/healthz" ||
    pathname === "/readyz" ||
    pathname === "/metrics"
  );
}

/** A `next` that stays on this site: a path, not `//host` or a URL. */
function safeNext(next: unknown): string {
  return typeof next === "string" && next.startsWith("/") && !next.startsWith("//") && !next.includes("\\")
    ? next
    : "/pipelines";
}

const STATUS_OF_CODE: Record<string, 400 | 401 | 403 | 404 | 409 | 429 | 503> = {
  invalid_argument: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  already_exists: 409,
  failed_precondition: 409,
  resource_exhausted: 429,
  unavailable: 503,
};

/**
 * The UI app. Mount it in front of the API for every path {@link isWebPath}
 * accepts (createApiApp does).
 */
export function webRoutes(
  deps: RouteDeps & { gateway?: GatewayAddress | undefined },
  openApi?: { document: () => OpenApiDocument; path: string },
): Hono<WebEnv> {
  const app = new Hono<WebEnv>();
  app.use("*", securityHeaders());
  const assets: AssetPaths = mountAssets(app as unknown as Hono);

  const page = (c: Context, body: unknown, status: 200 | 400 | 401 | 403 | 404 | 409 | 429 | 503 = 200) =>
    c.html(`<!doctype html>${String(body)}`, status);

  app.onError((error, c) => {
    const e = isDrayError(error) ? error : undefined;
    if (!e) deps.logger.error("web page failed", { path: c.req.path, error: String(error) });
    const status = (e && STATUS_OF_CODE[e.code]) ?? 500;
    const viewer = c.get("viewer");
    const message = e ? e.message : "Something went wrong on the control plane; the details are in its log.";
    return c.html(
      `<!doctype html>${String(
        <Layout title="Error" assets={assets} viewer={viewer} section="none">
          <h1>{status === 404 ? "Not found" : "That did not work"}</h1>
          <Notice kind="error">{message}</Notice>
          <p>
            <a href="/pipelines">Back to pipelines</a>
          </p>
        </Layout>,
      )}`,
      status as 400,
    );
  });
  app.notFound((c) => {
    throw new DrayError("not_found", `there is no page at ${c.req.path}`);
  });

  const secure = (c: Context) => new URL(c.req.url).protocol === "https:";
  const startSession = (c: Context, secret: string) =>
    setCookie(c, SESSION_COOKIE, secret, {
      httpOnly: true,
      sameSite: "Strict",
      secure: secure(c),
      path: "/",
      maxAge: 12 * 60 * 60,
    });

  app.get("/", (c) => c.redirect("/pipelines", 303));

  app.get("/sign-in", (c) => page(c, <SignInPage assets={assets} next={safeNext(c.req.query("next"))} />));
  app.post("/sign-in", async (c) => {
    const form = await c.req.parseBody();
    const next = safeNext(form.next);
    const origin = c.req.header("origin");
    if (origin !== undefined && origin !== new URL(c.req.url).origin)
      throw new DrayError("permission_denied", "this form was sent from another site");
    try {
      const { secret } = await signInWithToken(
        deps.db,
        typeof form.token === "string" ? form.token : "",
        deps.now(),
      );
      startSession(c, secret);
      return c.redirect(next, 303);
    } catch (error) {
      if (!isDrayError(error)) throw error;
      return page(c, <SignInPage assets={assets} next={next} error={error.message} />, 401);
    }
  });
  app.get("/sign-in/link/:code", async (c) => {
    try {
      const { secret } = await signInWithLink(deps.db, c.req.param("code"), deps.now());
      startSession(c, secret);
      return c.redirect("/pipelines", 303);
    } catch (error) {
      if (!isDrayError(error)) throw error;
      return page(c, <SignInPage assets={assets} next="/pipelines" error={error.message} />, 401);
    }
  });

  // Every other page needs a session.
  app.use("*", async (c, next) => {
    if (c.req.path.startsWith("/ui/assets/")) return next();
    const session = await sessionOf(deps.db, getCookie(c, SESSION_COOKIE), deps.now());
    if (!session) {
      const back = c.req.method === "GET" ? `?next=${encodeURIComponent(c.req.path)}` : "";
      return c.redirect(`/sign-in${back}`, 303);
    }
    const [org] = await deps.db
      .select({ name: organisations.name })
      .from(organisations)
      .where(eq(organisations.id, session.principal.organisationId!))
      .limit(1);
    c.set("session", session);
    c.set("viewer", {
      role: session.principal.role,
      organisationName: org?.name ?? "",
      csrfToken: session.csrfToken,
    });
    await next();
  });

  const orgOf = (c: Context<WebEnv>) => c.get("session").principal.organisationId!;
  const may = (c: Context<WebEnv>, role: OrganisationRole) =>
    roleSatisfies(c.get("session").principal.role as OrganisationRole, role);
  /** The form of a POST, checked against CSRF; `role` is required to act. */
  const form = async (c: Context<WebEnv>, role: OrganisationRole) => {
    const body = await c.req.parseBody();
    assertSameOriginForm(c, body, c.get("session").csrfToken);
    if (!may(c, role))
      throw new DrayError(
        "permission_denied",
        `this needs the ${role} role; you are signed in as ${c.get("session").principal.role}`,
      );
    return body;
  };

  app.post("/sign-out", async (c) => {
    await form(c, "viewer");
    await signOut(deps.db, c.get("session").id, deps.now());
    deleteCookie(c, SESSION_COOKIE, { path: "/", secure: secure(c) });
    return c.redirect("/sign-in", 303);
  });

  const environmentNames = async (organisationId: string) => {
    const rows = await deps.db
      .select({ id: environments.id, name: environments.name })
      .from(environments)
      .where(eq(environments.organisationId, organisationId));
    return new Map(rows.map((r) => [r.id, r.name]));
  };

  const pipelinesPage = async (c: Context<WebEnv>, error?: string) => {
    const organisationId = orgOf(c);
    const search = (c.req.query("search") ?? "").slice(0, 200);
    const { pipelines } = await listPipelinesPage(deps.db, organisationId, { search }, { limit: 200 });
    const [views, names] = await Promise.all([
      toPipelineViews(deps.db, pipelines),
      environmentNames(organisationId),
    ]);
    const cards = views.map((pipeline) => ({
      pipeline,
      sourceName: pipeline.sourceEnvironmentId
        ? (names.get(pipeline.sourceEnvironmentId) ?? pipeline.sourceEnvironmentId)
        : "uploaded files",
      targetName: names.get(pipeline.targetEnvironmentId) ?? pipeline.targetEnvironmentId,
    }));
    return page(
      c,
      <PipelinesPage
        cards={cards}
        search={search}
        viewer={c.get("viewer")}
        assets={assets}
        canRun={may(c, "operator")}
        error={error}
      />,
      error ? 409 : 200,
    );
  };
  app.get("/pipelines", (c) => pipelinesPage(c));

  app.post("/pipelines/:id/run", async (c) => {
    await form(c, "operator");
    const organisationId = orgOf(c);
    const session = c.get("session");
    try {
      const started = await startExecution(
        { db: deps.db, bus: deps.bus, logger: deps.logger },
        organisationId,
        c.req.param("id"),
        { actor: await actorOf(deps.db, session.principal) },
        deps.now(),
      );
      deps.onExecutionQueued?.(started.id);
      return c.redirect(`/executions/${started.id}`, 303);
    } catch (error) {
      if (isDrayError(error) && error.code === "failed_precondition") return pipelinesPage(c, error.message);
      throw error;
    }
  });

  app.post("/pipelines/:id/stop", async (c) => {
    await form(c, "operator");
    const organisationId = orgOf(c);
    try {
      const stopped = await stopContinuous(
        { db: deps.db, bus: deps.bus, logger: deps.logger },
        organisationId,
        c.req.param("id"),
        await actorOf(deps.db, c.get("session").principal),
        deps.now(),
      );
      return c.redirect(`/executions/${stopped.id}`, 303);
    } catch (error) {
      if (isDrayError(error) && error.code === "failed_precondition") return pipelinesPage(c, error.message);
      throw error;
    }
  });

  app.post("/pipelines/:id/files/:fileId/drop", async (c) => {
    await form(c, "operator");
    const id = c.req.param("id");
    try {
      await dropPipelineFile(deps.db, orgOf(c), id, c.req.param("fileId"));
    } catch (error) {
      if (isDrayError(error) && error.code === "failed_precondition") return pipelinesPage(c, error.message);
      throw error;
    }
    return c.redirect(`/pipelines/${id}#files`, 303);
  });

  app.get("/pipelines/:id", async (c) => {
    const organisationId = orgOf(c);
    const id = c.req.param("id");
    const now = deps.now();
    const row = await getPipeline(deps.db, organisationId, id);
    const filter = {
      status: c.req.query("status") ?? "",
      from: c.req.query("from") ?? "",
      to: c.req.query("to") ?? "",
    };
    let statuses: ReturnType<typeof parseStatusFilter>;
    let range: ReturnType<typeof parseCreatedRange>;
    let filterError: string | undefined;
    try {
      statuses = parseStatusFilter(filter.status || undefined);
      range = parseCreatedRange(filter.from || undefined, filter.to || undefined);
    } catch (error) {
      if (!isDrayError(error)) throw error;
      filterError = error.message;
      statuses = undefined;
      range = parseCreatedRange(undefined, undefined);
    }
    const cursor = c.req.query("cursor");
    const [[view], names, history, plan] = await Promise.all([
      toPipelineViews(deps.db, [row]),
      environmentNames(organisationId),
      listPipelineExecutions(
        deps.db,
        organisationId,
        id,
        { statuses, range },
        { page: 1, pageSize: 20, ...(cursor ? { cursor } : {}) },
        now,
      ),
      row.sourceKind === "files"
        ? null
        : getPipelinePlan(deps.db, organisationId, id, now, deps.agents).catch((error: unknown) => {
            if (!isDrayError(error)) throw error;
            return { error: error.message };
          }),
    ]);
    const files =
      row.sourceKind === "files"
        ? (await listPipelineFiles(deps.db, organisationId, id, { limit: 50 })).files
        : null;
    return page(
      c,
      <PipelinePage
        pipeline={view!}
        sourceName={
          row.sourceEnvironmentId
            ? (names.get(row.sourceEnvironmentId) ?? row.sourceEnvironmentId)
            : "uploaded files"
        }
        targetName={names.get(row.targetEnvironmentId) ?? row.targetEnvironmentId}
        plan={plan}
        files={files}
        history={history.executions}
        historyTotal={history.total}
        next={history.next}
        filter={filter}
        viewer={c.get("viewer")}
        assets={assets}
        canRun={may(c, "operator")}
        now={now}
        error={filterError}
      />,
      filterError ? 400 : 200,
    );
  });

  const monitorData = async (organisationId: string, id: string): Promise<MonitorData> => {
    const execution = await executionView(deps.db, organisationId, id, deps.now());
    const [times, errors, [total], passes] = await Promise.all([
      deps.db
        .select({
          entity: executionEntities.entity,
          startedAt: executionEntities.startedAt,
          finishedAt: executionEntities.finishedAt,
        })
        .from(executionEntities)
        .where(eq(executionEntities.executionId, id)),
      deps.db
        .select()
        .from(executionErrors)
        .where(eq(executionErrors.executionId, id))
        .orderBy(desc(executionErrors.id))
        .limit(50),
      deps.db.select({ n: count() }).from(executionErrors).where(eq(executionErrors.executionId, id)),
      execution.kind === "continuous"
        ? deps.db
            .select({ at: executionLog.at, description: executionLog.description })
            .from(executionLog)
            .where(
              and(
                eq(executionLog.executionId, id),
                inArray(executionLog.code, ["poll", "reconcile", "poll_failed", "stop_requested", "stopped"]),
              ),
            )
            .orderBy(desc(executionLog.id))
            .limit(10)
        : Promise.resolve([]),
    ]);
    return {
      execution,
      entityTimes: new Map(
        times.map((t) => [
          t.entity,
          { startedAt: t.startedAt?.toISOString() ?? null, finishedAt: t.finishedAt?.toISOString() ?? null },
        ]),
      ),
      errors: errors.map((e) => ({
        at: e.at.toISOString(),
        severity: e.severity,
        entity: e.entity,
        recordKey: e.recordKey,
        message: e.message,
      })),
      errorTotal: total?.n ?? 0,
      passes: passes.map((p) => ({ at: p.at.toISOString(), description: p.description })),
    };
  };

  app.get("/executions/:id", async (c) => {
    const data = await monitorData(orgOf(c), c.req.param("id"));
    return page(
      c,
      <ExecutionPage
        data={data}
        now={deps.now()}
        viewer={c.get("viewer")}
        assets={assets}
        canCancel={may(c, "operator")}
      />,
    );
  });
  app.get("/executions/:id/live", async (c) => {
    const data = await monitorData(orgOf(c), c.req.param("id"));
    c.header("X-Dray-Final", String(isFinal(data.execution.status)));
    return c.html(String(<MonitorLive data={data} now={deps.now()} />));
  });
  app.post("/executions/:id/cancel", async (c) => {
    await form(c, "operator");
    const id = c.req.param("id");
    try {
      await cancelExecution(
        { db: deps.db, bus: deps.bus, logger: deps.logger },
        orgOf(c),
        id,
        { actor: await actorOf(deps.db, c.get("session").principal), reason: "cancelled in the web UI" },
        deps.now(),
      );
    } catch (error) {
      // Already final: the monitor shows how it ended.
      if (!(isDrayError(error) && error.code === "failed_precondition")) throw error;
    }
    return c.redirect(`/executions/${id}`, 303);
  });

  /** The organisation's environments as the page shows them (first 500 by name). */
  const environmentViews = async (c: Context<WebEnv>) => {
    const { environments: rows } = await listEnvironments(deps.db, orgOf(c), {}, { limit: 500 });
    return rows.map((r) => toEnvironmentView(r, deps.agents.isConnected(r.id)));
  };

  const environmentsPage = async (
    c: Context<WebEnv>,
    extra: { created?: NewEnvironment; tested?: TestOutcome; error?: string } = {},
    status: 200 | 400 | 409 = 200,
  ) => {
    const views = await environmentViews(c);
    return page(
      c,
      <EnvironmentsPage
        environments={views}
        viewer={c.get("viewer")}
        assets={assets}
        canOperate={may(c, "operator")}
        {...extra}
      />,
      status,
    );
  };
  app.get("/environments", (c) => environmentsPage(c));
  app.get("/environments/health", async (c) => {
    return c.html(String(<EnvironmentsHealth environments={await environmentViews(c)} />));
  });
  app.post("/environments", async (c) => {
    const body = await form(c, "operator");
    const name = typeof body.name === "string" ? body.name.trim() : "";
    if (name.length === 0 || name.length > 100)
      return environmentsPage(c, { error: "give the environment a name of 1 to 100 characters" }, 400);
    try {
      const { environment, enrollment } = await createEnvironment(
        deps.db,
        orgOf(c),
        { name, platform: "postgres" },
        { enrollmentTokenTtlMs: deps.config.enrollmentTokenTtlMs, now: deps.now() },
      );
      const gateway = deps.gateway ?? { port: 7070, tls: false };
      const host = new URL(c.req.url).hostname;
      const command =
        `DRAY_CONTROL_PLANE_URL=${gateway.tls ? "https" : "http"}://${host}:${gateway.port} ` +
        `DRAY_ENROLLMENT_TOKEN=${enrollment.enrollmentToken} \\\n  DRAY_AGENT_DATABASE_URL=postgres://user@host:5432/database dray-agent`;
      return environmentsPage(c, {
        created: { name: environment.name, token: enrollment.enrollmentToken, command },
      });
    } catch (error) {
      if (isDrayError(error) && (error.code === "already_exists" || error.code === "invalid_argument"))
        return environmentsPage(c, { error: error.message }, error.code === "already_exists" ? 409 : 400);
      throw error;
    }
  });
  app.post("/environments/:id/test", async (c) => {
    await form(c, "operator");
    const environment = await getEnvironment(deps.db, orgOf(c), c.req.param("id"));
    let tested: TestOutcome;
    try {
      const result = await testEnvironmentConnection(deps.db, deps.agents, environment, {
        now: deps.now,
        signal: c.req.raw.signal,
      });
      tested = {
        environmentId: environment.id,
        ok: true,
        message: `Connected: ${result.roundTripMs} ms round trip through the agent (database ${result.databaseName}, PostgreSQL ${result.serverVersion}, ${result.databaseLatencyMs} ms in the database)`,
      };
    } catch (error) {
      if (!isDrayError(error)) throw error;
      tested = { environmentId: environment.id, ok: false, message: `The test failed: ${error.message}` };
    }
    return environmentsPage(c, { tested });
  });

  app.get("/usage", async (c) => {
    const usage = await usageView(deps.db, orgOf(c), deps.now());
    return page(c, <UsagePage usage={usage} viewer={c.get("viewer")} assets={assets} />);
  });

  app.get("/docs", (c) => {
    if (!openApi) throw new DrayError("not_found", "this control plane serves no API reference");
    return page(
      c,
      <DocsPage
        doc={openApi.document()}
        viewer={c.get("viewer")}
        assets={assets}
        documentPath={openApi.path}
      />,
    );
  });

  return app;
}
